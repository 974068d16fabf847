//! The `awsxray` exporter against a fake X-Ray endpoint that throttles, fails and leaves
//! documents unprocessed: nothing may be lost, nothing sent twice, and the counts must add
//! up the way the pipeline driver sees them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::config::{Credentials, SharedCredentialsProvider};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};

use aurastream_collector::component::{ExportError, Exporter, Pending};
use aurastream_collector::exporter::xray::XrayExporter;
use aurastream_collector::exporter::xray::config::XrayExporterConfig;
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

#[derive(Clone, Copy)]
enum Mode {
    /// Every other call throttled (429), every sixth a 500; of the calls that get through,
    /// every fourth document is left unprocessed the first time it is seen, and documents
    /// with the attribute `poison` are refused as invalid every time.
    Flaky,
    /// Every call refused with 403 AccessDeniedException.
    Deny,
    /// Every call throttled.
    Throttle,
}

struct FakeXray {
    mode: Mode,
    calls: AtomicUsize,
    throttled: AtomicUsize,
    failed: AtomicUsize,
    unprocessed: AtomicUsize,
    max_documents_per_call: AtomicUsize,
    seen_unprocessed: Mutex<HashSet<String>>,
    accepted: Mutex<HashMap<String, usize>>,
}

fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", code),
            ("content-type", "application/json"),
        ],
        json!({"__type": code, "message": message}).to_string(),
    )
        .into_response()
}

async fn put_trace_segments(State(fake): State<Arc<FakeXray>>, body: Bytes) -> Response {
    let n = fake.calls.fetch_add(1, Ordering::SeqCst);
    if let Mode::Deny = fake.mode {
        return aws_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "not authorized",
        );
    }
    if matches!(fake.mode, Mode::Throttle) || n % 2 == 0 {
        fake.throttled.fetch_add(1, Ordering::SeqCst);
        return aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottledException",
            "Rate exceeded",
        );
    }
    if n % 6 == 1 {
        fake.failed.fetch_add(1, Ordering::SeqCst);
        return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "oops");
    }
    let request: J = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestException",
                &e.to_string(),
            );
        }
    };
    let docs = request["TraceSegmentDocuments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    fake.max_documents_per_call
        .fetch_max(docs.len(), Ordering::SeqCst);
    let mut unprocessed = Vec::new();
    for (pos, doc) in docs.iter().enumerate() {
        let doc: J = serde_json::from_str(doc.as_str().unwrap_or_default()).unwrap_or_default();
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        if doc["metadata"]["default"]["poison"] == "yes" {
            unprocessed.push(json!({"Id": id, "ErrorCode": "InvalidSegment", "Message": "bad"}));
            continue;
        }
        if pos % 4 == 0 && fake.seen_unprocessed.lock().unwrap().insert(id.clone()) {
            fake.unprocessed.fetch_add(1, Ordering::SeqCst);
            unprocessed
                .push(json!({"Id": id, "ErrorCode": "InternalFailure", "Message": "try again"}));
            continue;
        }
        *fake.accepted.lock().unwrap().entry(id).or_default() += 1;
    }
    (
        [("content-type", "application/json")],
        json!({"UnprocessedTraceSegments": unprocessed}).to_string(),
    )
        .into_response()
}

async fn start(mode: Mode) -> (String, Arc<FakeXray>) {
    let fake = Arc::new(FakeXray {
        mode,
        calls: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        unprocessed: AtomicUsize::new(0),
        max_documents_per_call: AtomicUsize::new(0),
        seen_unprocessed: Mutex::new(HashSet::new()),
        accepted: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new()
        .route("/TraceSegments", axum::routing::post(put_trace_segments))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

fn exporter(url: &str) -> XrayExporter {
    let config = XrayExporterConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(url.into()),
        num_workers: 4,
        ..Default::default()
    };
    config.validate().unwrap();
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "static",
        )))
        .build();
    XrayExporter::new("awsxray", &config, &SelfMetrics::new()).with_sdk_config(sdk)
}

fn attr(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `resources` × `per_resource` spans with distinct ids; every 50th is `poison`.
fn batch(resources: usize, per_resource: usize) -> SignalData {
    let mut n: u64 = 0;
    SignalData::Traces(
        (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attr("service.name", &format!("svc-{r}"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..per_resource)
                        .map(|_| {
                            n += 1;
                            Span {
                                trace_id: [[0x5a; 8], n.to_be_bytes()].concat(),
                                span_id: n.to_be_bytes().to_vec(),
                                name: format!("op-{n}"),
                                attributes: if n.is_multiple_of(50) {
                                    vec![attr("poison", "yes")]
                                } else {
                                    Vec::new()
                                },
                                kind: SpanKind::Server as i32,
                                start_time_unix_nano: 1_700_000_000_000_000_000 + n,
                                end_time_unix_nano: 1_700_000_001_000_000_000,
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    )
}

/// What the pipeline driver would count: delivered items and failed items by reason.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    failed: BTreeMap<String, usize>,
    attempts: usize,
    /// Times the batch was handed to the exporter (translated): once, however many retries.
    exports: usize,
}

/// Calls the exporter the way the driver does: the batch once, then whatever requests it
/// hands back, as they are.
async fn drive(exporter: &XrayExporter, data: SignalData) -> Tally {
    let mut tally = Tally::default();
    let mut pending: Option<Box<dyn Pending>> = None;
    for _ in 0..50 {
        tally.attempts += 1;
        let (items, result) = match pending.take() {
            Some(p) => (p.item_count(), p.send().await),
            None => {
                tally.exports += 1;
                (data.item_count(), exporter.export(&data).await)
            }
        };
        match result {
            Ok(report) => {
                tally.sent += items - report.dropped_items();
                for (reason, n) in report.dropped {
                    *tally.failed.entry(reason.to_string()).or_default() += n;
                }
                return tally;
            }
            Err(ExportError::Retry {
                pending: rest,
                report,
                ..
            }) => {
                let done = items - rest.item_count();
                tally.sent += done - report.dropped_items();
                for (reason, n) in report.dropped {
                    *tally.failed.entry(reason.to_string()).or_default() += n;
                }
                pending = Some(rest);
            }
            Err(ExportError::Retryable { .. }) => {}
            Err(ExportError::Permanent { reason, .. }) => {
                *tally.failed.entry(reason.to_string()).or_default() += items;
                return tally;
            }
        }
    }
    panic!("not delivered after 50 attempts: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_unprocessed_documents_lose_nothing() {
    let (url, fake) = start(Mode::Flaky).await;
    let exporter = exporter(&url);
    let total = 3 * 110;
    let tally = drive(&exporter, batch(3, 110)).await;

    let poison = total / 50;
    assert_eq!(
        tally.failed,
        BTreeMap::from([("InvalidSegment".to_string(), poison)])
    );
    assert_eq!(
        tally.sent + poison,
        total,
        "every span counted once: {tally:?}"
    );
    assert_eq!(
        tally.exports, 1,
        "retries send the documents already built; the batch is translated once: {tally:?}"
    );
    assert!(
        tally.attempts > 1,
        "the flaky endpoint made retries necessary"
    );

    let accepted = fake.accepted.lock().unwrap();
    assert_eq!(
        accepted.len(),
        total - poison,
        "every good document arrived"
    );
    assert!(
        accepted.values().all(|&n| n == 1),
        "no document was accepted twice"
    );
    let expected: HashSet<String> = (1..=total as u64)
        .filter(|n| n % 50 != 0)
        .map(|n| format!("{n:016x}"))
        .collect();
    assert_eq!(accepted.keys().cloned().collect::<HashSet<_>>(), expected);

    assert!(fake.throttled.load(Ordering::SeqCst) > 0);
    assert!(fake.failed.load(Ordering::SeqCst) > 0);
    assert!(fake.unprocessed.load(Ordering::SeqCst) > 0);
    let max = fake.max_documents_per_call.load(Ordering::SeqCst);
    assert!(
        (1..=50).contains(&max),
        "at most 50 documents per call, saw {max}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_permanent_with_the_aws_code() {
    let (url, fake) = start(Mode::Deny).await;
    let exporter = exporter(&url);
    let err = exporter.export(&batch(1, 60)).await.unwrap_err();
    match &err {
        ExportError::Permanent { reason, message } => {
            assert_eq!(reason, "AccessDeniedException");
            assert!(message.contains("not authorized"), "{message}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // 60 documents = 2 calls, each tried once: permanent errors are not retried.
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

/// The value of the first `/metrics` sample whose line starts with `prefix` and holds
/// every one of `labels`.
fn sample(text: &str, prefix: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|lb| l.contains(lb)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_driver_counts_every_span_once() {
    use std::time::Duration;

    use aurastream_collector::component::{RetryConfig, SendingQueueConfig};
    use aurastream_collector::model::Batch;
    use aurastream_collector::model::ItemBudget;
    use aurastream_collector::model::Signal;
    use aurastream_collector::topology::driver::{Driver, ExporterState};
    use prometheus_client::metrics::gauge::Gauge;

    let (url, fake) = start(Mode::Flaky).await;
    let metrics = Arc::new(SelfMetrics::new());
    let exporter: Arc<dyn Exporter> = Arc::new(exporter(&url));
    let retry = RetryConfig {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let driver = Driver::new(
        "awsxray",
        "traces",
        exporter,
        retry,
        &SendingQueueConfig {
            num_consumers: 2,
            ..Default::default()
        },
        Arc::new(Mutex::new(ExporterState::default())),
        metrics.clone(),
        Signal::Traces,
    );
    let budget = ItemBudget::new(10_000, Gauge::default(), Gauge::default());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut total = 0;
    for _ in 0..4 {
        let data = batch(2, 100);
        total += data.item_count();
        let ticket = budget.try_admit(data.item_count()).unwrap();
        tx.send(Arc::new(Batch { data, ticket })).await.unwrap();
    }
    drop(tx);
    driver.run(rx).await;

    let text = metrics.encode();
    let exporter_label = "exporter=\"awsxray\"";
    let sent = sample(
        &text,
        "aurastream_exporter_sent_items_total",
        &[exporter_label],
    );
    let refused = sample(
        &text,
        "aurastream_exporter_failed_items_total",
        &[exporter_label, "reason=\"InvalidSegment\""],
    );
    // Every batch reuses span ids 1..=200, so 4 spans per batch carry `poison`.
    assert_eq!(refused, 4 * 4, "{text}");
    assert_eq!(sent as usize + refused as usize, total, "{text}");
    assert!(
        !text.contains("reason=\"retries_exhausted\""),
        "nothing given up: {text}"
    );
    let accepted: usize = fake.accepted.lock().unwrap().values().sum();
    assert_eq!(accepted, sent as usize, "what was counted as sent arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_throttling_hands_the_documents_back_to_the_driver_after_one_call() {
    let (url, fake) = start(Mode::Throttle).await;
    let exporter = exporter(&url);
    let err = exporter.export(&batch(1, 10)).await.unwrap_err();
    match &err {
        ExportError::Retry {
            reason, pending, ..
        } => {
            assert_eq!(reason, "ThrottledException");
            assert_eq!(pending.item_count(), 10, "every document is handed back");
        }
        other => panic!("expected the documents back for a retry, got {other:?}"),
    }
    // One call: waiting and retrying is the driver's job, not the exporter's.
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert!(fake.accepted.lock().unwrap().is_empty());
}
