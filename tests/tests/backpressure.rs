//! A slow exporter pushes back on senders instead of growing memory, and nothing that was
//! acknowledged is lost.
//!
//! The slow exporter is the real `debug` exporter writing to a stdout pipe that the test
//! does not read: once the pipe's buffer is full, every write blocks, exactly as with a
//! stalled log shipper.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;

use aurastream_e2e::{Collector, base_config};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const QUEUE: usize = 1000;
const PER_REQUEST: usize = 50;

fn config(ports: &aurastream_e2e::Ports, _dir: &std::path::Path) -> String {
    format!(
        r#"{base}
processors:
  batch: {{ send_batch_size: 100, timeout: 50ms }}
exporters:
  debug: {{ verbosity: normal }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [debug], queue_size: {QUEUE} }}
"#,
        base = base_config(ports)
    )
}

fn request(first: u64) -> (ExportTraceServiceRequest, Vec<String>) {
    let spans: Vec<Span> = (first..first + PER_REQUEST as u64)
        .map(|n| Span {
            trace_id: [n.to_be_bytes(), 1u64.to_be_bytes()].concat(),
            span_id: n.to_be_bytes().to_vec(),
            name: "backpressure".into(),
            ..Default::default()
        })
        .collect();
    let ids = spans.iter().map(|s| hex(&s.span_id)).collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, ids)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    req: &ExportTraceServiceRequest,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("collector answers")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_answers_503_and_unavailable_and_loses_nothing() {
    let mut c = Collector::start_with(config, Stdio::piped());
    let mut stdout = c.child_mut().stdout.take().expect("piped stdout");
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", c.ports.http_url());

    let mut accepted: BTreeSet<String> = BTreeSet::new();
    let mut refused = None;
    for i in 0..2000u64 {
        let (req, ids) = request(1 + i * PER_REQUEST as u64);
        let r = post(&client, &url, &req).await;
        match r.status().as_u16() {
            200 => accepted.extend(ids),
            503 => {
                refused = Some(r);
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refused = refused.expect("the collector pushed back before 100,000 spans");
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Vec<u8> = refused.bytes().await.expect("body").to_vec();
    assert!(
        String::from_utf8_lossy(&body).contains("is full"),
        "says why"
    );

    // While the pipeline has no room for the refused request, the next ones are refused
    // before their bodies are read: counted per request, not per item.
    let (req, _) = request(20_000_000);
    let again = post(&client, &url, &req).await;
    assert_eq!(again.status().as_u16(), 503);
    assert_eq!(again.headers()["retry-after"], "1");
    let body = again.bytes().await.expect("body");
    assert!(
        String::from_utf8_lossy(&body).contains("is full"),
        "says why"
    );

    // gRPC senders get UNAVAILABLE, which OTLP clients retry.
    let (req, _) = request(10_000_000);
    let mut grpc = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(
        c.ports.grpc_url(),
    )
    .await
    .expect("connect");
    let err = grpc.export(req).await.expect_err("refused while full");
    assert_eq!(err.code(), tonic::Code::Unavailable);

    // Memory is bounded by the queue, not by what senders offer.
    let held = c.metric("aurastream_pipeline_queue_items", &["pipeline=\"traces\""]);
    assert!(held <= QUEUE as f64, "held {held} of {QUEUE}");
    assert_eq!(
        c.metric(
            "aurastream_receiver_refused_items_total",
            &["reason=\"queue_full\""]
        ),
        PER_REQUEST as f64,
        "only the first refused request was decoded"
    );
    assert_eq!(
        c.metric(
            "aurastream_receiver_refused_requests_total",
            &["reason=\"queue_full\""]
        ),
        2.0,
        "the HTTP and the gRPC request after it were refused unread"
    );

    // Let the exporter drain: read stdout to the end while the collector shuts down.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).expect("read stdout");
        out
    });
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
    let printed = reader.join().expect("reader thread");
    let mut seen = Vec::new();
    for line in printed.lines().filter(|l| l.starts_with("span ")) {
        let id = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("span_id="))
            .expect("span_id field");
        seen.push(id.to_string());
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "no span exported twice");
    assert_eq!(unique, accepted, "every acknowledged span was exported");
}

/// With the exporter stuck, SIGTERM still ends the collector within `shutdown_timeout`,
/// and what could not be flushed is reported, not silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_reports_what_was_not_flushed() {
    let mut c = Collector::start_with(
        |ports, dir| {
            config(ports, dir).replace("  pipelines:", "  shutdown_timeout: 1s\n  pipelines:")
        },
        Stdio::piped(),
    );
    // Keep the pipe open but never read it: the debug exporter blocks once it is full.
    let _stdout = c.child_mut().stdout.take().expect("piped stdout");
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", c.ports.http_url());
    for i in 0..2000u64 {
        let (req, _) = request(1 + i * PER_REQUEST as u64);
        let r = post(&client, &url, &req).await;
        if r.status() == 503 {
            break;
        }
    }
    let started = std::time::Instant::now();
    assert_eq!(c.stop(), 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "bounded by the deadline"
    );
    let log = c.stderr();
    assert!(
        log.contains("shutdown timeout reached: these items were not flushed"),
        "{log}"
    );
}
