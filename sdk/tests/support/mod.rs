//! Harness for the end-to-end tests: the real `aurastream-collector` binary on free
//! loopback ports with a generated config (file exporters by default), killed by PID.
//!
//! The binary is not built here: the workspace test command builds every binary once
//! (`cargo build --workspace --bins`) before the tests run, and the harness finds it next
//! to the test executable.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// A running collector; killed by PID when dropped (also when a test panics).
pub struct Collector {
    child: Child,
    pub dir: tempfile::TempDir,
    pub ports: Ports,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this process id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The loopback ports a test collector listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub health: u16,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `target/<profile>/` of the running test executable (`target/<profile>/deps/<test>-<hash>`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{exe:?} is not in target/<profile>/deps/"))
        .to_path_buf()
}

/// `target/<profile>/aurastream-collector`, built beforehand by the test command.
pub fn collector_binary() -> PathBuf {
    let name = format!("aurastream-collector{}", std::env::consts::EXE_SUFFIX);
    let binary = target_profile_dir().join(name);
    assert!(
        binary.is_file(),
        "{} not found: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// The `receivers` and `extensions` sections every test config shares: OTLP over gRPC and
/// HTTP, and the health check the harness waits on.
pub fn receivers_and_health(ports: &Ports) -> String {
    format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
"#,
        grpc = ports.grpc,
        http = ports.http,
        health = ports.health,
    )
}

/// Each signal into `<dir>/<signal>.jsonl` as OTLP/JSON lines.
fn file_config(ports: &Ports, out: &Path) -> String {
    format!(
        r#"{receivers}processors:
  batch:
    timeout: 100ms
exporters:
  file/traces:
    path: {traces}
  file/metrics:
    path: {metrics}
  file/logs:
    path: {logs}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file/logs]
"#,
        receivers = receivers_and_health(ports),
        traces = out.join("traces.jsonl").display(),
        metrics = out.join("metrics.jsonl").display(),
        logs = out.join("logs.jsonl").display(),
    )
}

impl Collector {
    /// Starts the collector with file exporters and waits until `/health` answers 200.
    pub async fn start() -> anyhow::Result<Collector> {
        Collector::start_with(file_config, &[]).await
    }

    /// Starts the collector with the YAML `config(ports, dir)` makes (`dir` is the
    /// collector's temporary directory), `env` added to its environment, and waits until
    /// `/health` answers 200.
    pub async fn start_with(
        config: impl FnOnce(&Ports, &Path) -> String,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Collector> {
        let binary = collector_binary();
        let dir = tempfile::tempdir()?;
        let ports = Ports {
            grpc: free_port()?,
            http: free_port()?,
            health: free_port()?,
        };
        let out = dir.path().to_path_buf();
        let config_path = out.join("collector.yaml");
        std::fs::write(&config_path, config(&ports, &out))?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config_path)
            .envs(env.iter().copied())
            .current_dir(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(out.join("collector.stdout"))?))
            .stderr(Stdio::from(File::create(out.join("collector.stderr"))?))
            .spawn()
            .with_context(|| format!("starting {binary:?}"))?;
        let mut collector = Collector { child, dir, ports };
        let url = format!("http://127.0.0.1:{}/health", ports.health);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = collector.child.try_wait()? {
                bail!(
                    "collector exited with {status} before it was healthy; stderr:\n{}",
                    collector.stderr()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status() == 200
            {
                return Ok(collector);
            }
            if Instant::now() > deadline {
                bail!(
                    "collector not healthy after 30 s; stderr:\n{}",
                    collector.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The OTLP receiver's base URL for `protocol`.
    pub fn endpoint(&self, protocol: aurastream_sdk::Protocol) -> String {
        let port = match protocol {
            aurastream_sdk::Protocol::Grpc => self.ports.grpc,
            aurastream_sdk::Protocol::HttpProtobuf | aurastream_sdk::Protocol::HttpJson => {
                self.ports.http
            }
        };
        format!("http://127.0.0.1:{port}")
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// What the collector wrote to stderr so far (its own logs), for failure messages.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("collector.stderr")).unwrap_or_default()
    }
}

/// Every JSON line of `path` (missing file = none yet).
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `path` until `done` accepts its lines or 15 s pass; returns the last lines read.
pub async fn wait_for(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = read_lines(path);
        if done(&lines) || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// OTLP/JSON attributes (`[{"key", "value": {"stringValue"|"intValue"|...}}]`) as strings.
pub fn attributes(item: &Value) -> std::collections::BTreeMap<String, String> {
    item.get("attributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?.to_owned();
            let value = kv.get("value")?.as_object()?.values().next()?;
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((key, text))
        })
        .collect()
}

/// All objects under `key` at any depth (spans, metrics, log records).
pub fn collect<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key
                    && let Value::Array(items) = v
                {
                    out.extend(items.iter());
                } else {
                    collect(v, key, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, out)),
        _ => {}
    }
}

pub fn all<'a>(lines: &'a [Value], key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    lines.iter().for_each(|l| collect(l, key, &mut out));
    out
}
