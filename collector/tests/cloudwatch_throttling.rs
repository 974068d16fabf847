//! The CloudWatch Logs sink against an in-repo fake endpoint (axum) that throttles, rejects
//! and refuses like the real service does and moto does not: nothing may be lost or sent
//! twice, and what is dropped is counted with its reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use aurastream_collector::aws::cloudwatch_logs::service::LogsService;
use aurastream_collector::component::RetryConfig;
use aurastream_collector::component::{ExportError, ExportReport, Exporter, Reason};
use aurastream_collector::exporter::cloudwatch_logs::CloudWatchLogsExporter;
use aurastream_collector::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig;
use aurastream_collector::exporter::emf::EmfExporter;
use aurastream_collector::exporter::emf::config::EmfExporterConfig;
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_e2e::aws::static_sdk_config;
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value as AnyValueKind};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::metrics::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};

/// What the fake has seen and stored.
#[derive(Default)]
struct Fake {
    groups: HashSet<String>,
    streams: HashSet<(String, String)>,
    retention: HashMap<String, i64>,
    /// Accepted messages per group.
    stored: BTreeMap<String, Vec<String>>,
    put_calls: usize,
    throttled: usize,
    max_events_per_call: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn error(kind: &str, status: StatusCode) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": kind, "message": format!("fake: {kind}")}).to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// Throttles two PutLogEvents calls out of three; answers ResourceNotFound for groups that
/// were not created; reports events whose message mentions `too-old` as too old;
/// refuses the group `/forbidden`; always throttles `/always-throttled`.
async fn handle(State(fake): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let group = req["logGroupName"].as_str().unwrap_or_default().to_string();
    let mut f = fake.lock().unwrap_or_else(|p| p.into_inner());
    match target.as_str() {
        "Logs_20140328.CreateLogGroup" => {
            if !f.groups.insert(group) {
                return error("ResourceAlreadyExistsException", StatusCode::BAD_REQUEST);
            }
            ok(json!({}))
        }
        "Logs_20140328.PutRetentionPolicy" => {
            let days = req["retentionInDays"].as_i64().unwrap_or(0);
            f.retention.insert(group, days);
            ok(json!({}))
        }
        "Logs_20140328.CreateLogStream" => {
            let stream = req["logStreamName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            f.streams.insert((group, stream));
            ok(json!({}))
        }
        "Logs_20140328.PutLogEvents" => {
            f.put_calls += 1;
            if group == "/forbidden" {
                return error("AccessDeniedException", StatusCode::BAD_REQUEST);
            }
            if group == "/always-throttled" || f.put_calls % 3 != 0 {
                f.throttled += 1;
                return error("ThrottlingException", StatusCode::BAD_REQUEST);
            }
            let stream = req["logStreamName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !f.streams.contains(&(group.clone(), stream)) {
                return error("ResourceNotFoundException", StatusCode::BAD_REQUEST);
            }
            let events = req["logEvents"].as_array().cloned().unwrap_or_default();
            f.max_events_per_call = f.max_events_per_call.max(events.len());
            let mut timestamps = events.iter().map(|e| e["timestamp"].as_i64().unwrap_or(0));
            let mut last = i64::MIN;
            assert!(
                timestamps.all(|t| {
                    let sorted = t >= last;
                    last = t;
                    sorted
                }),
                "events must be sorted"
            );
            let messages: Vec<String> = events
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect();
            let too_old = messages
                .iter()
                .take_while(|m| m.contains("too-old"))
                .count();
            f.stored
                .entry(group)
                .or_default()
                .extend(messages.into_iter().skip(too_old));
            if too_old > 0 {
                ok(json!({"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": too_old}}))
            } else {
                ok(json!({}))
            }
        }
        other => error(&format!("Unknown{other}"), StatusCode::BAD_REQUEST),
    }
}

async fn start_fake() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/", post(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), fake)
}

fn fast_retry(budget: Duration) -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(20),
        max_elapsed_time: budget,
        multiplier: 2.0,
    }
}

fn logs_exporter(endpoint: &str, group: &str, budget: Duration) -> CloudWatchLogsExporter {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: group.into(),
        log_stream_name: "stream".into(),
        log_retention: 7,
        retry_on_failure: fast_retry(budget),
        ..Default::default()
    };
    CloudWatchLogsExporter::with_service(
        "awscloudwatchlogs",
        &config,
        &Arc::new(SelfMetrics::new()),
        LogsService::with_sdk_config(static_sdk_config(endpoint), HashMap::new()),
    )
}

/// Exports `batch` and sends what is left again until it is settled, as the pipeline's
/// driver does (without its waits): the exporter makes one attempt per request.
async fn export_settled(exporter: &dyn Exporter, batch: &SignalData) -> ExportReport {
    let mut report = ExportReport::delivered();
    let mut result = exporter.export(batch).await;
    for _ in 0..1000 {
        match result {
            Ok(r) => {
                report.dropped.extend(r.dropped);
                return report;
            }
            Err(ExportError::Retry {
                pending, report: r, ..
            }) => {
                report.dropped.extend(r.dropped);
                result = pending.send().await;
            }
            Err(e) => panic!("export failed: {e}"),
        }
    }
    panic!("still not settled after 1000 attempts");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn logs(bodies: Vec<(u64, String)>) -> SignalData {
    let records = bodies
        .into_iter()
        .map(|(ms, body)| LogRecord {
            time_unix_nano: ms * 1_000_000,
            body: Some(AnyValue {
                value: Some(AnyValueKind::StringValue(body)),
            }),
            ..Default::default()
        })
        .collect();
    SignalData::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_put_log_events_lose_nothing_and_send_nothing_twice() {
    let (endpoint, fake) = start_fake().await;
    let exporter = logs_exporter(
        &endpoint,
        "/aws/aurastream/default",
        Duration::from_secs(60),
    );
    let now = now_ms();
    // 25,000 events: three PutLogEvents batches (10,000 events each at most), given out of
    // order so the sort is exercised too.
    let bodies: Vec<(u64, String)> = (0..25_000u64)
        .rev()
        .map(|i| (now - 60_000 + i % 1000, format!("event {i}")))
        .collect();
    let report = export_settled(&exporter, &logs(bodies)).await;
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);

    let f = fake.lock().unwrap_or_else(|p| p.into_inner());
    assert!(f.throttled > 0, "the fake throttled some calls");
    assert!(f.max_events_per_call <= 10_000);
    assert_eq!(f.retention.get("/aws/aurastream/default"), Some(&7));
    let stored = &f.stored["/aws/aurastream/default"];
    assert_eq!(stored.len(), 25_000, "each event exactly once");
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), 25_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_emf_documents_are_all_delivered() {
    let (endpoint, fake) = start_fake().await;
    let config = EmfExporterConfig {
        namespace: "AuraStream/Application".into(),
        log_group_name: "/metrics/emf".into(),
        log_stream_name: "emf".into(),
        retry_on_failure: fast_retry(Duration::from_secs(60)),
        ..Default::default()
    };
    let exporter = EmfExporter::with_service(
        "awsemf",
        &config,
        &Arc::new(SelfMetrics::new()),
        LogsService::with_sdk_config(static_sdk_config(&endpoint), HashMap::new()),
    )
    .expect("exporter");
    let time = now_ms() * 1_000_000;
    let points: Vec<NumberDataPoint> = (0..300)
        .map(|i| NumberDataPoint {
            attributes: vec![KeyValue {
                key: "CustomerId".into(),
                value: Some(AnyValue {
                    value: Some(AnyValueKind::StringValue(format!("customer_{i}"))),
                }),
                ..Default::default()
            }],
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(i as f64)),
            ..Default::default()
        })
        .collect();
    let batch = SignalData::Metrics(vec![ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: "CustomerActivity".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: points,
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let report = export_settled(&exporter, &batch).await;
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    let f = fake.lock().unwrap_or_else(|p| p.into_inner());
    let stored = &f.stored["/metrics/emf"];
    let mut customers: Vec<String> = stored
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m).expect("EMF JSON");
            v["CustomerId"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    customers.sort();
    customers.dedup();
    assert_eq!(stored.len(), 300);
    assert_eq!(customers.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_counted_with_their_reason() {
    let (endpoint, fake) = start_fake().await;
    let exporter = logs_exporter(&endpoint, "/g", Duration::from_secs(60));
    let now = now_ms();
    let fifteen_days = 15 * 24 * 3600 * 1000;
    let mut bodies: Vec<(u64, String)> = (0..3)
        .map(|i| (now - fifteen_days + i, format!("too-old {i}")))
        .collect();
    bodies.extend((0..5).map(|i| (now + i, format!("fresh {i}"))));
    // Span > 24 h: the old and the fresh events go in separate requests.
    let report = export_settled(&exporter, &logs(bodies)).await;
    assert_eq!(
        report.dropped,
        vec![(Reason::Named("log_event_too_old"), 3)]
    );
    let f = fake.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(f.stored["/g"].len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_drop_with_reason_and_throttled_requests_are_handed_back() {
    let (endpoint, _fake) = start_fake().await;
    let now = now_ms();
    let forbidden = logs_exporter(&endpoint, "/forbidden", Duration::from_secs(60));
    // The group does not exist yet: creation happens first, then the refusal.
    let report = forbidden
        .export(&logs(vec![(now, "a".into()), (now, "b".into())]))
        .await
        .expect("a permanent refusal is reported as dropped items");
    assert_eq!(report.dropped, vec![(Reason::Named("access_denied"), 2)]);

    let throttled = logs_exporter(&endpoint, "/always-throttled", Duration::from_millis(100));
    match throttled
        .export(&logs(vec![
            (now, "x".into()),
            (now, "y".into()),
            (now, "z".into()),
        ]))
        .await
    {
        Err(ExportError::Retry {
            reason, pending, ..
        }) => {
            assert_eq!(reason, "throttled");
            assert_eq!(pending.item_count(), 3);
        }
        other => panic!("expected the undelivered records back, got {other:?}"),
    }
}
