//! The process-wide memory budget (`service.memory_limiter`) against the real binary and
//! requests built to break it:
//!
//! - a 20 MiB OTLP body of empty spans (2 bytes each on the wire, hundreds decoded: about
//!   5 GiB if decoded) over HTTP and over gRPC is refused before it is decoded (413 /
//!   `RESOURCE_EXHAUSTED`), counted, and the process stays far below its limit;
//! - 100 HTTP/1 and 100 gRPC requests at once, together asking for several times the
//!   budget once decoded: each is accepted or refused with 503 / `UNAVAILABLE` (retryable),
//!   peak RSS stays under the limit, and exactly the accepted spans reach the file.
//!
//! Peak RSS is the kernel's high-water mark of the collector process (`VmHWM` in
//! /proc/PID/status), which includes everything: the budget's account, the HTTP and gRPC
//! stacks' buffers, the allocator's slack.

use std::collections::BTreeSet;
use std::time::Duration;

use aurastream_e2e::{Collector, Ports, eventually, read_jsonl};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const LIMIT_MIB: u64 = 128;
/// The spike room covers what the account does not see: the process itself (about 30 MiB
/// for a debug build), the gRPC stack's message buffers and the allocator's slack.
const SPIKE_MIB: u64 = 80;

fn config(ports: &Ports, dir: &std::path::Path) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size_mib: 24 }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 512, timeout: 100ms }}
exporters:
  file/traces: {{ path: {dir}/traces.jsonl }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
service:
  extensions: [health_check]
  memory_limiter: {{ limit_mib: {LIMIT_MIB}, spike_limit_mib: {SPIKE_MIB} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [file/traces] }}
"#,
        grpc = ports.grpc,
        http = ports.http,
        health = ports.health,
        dir = dir.display()
    )
}

/// The collector's peak resident memory so far, in bytes.
fn peak_rss(c: &Collector) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// An `ExportTraceServiceRequest` of `len` bytes holding nothing but empty spans, written
/// by hand: building it as structs would take the test itself gigabytes.
fn empty_spans(len: usize) -> Vec<u8> {
    // request { resource_spans (1) { scope_spans (2) { spans (2): [ {} ... ] } } }
    let spans = (len - 16) / 2;
    let scope: Vec<u8> = [0x12u8, 0x00].repeat(spans);
    let mut resource = vec![0x12];
    varint(scope.len(), &mut resource);
    resource.extend_from_slice(&scope);
    let mut request = vec![0x0a];
    varint(resource.len(), &mut request);
    request.extend_from_slice(&resource);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_of_empty_spans_is_refused_before_it_is_decoded() {
    let c = Collector::start(config);
    let body = empty_spans(20 * 1024 * 1024 - 64);
    let before = peak_rss(&c);

    let http = reqwest::Client::new()
        .post(format!("{}/v1/traces", c.ports.http_url()))
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(http.status().as_u16(), 413);
    let message = http.text().await.unwrap();
    assert!(
        message.contains("more than the collector's memory limit"),
        "{message}"
    );

    // The same message over gRPC, framed by hand (a typed client would have to build it).
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            c.ports.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .expect("answered");
    assert_eq!(grpc.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");

    let peak = peak_rss(&c);
    eprintln!(
        "MEMORY 20 MiB of empty spans: peak RSS {} MiB (before {} MiB), limit {LIMIT_MIB} MiB",
        peak >> 20,
        before >> 20
    );
    assert!(peak < LIMIT_MIB << 20, "peak RSS {peak} B");
    assert_eq!(
        c.metric(
            "aurastream_receiver_refused_requests_total",
            &["reason=\"memory_limit_too_large\""]
        ),
        2.0
    );
    let health = aurastream_e2e::http_get(&format!("http://127.0.0.1:{}/health", c.ports.health))
        .expect("still serving");
    assert!(
        health.contains("\"overall_status\":\"healthy\""),
        "{health}"
    );
}

/// A request of `n` spans with ids from `first`, about 200 bytes each on the wire.
fn spans(first: u64, n: u64) -> (ExportTraceServiceRequest, Vec<String>) {
    let attribute = |k: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("v".repeat(16))),
        }),
        ..Default::default()
    };
    let spans: Vec<Span> = (first..first + n)
        .map(|i| Span {
            trace_id: [i.to_be_bytes(), 7u64.to_be_bytes()].concat(),
            span_id: i.to_be_bytes().to_vec(),
            name: format!("memory-budget-{i}"),
            attributes: ["a", "b", "c", "d", "e"].map(attribute).to_vec(),
            ..Default::default()
        })
        .collect();
    let ids = spans.iter().map(|s| hex(&s.span_id)).collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, ids)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every `spanId` in the file exporter's output.
fn delivered(c: &Collector) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("spanId", serde_json::Value::String(id)) => out.push(id.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = c.path("traces.jsonl");
    let mut out = Vec::new();
    if path.exists() {
        for line in read_jsonl(&path) {
            walk(&line, &mut out);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_at_once_are_admitted_within_the_budget_and_delivered() {
    const REQUESTS: u64 = 100;
    const SPANS: u64 = 1_000;
    let c = Collector::start(config);
    let url = format!("{}/v1/traces", c.ports.http_url());
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(c.ports.grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("connect");

    let mut calls = Vec::new();
    for r in 0..REQUESTS {
        let (req, ids) = spans(1 + r * SPANS, SPANS);
        let (http, url) = (http.clone(), url.clone());
        calls.push(tokio::spawn(async move {
            // Over the soft limit the receiver answers 503 before reading the body and
            // closes the connection; a client still writing its body then sees the
            // connection break instead of the 503. Either way nothing was accepted (and
            // OTLP clients retry both), so a broken write counts as a refusal here.
            let status = match http
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
            {
                Ok(response) => response.status().as_u16(),
                Err(e) if e.is_request() => 503,
                Err(e) => panic!("http: {e:?}"),
            };
            ("http", status, ids)
        }));
        let (req, ids) = spans(1 + (REQUESTS + r) * SPANS, SPANS);
        let mut grpc =
            TraceServiceClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
        calls.push(tokio::spawn(async move {
            let status = match grpc.export(req).await {
                Ok(_) => 200,
                Err(s) if s.code() == tonic::Code::Unavailable => 503,
                Err(s) => panic!("unexpected gRPC status {s:?}"),
            };
            ("grpc", status, ids)
        }));
    }
    let mut accepted = BTreeSet::new();
    let mut counts = std::collections::BTreeMap::new();
    for call in calls {
        let (transport, status, ids) = call.await.unwrap();
        *counts.entry((transport, status)).or_insert(0) += 1;
        match status {
            200 => accepted.extend(ids),
            503 => {}
            other => panic!("{transport}: unexpected status {other}"),
        }
    }
    assert!(!accepted.is_empty(), "{counts:?}");
    tokio::task::block_in_place(|| {
        eventually("accepted spans written", Duration::from_secs(120), || {
            delivered(&c).len() >= accepted.len()
        })
    });
    let written = delivered(&c);
    let unique: BTreeSet<String> = written.iter().cloned().collect();
    assert_eq!(written.len(), unique.len(), "no span written twice");
    assert_eq!(unique, accepted, "exactly the accepted spans are delivered");

    let peak = peak_rss(&c);
    let refused = c.metric("aurastream_receiver_refused_requests_total", &[])
        + c.metric(
            "aurastream_receiver_refused_items_total",
            &["reason=\"memory_limit\""],
        ) / SPANS as f64;
    eprintln!(
        "MEMORY {} requests at once (HTTP/1 + gRPC, {SPANS} spans each): {counts:?}, \
         {refused} refused for memory, peak RSS {} MiB, limit {LIMIT_MIB} MiB",
        2 * REQUESTS,
        peak >> 20
    );
    assert!(peak < LIMIT_MIB << 20, "peak RSS {peak} B");
}
