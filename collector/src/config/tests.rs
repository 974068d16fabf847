use super::*;

fn load_one(text: &str) -> Result<Config, ConfigError> {
    load_sources(
        &[ConfigSource {
            name: "test.yaml".into(),
            text: text.into(),
        }],
        |name| (name == "DATA_DIR").then(|| "/var/data".to_string()),
    )
}

const MINIMAL: &str = "
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
";

#[test]
fn built_in_default_is_valid() {
    let c = load_sources(&[ConfigSource::default_config()], |_| None).unwrap();
    assert_eq!(c.service.pipelines.len(), 3);
    assert!(matches!(
        c.exporters.0["awsxray"],
        ExporterConfig::AwsXray(_)
    ));
    assert!(matches!(c.exporters.0["awsemf"], ExporterConfig::AwsEmf(_)));
    assert!(matches!(
        c.exporters.0["awscloudwatchlogs"],
        ExporterConfig::AwsCloudWatchLogs(_)
    ));
    assert_eq!(
        c.service.pipelines["traces"].processors,
        vec!["xray_sampling", "batch"]
    );
}

#[test]
fn empty_sections_mean_defaults() {
    let c = load_one(MINIMAL).unwrap();
    let ReceiverConfig::Otlp(otlp) = &c.receivers.0["otlp"] else {
        panic!("otlp receiver expected");
    };
    assert_eq!(
        otlp.protocols.grpc.as_ref().unwrap().endpoint,
        "127.0.0.1:4317"
    );
    assert!(otlp.protocols.http.is_none());
}

#[test]
fn unknown_key_names_path_and_line() {
    let text = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:\n        endpont: 0.0.0.0:4317\n",
    );
    let err = load_one(&text).unwrap_err().to_string();
    assert!(err.contains("receivers.otlp.protocols.grpc"), "{err}");
    assert!(err.contains("unknown field `endpont`"), "{err}");
    assert!(err.contains("line 6"), "{err}");
}

#[test]
fn bad_value_names_path_and_line() {
    let text = format!("{MINIMAL}processors:\n  batch:\n    timeout: soon\n");
    let err = load_one(&text).unwrap_err().to_string();
    assert!(err.contains("processors.batch.timeout"), "{err}");
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn unknown_component_type_is_refused() {
    let text = MINIMAL.replace("  debug:\n", "  kafka:\n");
    let err = load_one(&text).unwrap_err().to_string();
    assert!(err.contains("unknown exporter type `kafka`"), "{err}");
}

#[test]
fn pipeline_references_are_checked() {
    let text = MINIMAL.replace("exporters: [debug]", "exporters: [debug, file/x]");
    let err = load_one(&text).unwrap_err().to_string();
    assert!(
        err.contains("service.pipelines.traces.exporters[1]"),
        "{err}"
    );
    assert!(err.contains("`file/x` is not defined"), "{err}");
    let text = MINIMAL.replace("    traces:\n", "    spans:\n");
    assert!(
        load_one(&text)
            .unwrap_err()
            .to_string()
            .contains("must be named")
    );
}

#[test]
fn xray_segments_name_the_log_groups_of_the_logs_exporters_in_use() {
    let yaml = "
receivers: { otlp: { protocols: { grpc: } } }
exporters:
  awsxray:
  awsxray/own: { aws_log_groups: [/mine] }
  awscloudwatchlogs:
    log_group_name: \"/aws/ecs/{aws.ecs.cluster.name}\"
    categories: { audit: { log_group_name: /aws/aurastream/audit } }
  awscloudwatchlogs/unused: { log_group_name: /unused }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [awsxray, awsxray/own] }
    logs: { receivers: [otlp], exporters: [awscloudwatchlogs] }
";
    let c = load_one(yaml).expect("valid");
    let groups = |id: &str| match &c.exporters.0[id] {
        ExporterConfig::AwsXray(x) => x.aws_log_groups.clone(),
        other => panic!("{id} is {other:?}"),
    };
    assert_eq!(
        groups("awsxray"),
        ["/aws/aurastream/audit", "/aws/ecs/{aws.ecs.cluster.name}"]
    );
    assert_eq!(groups("awsxray/own"), ["/mine"]);
}

#[test]
fn an_adot_xray_exporter_with_max_retries_loads_and_retries_stay_with_retry_on_failure() {
    let yaml = "
receivers: { otlp: { protocols: { grpc: } } }
exporters:
  awsxray: { max_retries: 5, retry_on_failure: { max_elapsed_time: 30s } }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [awsxray] }
";
    let c = load_one(yaml).expect("an ADOT awsxray block is valid");
    let ExporterConfig::AwsXray(x) = &c.exporters.0["awsxray"] else {
        panic!("awsxray is {:?}", c.exporters.0["awsxray"]);
    };
    assert_eq!(x.max_retries, Some(5));
    assert_eq!(
        x.retry_on_failure.max_elapsed_time,
        std::time::Duration::from_secs(30)
    );
}

#[test]
fn env_substitution_applies_before_parsing() {
    let text = format!("{MINIMAL}  file:\n    path: ${{env:DATA_DIR}}/t.jsonl\n").replace(
        "exporters:\n  debug:\n",
        "exporters:\n  debug:\n  file:\n    path: ${env:DATA_DIR}/t.jsonl\n",
    );
    let text = text.trim_end_matches("  file:\n    path: ${env:DATA_DIR}/t.jsonl\n");
    let c = load_one(text).unwrap();
    let ExporterConfig::File(f) = &c.exporters.0["file"] else {
        panic!()
    };
    assert_eq!(f.path, std::path::PathBuf::from("/var/data/t.jsonl"));
    let err = load_one(&MINIMAL.replace("grpc:\n", "grpc:\n        endpoint: ${env:NOPE}\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`NOPE` is not set") && err.contains("line 6"),
        "{err}"
    );
}

#[test]
fn later_files_override_earlier_ones_key_by_key() {
    let overlay = "
exporters:
  file:
    path: /tmp/override.jsonl
service:
  pipelines:
    traces:
      exporters: [file]
";
    let c = load_sources(
        &[
            ConfigSource {
                name: "base.yaml".into(),
                text: MINIMAL.into(),
            },
            ConfigSource {
                name: "overlay.yaml".into(),
                text: overlay.into(),
            },
        ],
        |_| None,
    )
    .unwrap();
    assert_eq!(c.service.pipelines["traces"].exporters, vec!["file"]);
    assert_eq!(c.service.pipelines["traces"].receivers, vec!["otlp"]);
    assert!(c.exporters.0.contains_key("debug"));
    // A typo in the overlay is reported against the overlay.
    let err = load_sources(
        &[
            ConfigSource {
                name: "base.yaml".into(),
                text: MINIMAL.into(),
            },
            ConfigSource {
                name: "overlay.yaml".into(),
                text: "service:\n  pipelnes: {}\n".into(),
            },
        ],
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("overlay.yaml") && err.contains("line 2"),
        "{err}"
    );
}

/// The lean build's defaults (and the lean layer's shipped config) are valid and name no
/// component the lean build leaves out.
#[test]
fn lean_defaults_are_valid_and_use_only_what_the_lean_build_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let key_file = std::env::temp_dir().join(format!("lean-key-{}", std::process::id()));
    std::fs::write(&key_file, "a key of more than sixteen bytes").unwrap();
    let lean_layer = std::fs::read_to_string(root.join("deploy/config/lambda-lean.yaml"))
        .unwrap()
        .replace(
            "hmac_key_env: AURASTREAM_REDACTION_HMAC_KEY",
            &format!("hmac_key_file: {}", key_file.display()),
        );
    for (name, text) in [
        ("default-lean", LEAN_DEFAULT_CONFIG.to_string()),
        (
            "lambda-default-lean",
            LAMBDA_LEAN_DEFAULT_CONFIG.to_string(),
        ),
        ("deploy/config/lambda-lean.yaml", lean_layer),
    ] {
        let c = load_sources(
            &[ConfigSource {
                name: name.into(),
                text,
            }],
            |_| None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.service.pipelines.len(), 3, "{name}");
        let used = [
            ("receiver", c.receivers.0.keys().collect::<Vec<_>>()),
            ("processor", c.processors.0.keys().collect()),
            ("exporter", c.exporters.0.keys().collect()),
        ];
        for (kind, ids) in used {
            for id in ids {
                let ty = component_type(id);
                assert!(
                    !FEATURE_GATED.iter().any(|(k, t, _)| *k == kind && *t == ty),
                    "{name}: {kind} `{id}` is not in the lean build"
                );
            }
        }
    }
    std::fs::remove_file(&key_file).ok();
}

#[test]
fn built_in_lambda_default_is_valid_and_uses_the_lambda_receiver() {
    let c = load_sources(&[ConfigSource::lambda_default_config()], |_| None).unwrap();
    assert!(matches!(
        c.receivers.0.get("lambda"),
        Some(ReceiverConfig::Lambda(_))
    ));
    for (name, p) in &c.service.pipelines {
        assert!(p.processors.contains(&"batch".to_string()), "{name}");
    }
    // Function logs are opt-in: no default logs pipeline takes them.
    assert!(
        !c.service.pipelines["logs"]
            .receivers
            .contains(&"lambda".to_string())
    );
}

#[test]
fn lambda_receiver_options_are_checked() {
    let bad = "
receivers:
  lambda:
    buffering: { timeout: 5ms }
exporters:
  debug:
service:
  pipelines:
    traces: { receivers: [lambda], exporters: [debug] }
";
    let e = load_one(bad).unwrap_err().to_string();
    assert!(e.contains("receivers.lambda") && e.contains("25ms"), "{e}");
    let two = "
receivers:
  lambda:
  lambda/b:
exporters:
  debug:
service:
  pipelines:
    traces: { receivers: [lambda, lambda/b], exporters: [debug] }
";
    let e = load_one(two).unwrap_err().to_string();
    assert!(e.contains("at most one"), "{e}");
}

#[test]
fn lambda_flush_strategy_is_checked_and_follows_its_environment_variable() {
    let bad = "
receivers:
  lambda:
    flush: sometimes
exporters:
  debug:
service:
  pipelines:
    traces: { receivers: [lambda], exporters: [debug] }
";
    let e = load_one(bad).unwrap_err().to_string();
    assert!(
        e.contains("sometimes") && e.contains("end-of-invocation") && e.contains("adaptive"),
        "{e}"
    );
    let flush_of = |env: Option<&str>| {
        let c = load_sources(&[ConfigSource::lambda_default_config()], |name| {
            (name == "AURASTREAM_LAMBDA_FLUSH").then(|| env.map(String::from))?
        })
        .unwrap();
        match &c.receivers.0["lambda"] {
            ReceiverConfig::Lambda(l) => l.flush,
            other => panic!("{other:?}"),
        }
    };
    use crate::component::factory::LambdaFlush;
    assert_eq!(flush_of(None), LambdaFlush::Adaptive, "the default");
    assert_eq!(flush_of(Some("periodic")), LambdaFlush::Periodic);
    assert_eq!(
        flush_of(Some("end-of-invocation")),
        LambdaFlush::EndOfInvocation
    );
}

/// Found with the `config` fuzz target's harness (fuzz/, `aurastream_collector::fuzzing`):
/// values that parsed and validated, then overflowed when start-up turned them into bytes
/// (a panic in debug builds, a wrapped, wrong limit in release) or added them to the
/// current instant (a panic in the batch processor's task or at shutdown). Each is now
/// refused by validation, naming the option.
#[test]
fn values_that_overflow_at_start_up_are_refused() {
    let huge = u64::MAX;
    for (yaml, path, message) in [
        (
            format!("processors: {{ batch: {{ timeout: 500000000000y }} }}\n{MINIMAL}"),
            "processors.batch",
            "too long",
        ),
        (
            format!("{MINIMAL}  shutdown_timeout: 500000000000y\n"),
            "service",
            "too long",
        ),
        (
            MINIMAL.replace(
                "grpc:",
                &format!("grpc: {{ max_recv_msg_size_mib: {huge} }}"),
            ),
            "receivers.otlp",
            "max_recv_msg_size_mib must be between 1 and 4096",
        ),
        (
            format!("{MINIMAL}  memory_limiter: {{ limit_mib: {huge} }}\n"),
            "service.memory_limiter",
            "limit_mib (18446744073709551615) is too large",
        ),
        (
            MINIMAL.replace(
                "  debug:",
                &format!(
                    "  debug:\n  file: {{ path: /tmp/x, rotation: {{ max_megabytes: {huge} }} }}"
                ),
            ),
            "exporters.file",
            "max_megabytes (18446744073709551615) is too large",
        ),
        (
            MINIMAL.replace(
                "  debug:",
                "  debug: { retry_on_failure: { max_interval: 500000000000y } }",
            ),
            "exporters.debug",
            "retry_on_failure.max_interval 500000000000years is too long",
        ),
        (
            MINIMAL.replace(
                "  debug:",
                "  debug: { retry_on_failure: { multiplier: .inf } }",
            ),
            "exporters.debug",
            "retry_on_failure.multiplier must be between 1 and 1000",
        ),
        (
            format!(
                "processors: {{ xray_sampling: {{ max_wait: 500000000000y, \
                 decision_wait: 500000000000y }} }}\n{MINIMAL}"
            ),
            "processors.xray_sampling",
            "decision_wait 500000000000years is too long",
        ),
    ] {
        match load_one(&yaml) {
            Err(ConfigError::Invalid {
                path: p,
                problem: m,
                ..
            }) => {
                assert_eq!(p, path, "{yaml}");
                assert!(m.to_string().contains(message), "{m}");
            }
            other => panic!("{yaml}\n=> {other:?}"),
        }
    }
    // The largest accepted values still convert without overflow.
    let grpc = crate::receiver::otlp::config::GrpcConfig {
        max_recv_msg_size_mib: crate::receiver::otlp::config::MAX_RECV_MSG_SIZE_MIB,
        ..Default::default()
    };
    assert_eq!(grpc.max_recv_msg_bytes(), 4 << 30);
    let year = format!(
        "processors: {{ batch: {{ timeout: 365d }} }}\n{MINIMAL}  shutdown_timeout: 365d\n"
    );
    load_one(&year).unwrap();
}

/// Every configuration we ship runs with the memory budget on, sized for its target.
#[test]
fn every_shipped_configuration_turns_the_memory_limiter_on() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut shipped: Vec<(String, Config)> = vec![
        ("default".into(), load(&[]).unwrap()),
        (
            "lambda-default".into(),
            load_sources(
                &[ConfigSource {
                    name: "lambda-default".into(),
                    text: LAMBDA_DEFAULT_CONFIG.into(),
                }],
                |_| None,
            )
            .unwrap(),
        ),
    ];
    // The sidecar and Lambda configs take their redaction key from the environment, which
    // a test may not set (the crate forbids `unsafe`); a key file stands in for it.
    let key_file = std::env::temp_dir().join(format!("redaction-key-{}", std::process::id()));
    std::fs::write(&key_file, "a key of more than sixteen bytes").unwrap();
    for name in ["sidecar", "lambda", "local"] {
        let path = root.join(format!("deploy/config/{name}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "hmac_key_env: AURASTREAM_REDACTION_HMAC_KEY",
            &format!("hmac_key_file: {}", key_file.display()),
        );
        let source = ConfigSource {
            name: name.into(),
            text,
        };
        shipped.push((name.into(), load_sources(&[source], |_| None).unwrap()));
    }
    let _ = std::fs::remove_file(&key_file);
    let lambda = crate::config::memory_limiter::AvailableMemory {
        lambda_mb: Some("256".into()),
        ..Default::default()
    };
    for (name, config) in shipped {
        let limiter = config
            .service
            .memory_limiter
            .unwrap_or_else(|| panic!("{name}: no service.memory_limiter"));
        let limits = limiter.limits(&lambda).unwrap();
        assert!(limits.soft < limits.hard, "{name}");
        if name.starts_with("lambda") {
            assert_eq!(
                limits.hard,
                64 << 20,
                "{name}: a quarter of the function's memory"
            );
        }
    }
}

#[test]
fn authenticators_must_be_extensions_listed_in_the_service() {
    let with_auth = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:\n        auth: { authenticator: bearertokenauth }\n",
    );
    let err = load_one(&with_auth).unwrap_err().to_string();
    assert!(
        err.contains("receivers.otlp.protocols.grpc.auth.authenticator")
            && err.contains("`bearertokenauth` is not defined under `extensions`"),
        "{err}"
    );
    let defined = with_auth.replace(
        "exporters:\n  debug:\n",
        "exporters:\n  debug:\nextensions:\n  bearertokenauth: { token: t }\n",
    );
    let err = load_one(&defined).unwrap_err().to_string();
    assert!(
        err.contains("not listed under `service.extensions`"),
        "{err}"
    );
    let listed = defined.replace("service:\n", "service:\n  extensions: [bearertokenauth]\n");
    load_one(&listed).unwrap();

    let exporter = MINIMAL.replace(
        "exporters:\n  debug:\n",
        "exporters:\n  debug:\n  otlp: { endpoint: gw:4317, auth: { authenticator: nope } }\n",
    );
    let err = load_one(&exporter).unwrap_err().to_string();
    assert!(
        err.contains("exporters.otlp.auth.authenticator") && err.contains("`nope`"),
        "{err}"
    );
}

#[test]
fn exposed_receivers_without_tls_or_auth_are_warned_about() {
    assert!(load_one(MINIMAL).unwrap().warnings().is_empty(), "loopback");
    let exposed = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:\n        endpoint: 0.0.0.0:4317\n",
    );
    let warnings = load_one(&exposed).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("receivers.otlp: protocols.grpc listens on 0.0.0.0:4317"),
        "{warnings:?}"
    );
    let guarded = exposed.replace(
        "endpoint: 0.0.0.0:4317\n",
        "endpoint: 0.0.0.0:4317\n        tls: { cert_file: s.crt, key_file: s.key }\n",
    );
    assert!(load_one(&guarded).unwrap().warnings().is_empty());
}
