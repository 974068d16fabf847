//! The command line: `validate`, `--help`, start-up errors that name the path and line,
//! and the built-in default.

use std::process::Command;

use aurastream_e2e::{Collector, workspace_bin};

fn collector() -> Command {
    Command::new(workspace_bin("aurastream-collector"))
}

#[test]
fn help_documents_every_subcommand_and_flag() {
    let out = collector().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "validate",
        "print-default-config",
        "healthcheck",
        "--config",
        "--log-level",
        "--log-format",
    ] {
        assert!(help.contains(word), "--help mentions {word}:\n{help}");
    }
}

#[test]
fn validate_accepts_the_default_and_names_path_and_line_of_errors() {
    let out = collector().arg("validate").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("built-in default: valid"));

    let dir = tempfile::tempdir().expect("dir");
    let default = collector()
        .arg("print-default-config")
        .output()
        .expect("run")
        .stdout;
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, &default).expect("write");
    assert!(
        collector()
            .arg("validate")
            .arg(&good)
            .status()
            .expect("run")
            .success()
    );

    let bad = dir.path().join("bad.yaml");
    let text = String::from_utf8_lossy(&default).replace(
        "    timeout: 200ms",
        "    timeout: 200ms\n    send_batch_sise: 5",
    );
    std::fs::write(&bad, text).expect("write");
    let out = collector().arg("validate").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("processors.batch"), "{err}");
    assert!(err.contains("unknown field `send_batch_sise`"), "{err}");
    assert!(err.contains("line 24"), "{err}");
}

#[test]
fn run_refuses_a_bad_config_and_a_taken_port_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:AURASTREAM_TEST_UNSET}\n").expect("write");
    let out = collector().arg("--config").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AURASTREAM_TEST_UNSET") && err.contains("line 5"),
        "{err}"
    );

    // A second collector on the same ports fails start-up, naming the endpoint.
    let first = Collector::start(aurastream_e2e::file_config);
    let config = dir.path().join("same.yaml");
    std::fs::write(
        &config,
        aurastream_e2e::file_config(&first.ports, dir.path()),
    )
    .expect("write");
    let out = collector()
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{}", first.ports.grpc)),
        "{err}"
    );
}

const REDACTION_KEY_VARIABLE: &str = "AURASTREAM_REDACTION_HMAC_KEY";

#[test]
fn every_shipped_deploy_config_validates() {
    let dir = aurastream_e2e::workspace_root().join("deploy/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/config") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            // The deployed configs read their redaction key from the environment.
            let out = collector()
                .arg("validate")
                .arg(&path)
                .env(REDACTION_KEY_VARIABLE, "validate-only-key-0123456789")
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1, "no configs found in {}", dir.display());
}

#[test]
fn a_deployed_config_without_its_redaction_key_fails_naming_the_variable() {
    let path = aurastream_e2e::workspace_root().join("deploy/config/sidecar.yaml");
    let out = collector()
        .arg("validate")
        .arg(&path)
        .env_remove(REDACTION_KEY_VARIABLE)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("processors.redaction") && err.contains(REDACTION_KEY_VARIABLE),
        "{err}"
    );
}

#[test]
fn healthcheck_succeeds_on_a_running_collector_and_fails_without_one() {
    let mut c = aurastream_e2e::Collector::start(aurastream_e2e::file_config);
    let address = format!("127.0.0.1:{}", c.ports.health);
    let up = collector()
        .args(["healthcheck", &address])
        .output()
        .expect("run");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(c.stop(), 0);
    let down = collector()
        .args(["healthcheck", &address])
        .output()
        .expect("run");
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains(&address));
}
