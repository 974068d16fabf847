//! SigV4-signed OTLP/HTTP to AWS's OTLP endpoints: the Python and Rust OpenTelemetry SDKs → the real
//! collector (`otlphttp` + `sigv4auth`) → `aurastream_e2e::otlp_peer`, the repository's
//! stand-in for X-Ray's and CloudWatch Logs' OTLP endpoints (a fake: no local peer serves
//! them; it recomputes every signature with the test's credentials).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aurastream_e2e::aws::use_test_credentials;
use aurastream_e2e::otlp_json;
use aurastream_e2e::otlp_peer::{Faults, OtlpPeer, PeerConfig};
use aurastream_e2e::{
    Collector, Ports, base_config, eventually, http_get, python_client, test_runtime,
    workspace_bin, workspace_root,
};
use serde_json::Value;

/// Runs the Python SDK against `endpoint` (OTLP/HTTP), `traces` traces; its manifest.
fn send_python(endpoint: &str, service: &str, traces: usize) -> Value {
    let out = python_client("send_otlp.py", "http", endpoint, service)
        .args(["--traces", &traces.to_string()])
        .output()
        .expect("run send_otlp.py");
    assert!(
        out.status.success(),
        "send_otlp.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout")
}

/// (name, trace id, span id) of every span the manifest lists.
fn sent_spans(manifest: &Value) -> BTreeSet<(String, String, String)> {
    manifest["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            let f = |i: usize| s[i].as_str().unwrap_or_default().to_string();
            (f(0), f(1), f(2))
        })
        .collect()
}

/// Every span the peer holds, checked to be there exactly once with its attributes.
fn assert_spans_arrived_once(peer: &OtlpPeer, manifest: &Value, service: &str) {
    let want = sent_spans(manifest);
    let spans = otlp_json::spans(&peer.spans_as_json());
    let got: Vec<_> = spans
        .iter()
        .map(|s| (s.name.clone(), s.trace_id.clone(), s.span_id.clone()))
        .collect();
    assert_eq!(got.len(), want.len(), "every span exactly once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    for s in &spans {
        assert_eq!(s.service, service);
        if s.name.starts_with("POST /analyze/") {
            assert_eq!(s.attributes["http.method"], "POST");
        } else {
            assert_eq!(s.attributes["rpc.method"], "DetectSentiment");
        }
    }
}

/// A collector whose traces go to `peer` through `otlphttp` + `sigv4auth`.
fn traces_config(ports: &Ports, peer: &str, extra: &str) -> String {
    format!(
        r#"{base}
  sigv4auth:
    region: us-east-1
    service: xray
processors:
  batch: {{ send_batch_size: 20, timeout: 100ms }}
exporters:
  otlphttp:
    traces_endpoint: http://{peer}/v1/traces
    xray_limits: true
    auth: {{ authenticator: sigv4auth }}
    retry_on_failure: {{ initial_interval: 10ms, max_interval: 100ms, max_elapsed_time: 0s }}
{extra}
  debug: {{ verbosity: basic }}
service:
  extensions: [health_check, sigv4auth]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlphttp] }}
    metrics: {{ receivers: [otlp], exporters: [debug] }}
    logs: {{ receivers: [otlp], exporters: [debug] }}
"#,
        base = base_config(ports),
    )
}

#[test]
fn the_adot_config_delivers_python_spans_and_logs_signed() {
    use_test_credentials();
    let rt = test_runtime();
    let (traces, traces_addr) = rt.block_on(OtlpPeer::start(PeerConfig::default()));
    let (logs, logs_addr) = rt.block_on(OtlpPeer::start(PeerConfig {
        service: "logs".into(),
        ..PeerConfig::default()
    }));
    // deploy/config/otlphttp-sigv4.yaml as shipped, with loopback ports and the peers as
    // the endpoints (everything else, signing included, is the file's).
    let ports = Ports::free();
    let dir = tempfile::tempdir().expect("temp dir");
    let overlay = dir.path().join("overlay.yaml");
    std::fs::write(
        &overlay,
        format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
exporters:
  otlphttp/traces: {{ traces_endpoint: http://{traces_addr}/v1/traces, xray_limits: true }}
  otlphttp/logs: {{ logs_endpoint: http://{logs_addr}/v1/logs }}
  debug:
service:
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [debug] }}
"#,
            grpc = ports.grpc,
            http = ports.http,
            health = ports.health,
        ),
    )
    .expect("overlay");
    let mut child = start(
        &[
            &workspace_root().join("deploy/config/otlphttp-sigv4.yaml"),
            &overlay,
        ],
        dir.path(),
        ports.health,
    );
    let manifest = send_python(&ports.http_url(), "adot-python", 20);
    eventually(
        "every span at the X-Ray stand-in",
        Duration::from_secs(30),
        || {
            otlp_json::spans(&traces.spans_as_json()).len() >= sent_spans(&manifest).len()
                && !logs.logs().is_empty()
        },
    );
    stop(&mut child);
    assert!(traces.refusals().is_empty(), "{:?}", traces.refusals());
    assert!(logs.refusals().is_empty(), "{:?}", logs.refusals());
    assert_spans_arrived_once(&traces, &manifest, "adot-python");

    let stored = logs.logs();
    assert!(
        stored
            .iter()
            .all(|l| l.group == "/aws/aurastream/application" && l.stream == "otlp")
    );
    let records = otlp_json::logs(&logs.logs_as_json());
    let ids: Vec<String> = records
        .iter()
        .map(|l| {
            assert_eq!(l.attributes["log.category"], "application");
            let body: Value =
                serde_json::from_str(l.body.as_str().expect("string body")).expect("JSON");
            body["request_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let want: Vec<String> = manifest["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, want, "every log record once, in order");
}

#[test]
fn rust_sdk_spans_reach_the_endpoint_signed_with_their_attributes() {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use_test_credentials();
    let rt = test_runtime();
    let (peer, addr) = rt.block_on(OtlpPeer::start(PeerConfig::default()));
    let mut c = Collector::start(|ports, _| traces_config(ports, &addr.to_string(), ""));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", c.ports.http_url()))
        .build()
        .expect("span exporter");
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("rust-sdk").build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("e2e-rust");
    let mut sent = BTreeSet::new();
    for i in 0..30 {
        let mut root = tracer
            .span_builder(format!("GET /analyze/{i}"))
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.request.method", "GET")])
            .start(&tracer);
        let cx =
            opentelemetry::Context::new().with_remote_span_context(root.span_context().clone());
        let mut child = tracer
            .span_builder("DynamoDB.GetItem")
            .with_attributes([KeyValue::new("rpc.service", "DynamoDB")])
            .start_with_context(&tracer, &cx);
        let trace_id = root.span_context().trace_id().to_string();
        sent.insert((
            format!("GET /analyze/{i}"),
            trace_id.clone(),
            root.span_context().span_id().to_string(),
        ));
        sent.insert((
            "DynamoDB.GetItem".to_string(),
            trace_id,
            child.span_context().span_id().to_string(),
        ));
        child.end();
        root.end();
    }
    provider.shutdown().expect("spans flushed");
    eventually(
        "every Rust span at the peer",
        Duration::from_secs(30),
        || otlp_json::spans(&peer.spans_as_json()).len() >= sent.len(),
    );
    assert_eq!(c.stop(), 0, "{}", c.stderr());
    assert!(peer.refusals().is_empty(), "{:?}", peer.refusals());
    let spans = otlp_json::spans(&peer.spans_as_json());
    let got: Vec<_> = spans
        .iter()
        .map(|s| (s.name.clone(), s.trace_id.clone(), s.span_id.clone()))
        .collect();
    assert_eq!(got.len(), sent.len(), "every span exactly once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), sent);
    for s in &spans {
        assert_eq!(s.service, "rust-sdk");
        if s.name.starts_with("GET ") {
            assert_eq!(s.attributes["http.request.method"], "GET");
        } else {
            assert_eq!(s.attributes["rpc.service"], "DynamoDB");
        }
    }
}

#[test]
fn thirty_percent_throttling_and_ten_percent_5xx_lose_nothing() {
    use_test_credentials();
    let rt = test_runtime();
    let (peer, addr) = rt.block_on(OtlpPeer::start(PeerConfig::default()));
    peer.set_faults(Faults {
        throttle_percent: 30,
        server_error_percent: 10,
    });
    let mut c = Collector::start(|ports, _| traces_config(ports, &addr.to_string(), ""));
    let manifest = send_python(&c.ports.http_url(), "throttled", 200);
    let want = sent_spans(&manifest).len();
    eventually(
        "every span past the faults",
        Duration::from_secs(60),
        || otlp_json::spans(&peer.spans_as_json()).len() >= want,
    );
    assert_eq!(c.stop(), 0, "{}", c.stderr());
    assert!(peer.injected() > 0, "faults were injected");
    assert_spans_arrived_once(&peer, &manifest, "throttled");
}

#[test]
fn a_bad_signature_config_fails_clearly_and_is_counted() {
    use_test_credentials();
    let rt = test_runtime();
    // The peer knows another secret for the collector's access key.
    let (peer, addr) = rt.block_on(OtlpPeer::start(PeerConfig {
        secret_key: "not-the-collectors".into(),
        ..PeerConfig::default()
    }));
    let mut c = Collector::start(|ports, _| traces_config(ports, &addr.to_string(), ""));
    let manifest = send_python(&c.ports.http_url(), "bad-signature", 5);
    let want = sent_spans(&manifest).len() as f64;
    eventually(
        "the spans counted as failed",
        Duration::from_secs(30),
        || {
            c.metric(
                "aurastream_exporter_failed_items_total",
                &[
                    r#"exporter="otlphttp""#,
                    r#"reason="InvalidSignatureException""#,
                ],
            ) >= want
        },
    );
    let stderr = c.stderr();
    assert_eq!(c.stop(), 0);
    assert!(
        stderr.contains("The request signature we calculated does not match"),
        "the service's message is logged:\n{stderr}"
    );
    assert!(otlp_json::spans(&peer.spans_as_json()).is_empty());
}

#[test]
fn a_killed_collector_with_a_persistent_queue_loses_nothing() {
    use_test_credentials();
    let rt = test_runtime();
    let (peer, addr) = rt.block_on(OtlpPeer::start(PeerConfig::default()));
    // Everything is refused until the restart, so all of it waits in the queue on disk.
    peer.set_faults(Faults {
        throttle_percent: 0,
        server_error_percent: 100,
    });
    let queue = tempfile::tempdir().expect("queue dir");
    let extra = format!(
        "    sending_queue: {{ storage: {}, fsync: always }}",
        queue.path().display()
    );
    let config = |ports: &Ports, _: &Path| traces_config(ports, &addr.to_string(), &extra);
    let first = Collector::start(config);
    let manifest = send_python(&first.ports.http_url(), "restarted", 40);
    eventually(
        "attempts refused by the peer",
        Duration::from_secs(30),
        || peer.injected() >= 2,
    );
    let status = Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    drop(first);
    peer.set_faults(Faults::default());
    let mut second = Collector::start(config);
    let want = sent_spans(&manifest).len();
    eventually(
        "every queued span after the restart",
        Duration::from_secs(60),
        || otlp_json::spans(&peer.spans_as_json()).len() >= want,
    );
    assert_eq!(second.stop(), 0, "{}", second.stderr());
    assert_spans_arrived_once(&peer, &manifest, "restarted");
}

#[test]
fn validate_check_aws_warns_with_the_fix_when_transaction_search_is_off() {
    use_test_credentials();
    let rt = test_runtime();
    let (peer, addr) = rt.block_on(OtlpPeer::start(PeerConfig::default()));
    let validate = || {
        Command::new(workspace_bin("aurastream-collector"))
            .arg("validate")
            .arg("--check-aws")
            .arg(workspace_root().join("deploy/config/otlphttp-sigv4.yaml"))
            .env("AWS_ENDPOINT_URL_XRAY", format!("http://{addr}"))
            .output()
            .expect("run validate")
    };
    let out = validate();
    assert!(out.status.success(), "a warning, not a failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("us-east-1: X-Ray delivers spans to XRay")
            && stderr.contains("update-trace-segment-destination --destination CloudWatchLogs"),
        "{stderr}"
    );
    peer.set_segment_destination("CloudWatchLogs", "ACTIVE");
    let out = validate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("us-east-1: Transaction Search is on"),
        "{stdout}"
    );
    assert!(peer.refusals().is_empty(), "signed: {:?}", peer.refusals());
}

/// The collector on `configs` (layered), healthy.
fn start(configs: &[&Path], dir: &Path, health: u16) -> Child {
    let mut command = Command::new(workspace_bin("aurastream-collector"));
    for c in configs {
        command.arg("--config").arg(c);
    }
    let mut child = command
        .args(["--log-level", "info"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn aurastream-collector");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{health}/health");
    loop {
        if let Some(status) = child.try_wait().expect("poll") {
            panic!(
                "collector exited with {status}:\n{}",
                std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
            );
        }
        if http_get(&url).is_ok_and(|b| b.contains("\"overall_status\":\"healthy\"")) {
            return child;
        }
        assert!(Instant::now() < deadline, "collector not healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, and a clean exit.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean exit: {status}");
}
