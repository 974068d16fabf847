//! End-to-end harness: the real `aurastream-collector` binary, started on free loopback
//! ports with a generated config, waited for on `/health`, and stopped by PID.
//!
//! The binary is built once by the test command (`cargo build --workspace --bins`) and
//! found next to the test executables, so no test rebuilds anything.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `target/<profile>/` of the running test executable (`target/<profile>/deps/<test>`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A workspace binary, built beforehand by the test command.
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = target_profile_dir().join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A two-worker runtime for a test that drives the collector and reads moto back while
/// blocking helpers (collector start, `eventually`) run in the same test.
pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A Python OTLP client script from `tests/python/` with the arguments every one of them
/// takes (`--protocol grpc|http --endpoint URL --service NAME`); add its own and run it.
pub fn python_client(
    script: &str,
    protocol: &str,
    endpoint: &str,
    service: &str,
) -> std::process::Command {
    let mut command = std::process::Command::new(python());
    command
        .arg(workspace_root().join("tests/python").join(script))
        .args([
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--service",
            service,
        ]);
    command
}

/// The Python interpreter of the test venv (`.venv/`, made by scripts/test.sh).
pub fn python() -> PathBuf {
    let p = workspace_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} not found: run scripts/test.sh, which creates the venv with the Python OTLP clients",
        p.display()
    );
    p
}

/// A free loopback port (TCP and UDP) for a test server, bound and released.
///
/// Chosen below the kernel's ephemeral range (32768–60999 here), so neither another
/// `bind(…:0)` nor the source port of an outgoing connection can take it between our
/// check and the server's bind: with `bind(…:0)` CI once lost a collector's health port to
/// a client connection. A per-process counter, started at an offset drawn from the PID,
/// keeps parallel tests in one binary and consecutive test binaries apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(2_654_435_761)) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// Ports a test collector listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub health: u16,
}

impl Ports {
    pub fn free() -> Ports {
        Ports {
            grpc: free_port(),
            http: free_port(),
            health: free_port(),
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }
}

/// The receivers/extension part every test config shares.
pub fn base_config(ports: &Ports) -> String {
    format!(
        r#"
receivers:
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
        health = ports.health
    )
}

/// A config writing each signal to `<dir>/<signal>.jsonl` through a batch processor.
pub fn file_config(ports: &Ports, dir: &Path) -> String {
    format!(
        r#"{base}
processors:
  batch:
    send_batch_size: 512
    timeout: 100ms
exporters:
  file/traces: {{ path: {dir}/traces.jsonl }}
  file/metrics: {{ path: {dir}/metrics.jsonl }}
  file/logs: {{ path: {dir}/logs.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [file/traces] }}
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [file/metrics] }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [file/logs] }}
"#,
        base = base_config(ports),
        dir = dir.display()
    )
}

/// A running collector; killed on drop if the test did not stop it.
pub struct Collector {
    pub ports: Ports,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    stderr_path: PathBuf,
}

impl Collector {
    /// Starts the collector with the YAML made by `config(ports, dir)`, stdout discarded.
    pub fn start(config: impl FnOnce(&Ports, &Path) -> String) -> Collector {
        Collector::start_with(config, Stdio::null())
    }

    /// Like [`Collector::start`], with the collector's stdout wired as given.
    pub fn start_with(config: impl FnOnce(&Ports, &Path) -> String, stdout: Stdio) -> Collector {
        let mut c = Collector::spawn(config, stdout);
        c.wait_healthy();
        c
    }

    /// Starts the collector and waits (up to 30 s) until `ready` says so, for a
    /// `health_check` that plain HTTP cannot ask (TLS on it).
    pub fn start_ready_when(
        config: impl FnOnce(&Ports, &Path) -> String,
        mut ready: impl FnMut(&Collector) -> bool,
    ) -> Collector {
        let mut c = Collector::spawn(config, Stdio::null());
        c.wait_until("ready", |c| ready(c));
        c
    }

    fn spawn(config: impl FnOnce(&Ports, &Path) -> String, stdout: Stdio) -> Collector {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = Ports::free();
        let yaml = config(&ports, dir.path());
        let config_path = dir.path().join("collector.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        let stderr_path = dir.path().join("collector.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(workspace_bin("aurastream-collector"))
            .arg("--config")
            .arg(&config_path)
            .arg("--log-level")
            .arg("info")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn aurastream-collector");
        Collector {
            ports,
            dir,
            child: Some(child),
            stderr_path,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("collector running")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("collector running").id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let url = format!("http://127.0.0.1:{}/health", self.ports.health);
        self.wait_until("healthy", |_| {
            http_get(&url).is_ok_and(|body| body.contains("\"overall_status\":\"healthy\""))
        });
    }

    fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Collector) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child_mut().try_wait().expect("poll child") {
                panic!(
                    "collector exited with {status} before becoming {what}:\n{}",
                    self.stderr()
                );
            }
            if ready(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("collector not {what} after 30 s:\n{}", self.stderr());
    }

    /// `/metrics` as text.
    pub fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.ports.health)).unwrap_or_default()
    }

    /// Sum of every sample of `name` whose labels include all of `labels` (`key="value"`).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// SIGTERM, then wait (up to 30 s) for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> i32 {
        let mut child = self.child.take().expect("collector running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "collector did not stop within 30 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking GET on loopback, for health and metrics (no client library needed).
pub fn http_get(url: &str) -> std::io::Result<String> {
    use std::io::Write;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// Sums a Prometheus metric over the samples whose labels contain all `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|want| label_text.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Every line of a JSON-lines file (or of its rotated siblings, oldest first).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON line in {}: {e}: {l}", path.display()))
        })
        .collect()
}

/// Waits until `check` holds (polling), or panics with `what`.
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

pub mod aws;
pub mod durability;
pub mod emf;
pub mod fault_proxy;
pub mod fuzzing;
pub mod load;
pub mod otlp_json;
pub mod otlp_peer;
