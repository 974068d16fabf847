//! What every `aurastream` end-to-end test needs: the real binary (built by
//! `cargo build --workspace --bins`), AWS SDK clients pointed at moto to seed known data,
//! and the moto server with metric math (see `moto_patched.py`).

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_e2e::{eventually, free_port, python, workspace_bin};
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;

/// moto with percentiles and metric math in GetMetricData and a well-formed
/// GetTraceSummaries answer (what moto lacks; see `moto_patched.py`), killed by its PID
/// when dropped.
pub struct PatchedMoto {
    child: Child,
    port: u16,
}

impl PatchedMoto {
    pub fn start() -> PatchedMoto {
        PatchedMoto::start_with_env(&[])
    }

    /// With moto settings from the environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0`,
    /// which makes moto check credentials and IAM permissions like AWS.
    pub fn start_with_env(env: &[(&str, &str)]) -> PatchedMoto {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_patched.py");
        let port = free_port();
        let child = Command::new(python())
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start patched moto");
        let moto = PatchedMoto { child, port };
        eventually("moto listening", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PatchedMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `aurastream ARGS --endpoint-url URL` with test credentials; the environment is given
/// to the child only, nothing of the test process changes.
pub fn aurastream(endpoint: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin("aurastream"))
        .args(args)
        .args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run aurastream")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// JSON printed by `--format json`.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The start of the current minute, minus `minutes` minutes.
pub fn minutes_ago(minutes: i64) -> i64 {
    now_secs() / 60 * 60 - minutes * 60
}
