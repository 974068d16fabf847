//! `aurastream-xray-sink`: a stand-in for X-Ray's two ingestion APIs that takes everything,
//! so a benchmark measures the collector's exporter (translation, batching, signing, HTTP)
//! rather than the destination:
//!
//! - `POST /TraceSegments` (PutTraceSegments) answers `{"UnprocessedTraceSegments":[]}`;
//! - `POST /v1/traces` (X-Ray's OTLP endpoint, and `/v1/logs` for CloudWatch Logs') decodes
//!   the OTLP protobuf, gzip or not, counts the spans or records and answers an empty
//!   export response.
//!
//! moto, the functional stand-in used by the tests, parses and stores every document in
//! Python and becomes the bottleneck long before the collector does; no local peer serves
//! the OTLP endpoints at all (the tests' SigV4-checking peer is in `tests/`).
//!
//! It counts calls, documents, OTLP items and body bytes, and prints them as one JSON line
//! when it gets SIGTERM or Ctrl-C:
//!
//! ```sh
//! aurastream-xray-sink --listen 127.0.0.1:14500 &
//! # exporters: { awsxray: { endpoint: http://127.0.0.1:14500, region: us-east-1 } }
//! # or:        { otlphttp: { endpoint: http://127.0.0.1:14500, auth: { authenticator: sigv4auth } } }
//! ```
//!
//! Signatures are not checked (any credentials will do), and the documents are counted, not
//! validated: the tests check their content against moto and the SigV4-checking peer.
#![forbid(unsafe_code)]

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Parser, Debug)]
#[command(name = "aurastream-xray-sink", about, long_about = None)]
/// Accepts X-Ray PutTraceSegments calls and counts what they carry.
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:14500")]
    listen: String,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    documents: AtomicU64,
    bytes: AtomicU64,
    bad_requests: AtomicU64,
    /// Spans and log records taken through the OTLP endpoints.
    otlp_spans: AtomicU64,
    otlp_logs: AtomicU64,
}

/// The request body: only the number of documents matters here.
#[derive(Deserialize)]
struct PutTraceSegments {
    #[serde(rename = "TraceSegmentDocuments")]
    documents: Vec<IgnoredAny>,
}

async fn put_trace_segments(
    State(counters): State<Arc<Counters>>,
    body: Bytes,
) -> impl IntoResponse {
    counters.calls.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    match serde_json::from_slice::<PutTraceSegments>(&body) {
        Ok(put) => {
            counters
                .documents
                .fetch_add(put.documents.len() as u64, Ordering::Relaxed);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"UnprocessedTraceSegments":[]}"#,
            )
        }
        Err(_) => {
            counters.bad_requests.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"__type":"InvalidRequestException","message":"not a PutTraceSegments body"}"#,
            )
        }
    }
}

/// An OTLP/HTTP protobuf body, inflated when the request says gzip.
fn otlp_body(headers: &HeaderMap, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

/// Answers an OTLP export: 200 with the (empty) protobuf response, or 400 with a reason.
fn otlp_answer(counters: &Counters, counted: Result<u64, String>, into: &AtomicU64) -> Response {
    match counted {
        Ok(n) => {
            into.fetch_add(n, Ordering::Relaxed);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::new(),
            )
                .into_response()
        }
        Err(reason) => {
            counters.bad_requests.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, reason).into_response()
        }
    }
}

fn count_otlp(counters: &Counters, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    counters.calls.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    otlp_body(headers, body).map_err(|e| format!("bad gzip body: {e}"))
}

async fn otlp_traces(
    State(counters): State<Arc<Counters>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counted = count_otlp(&counters, &headers, &body).and_then(|raw| {
        ExportTraceServiceRequest::decode(raw.as_slice())
            .map_err(|e| format!("not an OTLP trace request: {e}"))
            .map(|r| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|ss| ss.spans.len() as u64)
                    .sum()
            })
    });
    otlp_answer(&counters, counted, &counters.otlp_spans)
}

async fn otlp_logs(
    State(counters): State<Arc<Counters>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counted = count_otlp(&counters, &headers, &body).and_then(|raw| {
        ExportLogsServiceRequest::decode(raw.as_slice())
            .map_err(|e| format!("not an OTLP logs request: {e}"))
            .map(|r| {
                r.resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len() as u64)
                    .sum()
            })
    });
    otlp_answer(&counters, counted, &counters.otlp_logs)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen for SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/TraceSegments", post(put_trace_segments))
        .route("/v1/traces", post(otlp_traces))
        .route("/v1/logs", post(otlp_logs))
        // X-Ray's OTLP endpoint takes up to 5 MB uncompressed; axum's default stops at 2 MB.
        .layer(DefaultBodyLimit::max(16 << 20))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let summary = serde_json::json!({
        "calls": counters.calls.load(Ordering::Relaxed),
        "documents": counters.documents.load(Ordering::Relaxed),
        "bytes": counters.bytes.load(Ordering::Relaxed),
        "bad_requests": counters.bad_requests.load(Ordering::Relaxed),
        "otlp_spans": counters.otlp_spans.load(Ordering::Relaxed),
        "otlp_logs": counters.otlp_logs.load(Ordering::Relaxed),
    });
    println!("{summary}");
    Ok(())
}
