//! `aurastream-xray-sink`: a stand-in for the X-Ray `PutTraceSegments` API that takes every
//! document and answers `{"UnprocessedTraceSegments":[]}`, so a benchmark measures the
//! collector's `awsxray` exporter (translation, batching, signing, HTTP) rather than the
//! destination. moto, the functional stand-in used by the tests, parses and stores every
//! document in Python and becomes the bottleneck long before the collector does.
//!
//! It counts calls, documents and body bytes, and prints them as one JSON line when it gets
//! SIGTERM or Ctrl-C:
//!
//! ```sh
//! aurastream-xray-sink --listen 127.0.0.1:14500 &
//! # exporters: { awsxray: { endpoint: http://127.0.0.1:14500, region: us-east-1 } }
//! ```
//!
//! Signatures are not checked (any credentials will do), and the documents are counted, not
//! validated: the tests check their content against moto.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Parser;
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
    });
    println!("{summary}");
    Ok(())
}
