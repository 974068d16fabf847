//! The collector as a Lambda extension, against the `lambda-simulator` crate's Runtime,
//! Extensions and Telemetry APIs.
//!
//! The real binary runs as an external extension (started the way Lambda starts
//! `/opt/extensions/aurastream-collector`: `AWS_LAMBDA_RUNTIME_API` set, configuration from
//! `$AURASTREAM_CONFIG`). The test plays the function's runtime: for each invocation it
//! takes the event from the Runtime API, sends a span over OTLP/HTTP as the handler would,
//! and posts the response. The batch processor holds data for an hour, so whatever reaches
//! the file got there through the per-invocation flush.
//!
//! The simulator tells when every extension has asked for its next event after the
//! function's response (`wait_for_extensions_ready`): the moment Lambda would freeze the
//! sandbox. Under `flush: end-of-invocation` the invocation's data must be in the file by
//! then; under `periodic` and `adaptive` (once invocations are frequent) the extension asks
//! without waiting for `platform.runtimeDone`, and the data must be in the file by the end
//! of SHUTDOWN. The Telemetry API buffering is Lambda's minimum, 25 ms, in every test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aurastream_e2e::{eventually, free_port, otlp_json, read_jsonl, workspace_bin};
use lambda_simulator::{DeliveryPolicy, ShutdownReason, Simulator};
use serde_json::json;

const FUNCTION: &str = "sync-handler";

/// A simulated sandbox with the collector installed as an extension.
struct Sandbox {
    sim: Simulator,
    extension: Extension,
    dir: tempfile::TempDir,
    otlp_http: u16,
    http: reqwest::Client,
    traces: PathBuf,
}

struct Options {
    /// Where the traces pipeline writes; `None` = `<dir>/traces.jsonl`.
    traces: Option<PathBuf>,
    flush_timeout: &'static str,
    /// The `flush` strategy; the tests that check per-invocation flushing name
    /// `end-of-invocation`.
    flush: &'static str,
    flush_interval: &'static str,
    /// The collector binary; `None` = the workspace's debug build.
    bin: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            traces: None,
            flush_timeout: "2s",
            flush: "end-of-invocation",
            flush_interval: "10s",
            bin: None,
        }
    }
}

impl Sandbox {
    async fn start(dir: tempfile::TempDir, options: Options) -> Sandbox {
        let sim = Simulator::builder()
            .function_name(FUNCTION)
            .function_version("7")
            .region("eu-west-1")
            .memory_size_mb(512)
            .extension_ready_timeout(Duration::from_secs(10))
            // Far off: an extension waiting for a runtimeDone that never comes would hold
            // its next call until this deadline, long after any test gave up.
            .invocation_timeout(Duration::from_secs(600))
            .shutdown_timeout(Duration::from_secs(2))
            .build()
            .await
            .expect("simulator");
        let otlp_http = free_port();
        let traces = options
            .traces
            .unwrap_or_else(|| dir.path().join("traces.jsonl"));
        let config = format!(
            r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: "127.0.0.1:{otlp_http}" }}
  lambda:
    endpoint: 127.0.0.1:0
    # The simulator delivers to 127.0.0.1 when told sandbox.localdomain, as Lambda
    # delivers to the sandbox.
    destination_host: sandbox.localdomain
    flush_timeout: {flush_timeout}
    flush: {flush}
    flush_interval: {flush_interval}
    buffering: {{ timeout: 25ms }}
processors:
  batch:
    timeout: 1h
exporters:
  file/traces: {{ path: "{traces}" }}
  file/metrics: {{ path: "{dir}/metrics.jsonl" }}
service:
  pipelines:
    traces: {{ receivers: [otlp, lambda], processors: [batch], exporters: [file/traces] }}
    metrics: {{ receivers: [otlp, lambda], processors: [batch], exporters: [file/metrics] }}
"#,
            flush_timeout = options.flush_timeout,
            flush = options.flush,
            flush_interval = options.flush_interval,
            traces = traces.display(),
            dir = dir.path().display(),
        );
        let config_path = dir.path().join("collector.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("extension.stderr")).expect("stderr");
        let bin = options
            .bin
            .unwrap_or_else(|| workspace_bin("aurastream-collector"));
        let extension = Command::new(bin)
            .envs(sim.lambda_env_vars())
            .env("AWS_LAMBDA_RUNTIME_API", sim.addr().to_string())
            .env("AURASTREAM_CONFIG", &config_path)
            .env("RUST_LOG", "info,aurastream_collector::lambda=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map(Extension)
            .expect("spawn the extension");
        let mut sandbox = Sandbox {
            sim,
            extension,
            dir,
            otlp_http,
            http: reqwest::Client::new(),
            traces,
        };
        sandbox.wait_ready().await;
        sandbox
    }

    /// Waits for the end of the extension's init: its first `event/next`.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.extension.0.try_wait().expect("poll extension") {
                panic!(
                    "extension exited during init ({status}):\n{}",
                    self.stderr()
                );
            }
            if let Some(ext) = self.sim.get_registered_extensions().await.first()
                && self.sim.first_next_poll_at(&ext.id).await.is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "extension not ready after 20 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("extension.stderr")).unwrap_or_default()
    }

    fn runtime_url(&self, path: &str) -> String {
        format!("{}/2018-06-01/runtime/{path}", self.sim.runtime_api_url())
    }

    /// Plays one invocation as the function's runtime: next event, a span over OTLP,
    /// response. Returns the request id.
    async fn invoke(&self, n: usize) -> String {
        let request_id = self.sim.enqueue_payload(json!({ "n": n })).await;
        let next = self
            .http
            .get(self.runtime_url("invocation/next"))
            .send()
            .await
            .expect("runtime next");
        assert_eq!(
            next.headers()["lambda-runtime-aws-request-id"],
            request_id.as_str()
        );
        self.send_span(&format!("handle {request_id}")).await;
        let response = self
            .http
            .post(self.runtime_url(&format!("invocation/{request_id}/response")))
            .body(r#"{"ok":true}"#)
            .send()
            .await
            .expect("runtime response");
        assert_eq!(response.status(), 202);
        request_id
    }

    /// What the handler's OpenTelemetry SDK would send: one span, OTLP/JSON over HTTP.
    async fn send_span(&self, name: &str) {
        let body = json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "handler"}}]},
            "scopeSpans": [{"scope": {"name": "handler"}, "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": name, "kind": 1,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000250000000"}]}]}]});
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}/v1/traces", self.otlp_http))
            .json(&body)
            .send()
            .await
            .expect("OTLP export");
        assert_eq!(r.status(), 200);
    }

    async fn wait_extension_done(&self, request_id: &str) {
        self.sim
            .wait_for_extensions_ready(request_id, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}:\n{}", self.stderr()));
    }

    fn spans(&self) -> Vec<otlp_json::SpanRecord> {
        otlp_json::spans(&read_jsonl(&self.traces))
    }

    fn points(&self) -> Vec<otlp_json::PointRecord> {
        otlp_json::points(&read_jsonl(&self.dir.path().join("metrics.jsonl")))
    }

    /// SHUTDOWN through the simulator; returns the extension's exit status.
    async fn shutdown(mut self) -> (std::process::ExitStatus, Sandbox2) {
        self.sim.graceful_shutdown(ShutdownReason::Spindown).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.extension.0.try_wait().expect("poll extension") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.extension.0.kill();
                let stderr = std::fs::read_to_string(self.dir.path().join("extension.stderr"))
                    .unwrap_or_default();
                panic!("extension still running 10 s after SHUTDOWN:\n{stderr}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        (
            status,
            Sandbox2 {
                dir: self.dir,
                traces: self.traces,
            },
        )
    }
}

/// What is left to inspect after the sandbox is gone.
struct Sandbox2 {
    dir: tempfile::TempDir,
    traces: PathBuf,
}

impl Sandbox2 {
    fn spans(&self) -> Vec<otlp_json::SpanRecord> {
        otlp_json::spans(&read_jsonl(&self.traces))
    }
    fn points(&self) -> Vec<otlp_json::PointRecord> {
        otlp_json::points(&read_jsonl(&self.dir.path().join("metrics.jsonl")))
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("extension.stderr")).unwrap_or_default()
    }
}

/// The extension process, killed if a test fails before it exits.
struct Extension(Child);

impl Drop for Extension {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn invocation_span<'a>(
    spans: &'a [otlp_json::SpanRecord],
    request_id: &str,
) -> Option<&'a otlp_json::SpanRecord> {
    spans.iter().find(|s| {
        s.name == FUNCTION && s.attributes.get("faas.invocation_id") == Some(&json!(request_id))
    })
}

#[tokio::test]
async fn every_invocation_is_flushed_before_the_extension_lets_the_sandbox_freeze() {
    let sandbox = Sandbox::start(tempfile::tempdir().unwrap(), Options::default()).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let request_id = sandbox.invoke(n).await;
        sandbox.wait_extension_done(&request_id).await;
        // Checked before the next invocation starts: the handler's span and the
        // invocation's own span are both in the file already.
        let spans = sandbox.spans();
        assert!(
            spans
                .iter()
                .any(|s| s.name == format!("handle {request_id}")),
            "invocation {n}: handler span not flushed:\n{}",
            sandbox.stderr()
        );
        let span = invocation_span(&spans, &request_id)
            .unwrap_or_else(|| panic!("invocation {n}: no invocation span:\n{}", sandbox.stderr()));
        assert_eq!(span.kind, 2, "SERVER");
        assert_eq!(span.service, FUNCTION);
        assert_eq!(span.trace_id.len(), 32);
        assert_eq!(
            span.attributes.get("faas.coldstart"),
            Some(&json!(n == 0)),
            "only the first invocation is a cold start"
        );
        ids.push(request_id);
    }
    // Each span exactly once: flushing never duplicates.
    let spans = sandbox.spans();
    for id in &ids {
        let handler = spans
            .iter()
            .filter(|s| s.name == format!("handle {id}"))
            .count();
        assert_eq!(handler, 1, "{id}");
    }
    let (status, _) = sandbox.shutdown().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn platform_report_becomes_lambda_metrics_and_shutdown_drains_everything() {
    let sandbox = Sandbox::start(tempfile::tempdir().unwrap(), Options::default()).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let request_id = sandbox.invoke(n).await;
        sandbox.wait_extension_done(&request_id).await;
        ids.push(request_id);
    }
    // platform.report of invocation N is sent after the extension is done with N, so it
    // is exported with invocation N+1.
    eventually(
        "the reports of the first two invocations",
        Duration::from_secs(10),
        || {
            sandbox
                .points()
                .iter()
                .filter(|p| p.metric == "Duration")
                .count()
                >= 2
        },
    );
    // Telemetry the function sent after its last response (a background thread, say):
    // nothing flushes it but SHUTDOWN.
    sandbox.send_span("after the last invocation").await;

    let (status, after) = sandbox.shutdown().await;
    assert!(status.success(), "{status}:\n{}", after.stderr());
    let spans = after.spans();
    assert!(
        spans.iter().any(|s| s.name == "after the last invocation"),
        "SHUTDOWN drains what the batch processor held:\n{}",
        after.stderr()
    );
    for id in &ids {
        assert!(invocation_span(&spans, id).is_some(), "{id}");
    }

    let points = after.points();
    let of = |name: &str| -> Vec<&otlp_json::PointRecord> {
        points.iter().filter(|p| p.metric == name).collect()
    };
    assert_eq!(
        of("Duration").len(),
        3,
        "one report per invocation, the last one drained at SHUTDOWN"
    );
    for (name, unit) in [
        ("Duration", "ms"),
        ("BilledDuration", "ms"),
        ("MemorySize", "MB"),
        ("MaxMemoryUsed", "MB"),
        ("Invocations", "Count"),
        ("Errors", "Count"),
    ] {
        let found = of(name);
        assert_eq!(found.len(), 3, "{name}");
        for p in found {
            assert_eq!(p.unit, unit, "{name}");
            assert_eq!(p.service, FUNCTION, "{name}");
            assert_eq!(
                p.attributes.get("aws.emf.namespace"),
                Some(&json!("AuraStream/Lambda")),
                "{name}"
            );
            assert_eq!(p.attributes.get("FunctionName"), Some(&json!(FUNCTION)));
        }
    }
    assert!(
        of("MemorySize")
            .iter()
            .all(|p| otlp_json::number(&p.point) == Some(512.0))
    );
    assert!(
        of("Invocations")
            .iter()
            .all(|p| otlp_json::number(&p.point) == Some(1.0))
    );
}

/// A destination that cannot take data: the file exporter writes into a FIFO nobody reads
/// yet, so its first write blocks.
#[tokio::test]
async fn a_slow_destination_delays_neither_the_response_nor_the_freeze_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("traces.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let sandbox = Sandbox::start(
        dir,
        Options {
            traces: Some(fifo.clone()),
            flush_timeout: "300ms",
            ..Options::default()
        },
    )
    .await;

    let first = sandbox.invoke(0).await;
    // The response was taken at once; the extension is still flushing into the blocked
    // destination, which is the extension's time, not the caller's.
    let state = sandbox
        .sim
        .get_invocation_state(&first)
        .await
        .expect("state");
    assert_eq!(state.status, lambda_simulator::InvocationStatus::Success);
    assert!(!sandbox.sim.are_extensions_ready(&first).await);
    // The flush gives up after flush_timeout and lets the sandbox freeze.
    sandbox.wait_extension_done(&first).await;
    let overhead = sandbox
        .sim
        .get_extension_overhead_ms(&first)
        .await
        .unwrap_or_default();
    assert!(
        overhead < 5_000.0,
        "bounded by flush_timeout, not by the destination: {overhead} ms"
    );

    // The destination comes back: what missed the flush is still queued and arrives.
    let reader = std::thread::spawn(move || std::fs::read_to_string(&fifo).unwrap_or_default());
    let second = sandbox.invoke(1).await;
    sandbox.wait_extension_done(&second).await;
    let (status, after) = sandbox.shutdown().await;
    assert!(status.success(), "{status}:\n{}", after.stderr());
    let written = reader.join().expect("reader");
    let lines: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let spans = otlp_json::spans(&lines);
    for id in [&first, &second] {
        assert!(
            spans.iter().any(|s| s.name == format!("handle {id}")),
            "{id} lost:\n{}",
            after.stderr()
        );
        assert!(invocation_span(&spans, id).is_some(), "{id}");
    }
}

/// Every strategy, many warm invocations, then SHUTDOWN: every handler span and every
/// invocation span reaches the file exactly once. The background interval is an hour, so
/// under `periodic` and `adaptive` nothing but SHUTDOWN (and, for the first invocations of
/// `adaptive`, their end) exports: SHUTDOWN alone must drain what the pipelines hold.
#[tokio::test]
async fn every_strategy_delivers_every_span_by_the_end_of_shutdown() {
    for flush in ["end-of-invocation", "periodic", "adaptive"] {
        let sandbox = Sandbox::start(
            tempfile::tempdir().unwrap(),
            Options {
                flush,
                flush_interval: "1h",
                ..Options::default()
            },
        )
        .await;
        let mut ids = Vec::new();
        for n in 0..30 {
            let request_id = sandbox.invoke(n).await;
            sandbox.wait_extension_done(&request_id).await;
            ids.push(request_id);
        }
        let (status, after) = sandbox.shutdown().await;
        assert!(status.success(), "{flush}: {status}:\n{}", after.stderr());
        let spans = after.spans();
        for id in &ids {
            let handler = spans
                .iter()
                .filter(|s| s.name == format!("handle {id}"))
                .count();
            assert_eq!(
                handler,
                1,
                "{flush}: handler span of {id}:\n{}",
                after.stderr()
            );
            assert!(
                invocation_span(&spans, id).is_some(),
                "{flush}: invocation span of {id}:\n{}",
                after.stderr()
            );
        }
        let reports = after
            .points()
            .iter()
            .filter(|p| p.metric == "Duration")
            .count();
        assert_eq!(reports, ids.len(), "{flush}: one platform.report each");
    }
}

/// Under `periodic`, and under `adaptive` once invocations come often, the extension asks
/// for its next event without waiting for `platform.runtimeDone`: here Lambda emits it
/// (the simulator records it) but never delivers it, and the invocation deadline is ten
/// minutes away, so an extension waiting for it would not be ready. The data still leaves:
/// in the background (interval 200 ms) before SHUTDOWN.
#[tokio::test]
async fn handed_back_invocations_do_not_wait_for_runtime_done_and_export_in_the_background() {
    for (flush, warm_up) in [("periodic", 0), ("adaptive", 4)] {
        let sandbox = Sandbox::start(
            tempfile::tempdir().unwrap(),
            Options {
                flush,
                flush_interval: "200ms",
                ..Options::default()
            },
        )
        .await;
        // adaptive flushes the first invocations at their end (cold, then warming up).
        for n in 0..warm_up {
            let request_id = sandbox.invoke(n).await;
            sandbox.wait_extension_done(&request_id).await;
        }
        sandbox
            .sim
            .set_telemetry_delivery_policy("platform.runtimeDone", DeliveryPolicy::Suppress)
            .await;
        let mut ids = Vec::new();
        for n in warm_up..warm_up + 20 {
            let request_id = sandbox.invoke(n).await;
            sandbox.wait_extension_done(&request_id).await;
            ids.push(request_id);
        }
        let emitted = sandbox
            .sim
            .get_telemetry_events_by_type("platform.runtimeDone")
            .await;
        for id in &ids {
            assert!(
                emitted
                    .iter()
                    .any(|e| e.record.get("requestId") == Some(&json!(id))),
                "{flush}: runtimeDone of {id} was emitted (and withheld)"
            );
        }
        // Exported in the background, while the sandbox still runs.
        eventually(
            &format!("{flush}: every handler span before SHUTDOWN"),
            Duration::from_secs(10),
            || {
                let spans = sandbox.spans();
                ids.iter()
                    .all(|id| spans.iter().any(|s| s.name == format!("handle {id}")))
            },
        );
        let (status, after) = sandbox.shutdown().await;
        assert!(status.success(), "{flush}: {status}:\n{}", after.stderr());
        let spans = after.spans();
        for id in &ids {
            let handler = spans
                .iter()
                .filter(|s| s.name == format!("handle {id}"))
                .count();
            assert_eq!(handler, 1, "{flush}: {id}");
        }
    }
}

// Multi-threaded: the extension is waited for synchronously while the simulator, on this
// runtime, answers its registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_reported_to_lambda_and_the_extension_exits() {
    let sim = Simulator::builder().build().await.expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "receivers: { otlp: { protocols: { grpc: { endpont: x } } } }\n",
    )
    .unwrap();
    let output = Command::new(workspace_bin("aurastream-collector"))
        .env("AWS_LAMBDA_RUNTIME_API", sim.addr().to_string())
        .env("AURASTREAM_CONFIG", &config)
        .output()
        .expect("run the extension");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("endpont"), "{stderr}");
    // It registered first, so Lambda could be told why init failed.
    assert_eq!(sim.extension_count().await, 1);
    assert_eq!(
        sim.get_registered_extensions().await[0].name,
        "aurastream-collector",
        "registered under its executable's file name"
    );
}

/// Cold-start and steady-state figures for BENCHMARKS.md; run on demand with
/// `AURASTREAM_BIN=target/lambda/aurastream-collector cargo test -p aurastream-e2e --test
/// lambda_extension -- --ignored --nocapture measure`.
#[tokio::test]
#[ignore = "a measurement, not a test: prints figures for BENCHMARKS.md"]
async fn measure_cold_start_flush_and_memory() {
    let bin = std::env::var_os("AURASTREAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_bin("aurastream-collector"));
    let runs = 25;
    let mut registered = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..runs {
        let (reg, first_next) = cold_start(&bin).await;
        registered.push(reg);
        ready.push(first_next);
    }
    println!(
        "binary {}: exec -> registered median {:.2} ms, exec -> first event/next median {:.2} ms ({runs} runs)",
        bin.display(),
        median(&mut registered),
        median(&mut ready)
    );

    let sandbox = Sandbox::start(
        tempfile::tempdir().unwrap(),
        Options {
            bin: Some(bin),
            ..Options::default()
        },
    )
    .await;
    let pid = sandbox.extension.0.id();
    let mut overheads = Vec::new();
    let invocations = 1000;
    for n in 0..invocations {
        let request_id = sandbox.invoke(n).await;
        let responded = Instant::now();
        sandbox.wait_extension_done(&request_id).await;
        overheads.push(responded.elapsed().as_secs_f64() * 1000.0);
    }
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let flushes = flush_times_ms(&sandbox.stderr());
    let mut flush_sorted = flushes.clone();
    println!(
        "after {invocations} invocations: RSS {rss_kib}; flush per invocation median {:.3} ms, p99 {:.3} ms ({} flushes); \
         response -> extension ready (includes up to 25 ms of Telemetry API buffering) median {:.1} ms",
        median(&mut flush_sorted),
        percentile(&flush_sorted, 0.99),
        flushes.len(),
        median(&mut overheads)
    );
    let (status, _) = sandbox.shutdown().await;
    assert!(status.success());
}

/// What Lambda bills per warm invocation on the extension's account, per `flush` strategy:
/// from the function's response (as the runtime saw it answered) to the simulator
/// reporting the extension's next `event/next` (at once when the extension was already
/// waiting; the same "response → ready" as above), Telemetry API buffering 25 ms.
/// Run on demand with `AURASTREAM_BIN=... cargo test -p aurastream-e2e --test
/// lambda_extension -- --ignored --nocapture measure_response_to_next`.
#[tokio::test]
#[ignore = "a measurement, not a test: prints figures for BENCHMARKS.md"]
async fn measure_response_to_next_event_per_flush_strategy() {
    let bin = std::env::var_os("AURASTREAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_bin("aurastream-collector"));
    let (warm_up, measured) = (10, 500);
    for flush in ["end-of-invocation", "periodic", "adaptive"] {
        let sandbox = Sandbox::start(
            tempfile::tempdir().unwrap(),
            Options {
                flush,
                bin: Some(bin.clone()),
                ..Options::default()
            },
        )
        .await;
        let mut overheads = Vec::new();
        for n in 0..warm_up + measured {
            let request_id = sandbox.invoke(n).await;
            let responded = Instant::now();
            sandbox.wait_extension_done(&request_id).await;
            if n >= warm_up {
                overheads.push(responded.elapsed().as_secs_f64() * 1000.0);
            }
        }
        overheads.sort_by(f64::total_cmp);
        println!(
            "flush: {flush}: response -> next event/next over {measured} warm invocations \
             (after {warm_up}): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&overheads, 0.5),
            percentile(&overheads, 0.99)
        );
        let (status, after) = sandbox.shutdown().await;
        assert!(status.success(), "{flush}: {status}:\n{}", after.stderr());
        let spans = after.spans();
        let handled = spans
            .iter()
            .filter(|s| s.name.starts_with("handle "))
            .count();
        assert_eq!(
            handled,
            warm_up + measured,
            "{flush}: every span by SHUTDOWN"
        );
    }
}

/// Starts `bin` as an extension against a fresh simulator; returns milliseconds from
/// spawn to registration and to the first `event/next`.
async fn cold_start(bin: &Path) -> (f64, f64) {
    let sim = Simulator::builder().build().await.expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{} }} }} }}\n  lambda: {{ endpoint: 127.0.0.1:0 }}\n\
             exporters:\n  file: {{ path: {}/t.jsonl }}\nprocessors:\n  batch:\n\
             service:\n  pipelines:\n    traces: {{ receivers: [otlp, lambda], processors: [batch], exporters: [file] }}\n",
            free_port(),
            dir.path().display()
        ),
    )
    .unwrap();
    let spawned = chrono_now_ms();
    let mut child = Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", sim.addr().to_string())
        .env("AURASTREAM_CONFIG", &config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        if let Some(ext) = sim.get_registered_extensions().await.first()
            && let Some(first) = sim.first_next_poll_at(&ext.id).await
        {
            let reg = ext.registered_at.timestamp_micros() as f64 / 1000.0 - spawned;
            break (reg, first.timestamp_micros() as f64 / 1000.0 - spawned);
        }
        assert!(Instant::now() < deadline, "extension not ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn chrono_now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_micros() as f64 / 1000.0)
}

/// `elapsed=1.234ms` of the extension's "invocation flushed" debug lines, in ms.
fn flush_times_ms(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.contains("invocation flushed"))
        .filter_map(|l| {
            let v = l.split("elapsed=").nth(1)?.split_whitespace().next()?;
            if let Some(us) = v.strip_suffix("µs") {
                us.parse::<f64>().ok().map(|x| x / 1000.0)
            } else if let Some(ms) = v.strip_suffix("ms") {
                ms.parse().ok()
            } else if let Some(ns) = v.strip_suffix("ns") {
                ns.parse::<f64>().ok().map(|x| x / 1e6)
            } else {
                v.strip_suffix('s')?.parse::<f64>().ok().map(|x| x * 1000.0)
            }
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

#[test]
fn the_flag_without_a_runtime_api_says_what_is_missing() {
    let output = Command::new(workspace_bin("aurastream-collector"))
        .arg("--lambda-extension")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API"), "{stderr}");
}

#[test]
fn the_lambda_default_configuration_is_printed_and_valid() {
    let bin = workspace_bin("aurastream-collector");
    let printed = Command::new(&bin)
        .args(["print-default-config", "--lambda"])
        .output()
        .expect("run");
    assert!(printed.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lambda.yaml");
    std::fs::write(&path, &printed.stdout).unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("awsemf:\n    output_destination: stdout"),
        "{text}"
    );
    assert!(text.contains("exporters: [awsxray]"), "{text}");
    let valid = Command::new(&bin)
        .arg("validate")
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
}
