//! The `redaction` processor end to end: the Rust `opentelemetry-otlp` client (HTTP/protobuf)
//! and an X-Ray daemon datagram (the wire format the X-Ray SDKs send over UDP) go into the
//! real collector, which redacts them and writes them to files and, through moto, to
//! CloudWatch Logs and X-Ray. The test reads every destination back and checks that no raw
//! sensitive value and no blocked value appears anywhere in the exported bytes, that the
//! HMAC tokens are the ones Python's `hmac` module computes for the same key (so joins work
//! across signals), that they stay the same across a restart, and that the summary
//! attributes count what was masked.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::otlp_json;
use aurastream_e2e::{Collector, Ports, base_config, free_port, python, read_jsonl};
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Value as J, json};

const IP: &str = "203.0.113.77";
const AGENT: &str = "Mozilla/5.0 (X11; RedactionTest)";
const CUSTOMER: &str = "customer_4711";
const USER: &str = "user-8842";
const CARD: &str = "4111111111111111";
const EMAIL: &str = "ann.lee@example.com";
/// Every value that must not leave the collector as it came.
const RAW: &[&str] = &[IP, AGENT, CUSTOMER, USER, CARD, EMAIL];
const KEY: &str = "e2e-redaction-key-0123456789abcdef";

const GROUP: &str = "/aurastream/redaction/security";
const STREAM: &str = "redaction-e2e";

/// The processor as the shipped configs set it up (deploy/config/*.yaml), with the key
/// from a file and the names of what was masked in the summary.
fn redaction(key_file: &Path) -> String {
    format!(
        r#"
  redaction:
    allow_all_keys: true
    blocked_key_patterns:
      - '^(ip_address|user_agent|customer_id|user_id|CustomerId|client\.address|user_agent\.original|enduser\.id)$'
    blocked_values:
      - '4[0-9]{{12}}(?:[0-9]{{3}})?'
      - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{{2,}}'
    hash_function: hmac-sha256
    hmac_key_file: {key}
    summary: debug"#,
        key = key_file.display()
    )
}

fn config(ports: &Ports, dir: &Path, key_file: &Path, moto: &str, udp: u16) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
  awsxray:
    endpoint: 127.0.0.1:{udp}
    proxy_server: null
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
processors:{redaction}
  batch: {{ send_batch_size: 100, timeout: 100ms }}
exporters:
  file/traces: {{ path: {dir}/traces.jsonl }}
  file/metrics: {{ path: {dir}/metrics.jsonl }}
  file/logs: {{ path: {dir}/logs.jsonl }}
  awsxray:
    output_destination: cloudwatch
    endpoint: {moto}
    region: us-east-1
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s }}
  awscloudwatchlogs:
    region: us-east-1
    endpoint: "{moto}"
    log_group_name: /aurastream/redaction/application
    log_stream_name: {STREAM}
    categories:
      security: {{ log_group_name: {GROUP}, retention_in_days: 2557 }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp, awsxray], processors: [redaction, batch], exporters: [file/traces, awsxray] }}
    metrics: {{ receivers: [otlp], processors: [redaction, batch], exporters: [file/metrics] }}
    logs: {{ receivers: [otlp], processors: [redaction, batch], exporters: [file/logs, awscloudwatchlogs] }}
"#,
        http = ports.http,
        health = ports.health,
        redaction = redaction(key_file),
        dir = dir.display(),
    )
}

fn file_only_config(ports: &Ports, dir: &Path, key_file: &Path) -> String {
    format!(
        r#"{base}
processors:{redaction}
exporters:
  file/traces: {{ path: {dir}/traces.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [redaction], exporters: [file/traces] }}
"#,
        base = base_config(ports),
        redaction = redaction(key_file),
        dir = dir.display(),
    )
}

/// HMAC-SHA-256 of each value under `key`, computed by Python's standard library: an
/// implementation independent of the collector's.
fn python_hmac(key: &str, values: &[&str]) -> BTreeMap<String, String> {
    let script = "import hmac, hashlib, json, sys\n\
                  key = sys.argv[1].encode()\n\
                  print(json.dumps({v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest() \
                  for v in sys.argv[2:]}))";
    let out = std::process::Command::new(python())
        .args(["-c", script, key])
        .args(values)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("hmac tokens as JSON")
}

fn key_file(dir: &Path, key: &str) -> std::path::PathBuf {
    let path = dir.join("hmac.key");
    std::fs::write(&path, format!("{key}\n")).expect("write key");
    path
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("redaction-e2e")
        .with_attribute(KeyValue::new("enduser.id", USER))
        .build()
}

/// Spans carrying the sensitive values, as an instrumented service sends them.
fn send_spans(c: &Collector, spans: usize) {
    let resource = resource();
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(
            SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", c.ports.http_url()))
                .build()
                .expect("span exporter"),
        )
        .build();
    let tracer = tracer_provider.tracer("redaction-e2e");
    for i in 0..spans {
        let mut span = tracer
            .span_builder(format!("GET /analyze/{i}"))
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("client.address", IP),
                KeyValue::new("user_agent.original", AGENT),
                KeyValue::new("enduser.id", USER),
                KeyValue::new("customer_id", CUSTOMER),
                KeyValue::new("note", format!("paid with {CARD}, receipt to {EMAIL}")),
            ])
            .start(&tracer);
        span.add_event("payment", vec![KeyValue::new("card.number", CARD)]);
        span.end();
    }
    tracer_provider.shutdown().expect("traces flushed");
}

/// A counter with a `CustomerId` dimension and log records carrying the sensitive values.
fn send_metrics_and_logs(c: &Collector) {
    let resource = resource();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_periodic_exporter(
            MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/metrics", c.ports.http_url()))
                .build()
                .expect("metric exporter"),
        )
        .build();
    let requests = meter_provider
        .meter("redaction-e2e")
        .u64_counter("APIRequestCount")
        .build();
    requests.add(
        1,
        &[
            KeyValue::new("CustomerId", CUSTOMER),
            KeyValue::new("Endpoint", "/analyze"),
        ],
    );
    meter_provider.shutdown().expect("metrics flushed");

    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(
            LogExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/logs", c.ports.http_url()))
                .build()
                .expect("log exporter"),
        )
        .build();
    let logger = logger_provider.logger("redaction-e2e");
    // The monitoring guide's log_request: the event as JSON text in the message.
    let request = json!({
        "event_type": "api_request", "request_id": "r-1", "method": "GET", "path": "/analyze",
        "customer_id": CUSTOMER, "user_agent": AGENT, "ip_address": IP,
    });
    for body in [
        request.to_string(),
        format!("card {CARD} declined, notified {EMAIL}"),
    ] {
        let mut record = logger.create_log_record();
        record.set_severity_number(Severity::Info);
        record.set_body(AnyValue::String(body.into()));
        record.add_attribute("log.category", "security");
        record.add_attribute("user_id", USER);
        logger.emit(record);
    }
    logger_provider.shutdown().expect("logs flushed");
}

/// One segment as an X-Ray SDK sends it to the daemon: header line, then the document.
fn send_xray_datagram(port: u16) -> (String, String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let trace_id = format!("1-{:08x}-{:024x}", now.as_secs(), 0x5eed_u128);
    let id = "70de5b6f19ff9a0a".to_owned();
    let doc = json!({
        "name": "legacy-api", "id": id, "trace_id": trace_id,
        "start_time": now.as_secs_f64() - 0.2, "end_time": now.as_secs_f64(),
        "http": {
            "request": {"method": "POST", "url": "https://api.example/pay", "client_ip": IP, "user_agent": AGENT},
            "response": {"status": 402}
        },
        "user": USER,
        "annotations": {"customer_id": CUSTOMER, "tier": "gold"},
        "metadata": {"default": {"ip_address": IP, "note": format!("card {CARD}")}},
    });
    let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{doc}");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    socket
        .send_to(datagram.as_bytes(), ("127.0.0.1", port))
        .expect("send datagram");
    (trace_id, id)
}

fn assert_no_raw_value(place: &str, bytes: &str) {
    for raw in RAW {
        assert!(
            !bytes.contains(raw),
            "{place} holds the raw value {raw:?}:\n{bytes}"
        );
    }
}

fn text(v: Option<&J>) -> &str {
    v.and_then(J::as_str).unwrap_or_default()
}

#[test]
fn nothing_sensitive_reaches_files_cloudwatch_logs_or_xray() {
    use_test_credentials();
    let moto = Moto::start();
    let keys = tempfile::tempdir().expect("key dir");
    let key = key_file(keys.path(), KEY);
    let udp = free_port();
    let mut c = Collector::start(|ports, dir| config(ports, dir, &key, &moto.url(), udp));
    send_spans(&c, 3);
    send_metrics_and_logs(&c);
    let (xray_trace, xray_id) = send_xray_datagram(udp);

    let rt = aurastream_e2e::test_runtime();
    let delivered = || {
        rt.block_on(moto.xray_segments()).len() >= 4
            && rt.block_on(moto.log_messages(GROUP, STREAM)).len() >= 2
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !delivered() {
        assert!(
            Instant::now() < deadline,
            "4 segments in X-Ray and 2 events in CloudWatch Logs within 60 s; collector:\n{}\n{}",
            c.stderr(),
            c.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());

    let token = python_hmac(KEY, &[IP, AGENT, CUSTOMER, USER, CARD, EMAIL]);
    let t = |v: &str| token[v].clone();

    // Files: every byte written.
    let files: Vec<(&str, String)> = ["traces.jsonl", "metrics.jsonl", "logs.jsonl"]
        .into_iter()
        .map(|f| (f, std::fs::read_to_string(c.path(f)).unwrap_or_default()))
        .collect();
    for (name, bytes) in &files {
        assert!(!bytes.is_empty(), "{name} was written");
        assert_no_raw_value(name, bytes);
    }
    // CloudWatch Logs and X-Ray, as moto holds them.
    let messages = rt.block_on(moto.log_messages(GROUP, STREAM));
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_no_raw_value("CloudWatch Logs", &messages.join("\n"));
    let segments = rt.block_on(moto.xray_segments());
    assert_eq!(segments.len(), 4, "{segments:?}");
    assert_no_raw_value(
        "X-Ray",
        &J::Array(segments.iter().map(|(_, d)| d.clone()).collect()).to_string(),
    );

    // Spans: hashed where the key is sensitive, hashed matches inside free text, and a
    // summary that names what was masked.
    let traces = read_jsonl(&c.path("traces.jsonl"));
    let spans = otlp_json::spans(&traces);
    let otlp_spans: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("GET /analyze/"))
        .collect();
    assert_eq!(otlp_spans.len(), 3);
    for s in &otlp_spans {
        let a = &s.attributes;
        assert_eq!(text(a.get("client.address")), t(IP));
        assert_eq!(text(a.get("user_agent.original")), t(AGENT));
        assert_eq!(text(a.get("enduser.id")), t(USER));
        assert_eq!(text(a.get("customer_id")), t(CUSTOMER));
        assert_eq!(
            text(a.get("note")),
            format!("paid with {}, receipt to {}", t(CARD), t(EMAIL))
        );
        assert_eq!(text(a.get("http.request.method")), "GET");
        assert_eq!(
            text(a.get("redaction.masked.keys")),
            "card.number,client.address,customer_id,enduser.id,note,user_agent.original"
        );
        assert_eq!(a.get("redaction.masked.count").and_then(J::as_i64), Some(6));
    }
    let resource_user = traces[0]["resourceSpans"][0]["resource"]["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == "enduser.id"))
        .map(|kv| kv["value"]["stringValue"].clone());
    assert_eq!(
        resource_user,
        Some(json!(t(USER))),
        "resource attributes too"
    );

    // The daemon's segment, as X-Ray received it: its own document, redacted field by
    // field, ids intact.
    let (_, doc) = segments
        .iter()
        .find(|(id, _)| *id == xray_id)
        .expect("the daemon's segment in X-Ray");
    assert_eq!(doc["trace_id"], json!(xray_trace));
    assert_eq!(doc["http"]["request"]["client_ip"], json!(t(IP)));
    assert_eq!(doc["http"]["request"]["user_agent"], json!(t(AGENT)));
    assert_eq!(doc["http"]["request"]["method"], json!("POST"));
    assert_eq!(doc["user"], json!(t(USER)));
    assert_eq!(doc["annotations"]["customer_id"], json!(t(CUSTOMER)));
    assert_eq!(doc["annotations"]["tier"], json!("gold"));
    assert_eq!(doc["metadata"]["default"]["ip_address"], json!(t(IP)));
    assert_eq!(
        doc["metadata"]["default"]["note"],
        json!(format!("card {}", t(CARD)))
    );
    let daemon_span = spans
        .iter()
        .find(|s| s.name == "legacy-api")
        .expect("daemon span in file");
    assert_eq!(
        text(daemon_span.attributes.get("redaction.masked.keys")),
        "client.address,client.address,customer_id,customer_id,enduser.id,enduser.id,\
         ip_address,ip_address,note,note,user_agent.original,user_agent.original",
        "the span's attributes and its document"
    );

    // Logs: the guide's JSON message hashed by key (same token as the span's address: the
    // join still works), free text with its card and email hashed.
    let request = messages
        .iter()
        .map(|m| serde_json::from_str::<J>(m).expect("JSON log event"))
        .find(|m| m["event_type"] == "api_request")
        .expect("the request event");
    assert_eq!(request["ip_address"], json!(t(IP)));
    assert_eq!(request["customer_id"], json!(t(CUSTOMER)));
    assert_eq!(request["user_agent"], json!(t(AGENT)));
    assert_eq!(request["path"], json!("/analyze"));
    let logs = otlp_json::logs(&read_jsonl(&c.path("logs.jsonl")));
    assert_eq!(logs.len(), 2);
    let free_text = logs
        .iter()
        .find(|l| l.body.as_str().is_some_and(|b| b.starts_with("card ")))
        .expect("the free-text record");
    assert_eq!(
        free_text.body,
        json!(format!("card {} declined, notified {}", t(CARD), t(EMAIL)))
    );
    assert_eq!(text(free_text.attributes.get("user_id")), t(USER));
    assert_eq!(
        text(free_text.attributes.get("redaction.masked.keys")),
        "body,user_id"
    );

    // Metrics: the CustomerId dimension hashed, the others kept.
    let points = otlp_json::points(&read_jsonl(&c.path("metrics.jsonl")));
    let point = points
        .iter()
        .find(|p| p.metric == "APIRequestCount")
        .expect("APIRequestCount");
    assert_eq!(text(point.attributes.get("CustomerId")), t(CUSTOMER));
    assert_eq!(text(point.attributes.get("Endpoint")), "/analyze");
}

#[test]
fn tokens_are_stable_across_restarts_for_one_key_and_differ_for_another() {
    let keys = tempfile::tempdir().expect("key dir");
    let run = |key: &str| {
        let path = key_file(keys.path(), key);
        let mut c = Collector::start(|ports, dir| file_only_config(ports, dir, &path));
        send_spans(&c, 1);
        assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
        let spans = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")));
        assert_eq!(spans.len(), 1);
        text(spans[0].attributes.get("client.address")).to_owned()
    };
    let first = run(KEY);
    let second = run(KEY);
    assert_eq!(first, second, "same key, same token after a restart");
    assert_eq!(first, python_hmac(KEY, &[IP])[IP]);
    let other = run("another-key-of-enough-length-42");
    assert_ne!(other, first);
    assert_eq!(other.len(), 64);
}
