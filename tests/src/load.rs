//! A load generator for durability tests: OTLP/HTTP protobuf requests whose every item
//! carries a unique key, sent the way a well-behaved OTLP client sends them (a refused
//! request, 503 or 429, is retried after `Retry-After`), and a record of what the collector
//! acknowledged.
//!
//! The keys are what the destination is checked against: the span id (as X-Ray's segment
//! id), `dlog-<n>` inside a log record's body, and the `seq` label of a gauge point (an EMF
//! dimension).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

/// The signal of a request, with its OTLP/HTTP path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spans,
    Logs,
    Metrics,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Spans => "/v1/traces",
            Kind::Logs => "/v1/logs",
            Kind::Metrics => "/v1/metrics",
        }
    }
}

/// What a sender saw.
#[derive(Debug, Default)]
pub struct SendStats {
    /// Requests answered 503/429 (backpressure) before they were accepted.
    pub refused: AtomicU64,
    /// Requests that could not reach the collector at all.
    pub unreachable: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn string_attr(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![string_attr("service.name", "durability".into())],
        ..Default::default()
    })
}

/// `n` spans with sequence numbers from `first`; 50 spans share a trace. Keys: span ids in
/// hex. The trace id starts with the current epoch second, as X-Ray ids do.
///
/// 50 is the number of documents per `PutTraceSegments` call, so each call carries one
/// trace: moto's X-Ray store creates a trace's entry without a lock, and two calls for the
/// same new trace arriving at once can lose one call's segments in moto (not in the
/// collector).
pub fn spans(first: u64, n: u64, run: u32) -> (Vec<u8>, Vec<String>) {
    let now = now_nanos();
    let secs = u32::try_from(now / 1_000_000_000).unwrap_or(u32::MAX);
    let mut keys = Vec::new();
    let spans: Vec<Span> = (first..first + n)
        .map(|seq| {
            let trace = [
                secs.to_be_bytes().as_slice(),
                run.to_be_bytes().as_slice(),
                (seq / 50 + 1).to_be_bytes().as_slice(),
            ]
            .concat();
            let span_id = (seq + 1).to_be_bytes().to_vec();
            keys.push(span_id.iter().map(|b| format!("{b:02x}")).collect());
            Span {
                trace_id: trace,
                span_id,
                name: format!("durability-{seq}"),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: now - 1_000_000,
                end_time_unix_nano: now,
                ..Default::default()
            }
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), keys)
}

/// `n` log records; keys `dlog-<seq>`, which is also the body.
pub fn logs(first: u64, n: u64) -> (Vec<u8>, Vec<String>) {
    let now = now_nanos();
    let keys: Vec<String> = (first..first + n).map(|s| format!("dlog-{s}")).collect();
    let records = keys
        .iter()
        .map(|k| LogRecord {
            time_unix_nano: now,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(k.clone())),
            }),
            ..Default::default()
        })
        .collect();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), keys)
}

/// `n` gauge points of `durability.value`, each with its own `seq` label (so each becomes
/// its own EMF document); keys: the `seq` values.
pub fn metrics(first: u64, n: u64) -> (Vec<u8>, Vec<String>) {
    let now = now_nanos();
    let keys: Vec<String> = (first..first + n).map(|s| s.to_string()).collect();
    let points = keys
        .iter()
        .zip(first..)
        .map(|(k, seq)| NumberDataPoint {
            attributes: vec![string_attr("seq", k.clone())],
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(seq as f64)),
            ..Default::default()
        })
        .collect();
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "durability.value".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), keys)
}

/// Sends one request until the collector accepts it. A refusal (503/429) is waited out
/// as `Retry-After` says (at most a second), as an OTLP client does; any other status is a
/// test failure. Returns once the items are acknowledged.
pub async fn send_until_accepted(
    client: &reqwest::Client,
    base_url: &str,
    kind: Kind,
    body: Vec<u8>,
    stats: &SendStats,
) {
    let url = format!("{base_url}{}", kind.path());
    loop {
        let sent = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(_) => {
                stats.unreachable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match response.status().as_u16() {
            200 => return,
            503 | 429 => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => panic!(
                "collector answered {other} to {}: {}",
                kind.path(),
                response.text().await.unwrap_or_default()
            ),
        }
    }
}

/// Sends `total` items of `kind` in requests of `per_request`, `concurrency` requests at a
/// time; returns the keys the collector acknowledged (all of them, since refused requests
/// are retried until accepted).
pub async fn send_all(
    base_url: String,
    kind: Kind,
    total: u64,
    per_request: u64,
    concurrency: usize,
    run: u32,
    stats: Arc<SendStats>,
) -> Vec<String> {
    use futures_like::for_each_concurrent;
    let client = reqwest::Client::new();
    let starts: Vec<u64> = (0..total).step_by(per_request.max(1) as usize).collect();
    let keys = for_each_concurrent(starts, concurrency, |first| {
        let client = client.clone();
        let base_url = base_url.clone();
        let stats = stats.clone();
        async move {
            let n = per_request.min(total - first);
            let (body, keys) = match kind {
                Kind::Spans => spans(first, n, run),
                Kind::Logs => logs(first, n),
                Kind::Metrics => metrics(first, n),
            };
            send_until_accepted(&client, &base_url, kind, body, &stats).await;
            keys
        }
    })
    .await;
    keys.into_iter().flatten().collect()
}

/// A bounded-concurrency map over tokio tasks (the test crate has no `futures` dependency).
mod futures_like {
    use std::future::Future;

    use tokio::task::JoinSet;

    pub async fn for_each_concurrent<I, F, Fut, T>(items: Vec<I>, limit: usize, f: F) -> Vec<T>
    where
        F: Fn(I) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut out = Vec::with_capacity(items.len());
        let mut running = JoinSet::new();
        for item in items {
            if running.len() >= limit.max(1)
                && let Some(done) = running.join_next().await
            {
                out.push(done.expect("sender task"));
            }
            running.spawn(f(item));
        }
        while let Some(done) = running.join_next().await {
            out.push(done.expect("sender task"));
        }
        out
    }
}
