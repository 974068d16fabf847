//! The receiver as a whole: datagrams over a real UDP socket into a pipeline input, the
//! documents back out of the `awsxray` exporter, and the sampling proxy against a fake
//! X-Ray that checks signatures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Value, json};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Segments;
use super::config::{ProxyServerConfig, XrayReceiverConfig};
use super::proxy::{self, SamplingProxy};
use super::segment::tests::python_sdk_segment;
use crate::component::Exporter;
use crate::component::{Consumer, PipelineInput};
use crate::exporter::xray::XrayExporter;
use crate::exporter::xray::config::{OutputDestination, XrayExporterConfig};
use crate::model::Batch;
use crate::model::ItemBudget;
use crate::model::memory::{ByteClaim, MemoryLimiter, MemoryLimits};
use crate::model::{Signal, SignalData};
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

fn datagram(doc: &Value) -> Vec<u8> {
    format!("{HEADER}{doc}").into_bytes()
}

/// Puts nested subsegment documents back into their parents, so documents sent one per
/// span compare with the datagram they came from. Children are sorted by id on both sides.
fn assemble(documents: Vec<Value>, root_id: &str) -> Value {
    let mut by_id: BTreeMap<String, Value> = documents
        .into_iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d))
        .collect();
    fn take(by_id: &mut BTreeMap<String, Value>, id: &str) -> Value {
        let mut doc = by_id.remove(id).unwrap();
        let children: Vec<String> = by_id
            .values()
            .filter(|d| d["parent_id"] == id)
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect();
        if !children.is_empty() {
            let subsegments: Vec<Value> = children.iter().map(|c| take(by_id, c)).collect();
            doc["subsegments"] = Value::Array(subsegments);
        }
        doc
    }
    let doc = take(&mut by_id, root_id);
    assert!(by_id.is_empty(), "documents left over: {by_id:?}");
    doc
}

fn sort_subsegments(doc: &mut Value) {
    if let Some(Value::Array(children)) = doc.get_mut("subsegments") {
        children.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        children.iter_mut().for_each(sort_subsegments);
    }
}

#[tokio::test]
async fn documents_round_trip_through_the_awsxray_exporter() {
    let original = python_sdk_segment();
    let spans = super::decode(&datagram(&original)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.jsonl");
    let config = XrayExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(path.clone()),
        ..Default::default()
    };
    let report = XrayExporter::new("awsxray", &config, &SelfMetrics::new())
        .export(&SignalData::Traces(vec![spans]))
        .await
        .unwrap();
    assert_eq!(report.dropped_items(), 0);
    let documents: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(documents.len(), 3, "one document per span");
    let mut back = assemble(documents, "94914ce601f2fe34");
    let mut original = original;
    sort_subsegments(&mut back);
    sort_subsegments(&mut original);
    assert_eq!(back, original);
}

/// A pipeline input of `capacity` items and the receiving end of its channel.
fn pipeline(capacity: usize) -> (Consumer, mpsc::Receiver<Batch>) {
    let (tx, rx) = mpsc::channel(8);
    let budget = ItemBudget::new(capacity, Gauge::default(), Gauge::default());
    let input = PipelineInput::new("traces", budget, tx, Default::default());
    (Consumer::new(Signal::Traces, vec![input]), rx)
}

#[tokio::test]
async fn datagrams_reach_the_pipeline_and_bad_ones_are_counted() {
    let metrics = Arc::new(SelfMetrics::new());
    let (consumer, mut rx) = pipeline(4);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        Segments::new("awsxray", Some(consumer), metrics.clone()).serve(socket, stop.clone()),
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lone = json!({"type": "subsegment", "name": "x", "id": "0000000000000009",
        "parent_id": "0000000000000001", "trace_id": "1-581cf771-a006649127e371903a2de979",
        "start_time": 1.0, "end_time": 2.0});
    for packet in [
        b"{\"name\":\"no header\"}".to_vec(),
        format!("{{\"format\":\"json\",\"version\":9}}\n{lone}").into_bytes(),
        format!("{HEADER}{{\"name\":").into_bytes(),
        datagram(&python_sdk_segment()),
        datagram(&lone),
        // Over the pipeline's budget of 4 while the first 3 spans are held: dropped.
        datagram(&python_sdk_segment()),
    ] {
        client.send_to(&packet, addr).await.unwrap();
    }
    let mut spans = Vec::new();
    for _ in 0..2 {
        let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a batch")
            .unwrap();
        let SignalData::Traces(rs) = &batch.data else {
            panic!("traces");
        };
        spans.extend(rs[0].scope_spans[0].spans.iter().map(|s| s.name.clone()));
    }
    assert_eq!(
        spans,
        ["aurastream-api", "comprehend_api", "cache_operation", "x"]
    );
    let refused = |reason: &str| {
        metrics
            .receiver_refused("awsxray", "udp", Signal::Traces, reason)
            .get()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while refused("queue_full") == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refused("no_header"), 1);
    assert_eq!(refused("bad_header"), 1);
    assert_eq!(refused("bad_json"), 1);
    assert_eq!(refused("queue_full"), 3, "counted in spans");
    assert_eq!(
        metrics
            .receiver_accepted("awsxray", "udp", Signal::Traces)
            .get(),
        4
    );
    stop.cancel();
    task.await.unwrap();
}

/// Polls `counter` until it reaches `want` (or gives up after a while: datagrams are
/// handled by the receiver's own task).
async fn wait_for(counter: impl Fn() -> u64, want: u64) {
    for _ in 0..500 {
        if counter() >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn over_the_memory_limit_datagrams_are_dropped_and_counted_then_delivered_again() {
    let metrics = Arc::new(SelfMetrics::new());
    let limiter = MemoryLimiter::new(
        MemoryLimits {
            soft: 1_000,
            hard: 1_000_000,
        },
        Gauge::default(),
    );
    let (tx, mut rx) = mpsc::channel(8);
    let budget = ItemBudget::new(1_000, Gauge::default(), Gauge::default());
    let input = PipelineInput::new("traces", budget, tx, Default::default())
        .memory_limiter(Some(limiter.clone()));
    let consumer = Consumer::new(Signal::Traces, vec![input]);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        Segments::new("awsxray", Some(consumer), metrics.clone()).serve(socket, stop.clone()),
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let refused = || {
        metrics
            .receiver_refused("awsxray", "udp", Signal::Traces, "memory_limit")
            .get()
    };
    let accepted = || {
        metrics
            .receiver_accepted("awsxray", "udp", Signal::Traces)
            .get()
    };

    // Something else (a batch in another pipeline, say) holds the budget past its soft
    // limit: UDP cannot ask the SDK to retry, so every span is dropped and counted.
    let held_elsewhere = ByteClaim::new(limiter.clone(), 1_000);
    let packet = datagram(&python_sdk_segment());
    for _ in 0..5 {
        client.send_to(&packet, addr).await.unwrap();
    }
    wait_for(refused, 15).await;
    assert_eq!(refused(), 5 * 3, "three spans per datagram, each counted");
    assert_eq!(accepted(), 0);
    assert!(rx.try_recv().is_err(), "nothing reached the pipeline");

    // Under the limit again: the next datagram is delivered.
    drop(held_elsewhere);
    client.send_to(&packet, addr).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a batch")
        .unwrap();
    assert_eq!(batch.item_count(), 3);
    assert_eq!((accepted(), refused()), (3, 15));
    stop.cancel();
    task.await.unwrap();
}

/// Nothing a client sends can end the UDP task, so the test ends the real one by aborting
/// it; it is watched exactly as `start` watches it.
#[tokio::test]
async fn the_receiver_is_unhealthy_once_its_udp_task_has_ended() {
    let metrics = Arc::new(SelfMetrics::new());
    let (consumer, mut rx) = pipeline(100);
    let health = HealthRegistry::default();
    let stop = CancellationToken::new();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(
        Segments::new("awsxray", Some(consumer), metrics.clone()).serve(socket, stop.clone()),
    );
    let abort = task.abort_handle();
    let mut watched = crate::component::receiver::watch_servers(
        "awsxray",
        &health,
        format!("udp {addr}"),
        vec![("udp server", task)],
        &stop,
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(&datagram(&python_sdk_segment()), addr)
        .await
        .unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(matches!(served, Ok(Some(_))), "the task serves");
    let report = health.report();
    assert_eq!(report.overall_status, "healthy");
    assert_eq!(
        report.checks["receiver/awsxray"].detail,
        format!("udp {addr}")
    );

    abort.abort();
    watched.pop().unwrap().await.unwrap();
    let report = health.report();
    assert_eq!(report.overall_status, "unhealthy");
    let check = &report.checks["receiver/awsxray"];
    assert_eq!(check.status, "unhealthy");
    assert_eq!(
        check.detail,
        format!("udp server was cancelled; serving udp {addr}")
    );
}

#[tokio::test]
async fn start_registers_the_receiver_and_stopping_it_is_not_dying() {
    let metrics = Arc::new(SelfMetrics::new());
    let health = HealthRegistry::default();
    let stop = CancellationToken::new();
    let config = XrayReceiverConfig {
        endpoint: "127.0.0.1:0".into(),
        proxy_server: Some(ProxyServerConfig {
            endpoint: "127.0.0.1:0".into(),
            ..ProxyServerConfig::default()
        }),
        ..XrayReceiverConfig::default()
    };
    let tasks = super::start(
        "awsxray",
        &config,
        BTreeMap::new(),
        metrics,
        &health,
        stop.clone(),
    )
    .await
    .unwrap();
    assert_eq!(tasks.len(), 2, "the UDP server and the sampling proxy");
    let check = &health.report().checks["receiver/awsxray"];
    assert_eq!(check.status, "healthy");
    assert!(
        check.detail.starts_with("udp 127.0.0.1:") && check.detail.contains("sampling proxy"),
        "{}",
        check.detail
    );
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(health.report().overall_status, "healthy");
}

/// What the fake X-Ray saw: path, `Authorization` header and body of each call.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

const RULES: &str = r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"Critical endpoints","RuleARN":"arn:aws:xray:us-east-1:123456789012:sampling-rule/Critical","ResourceARN":"*","Priority":10,"FixedRate":0.5,"ReservoirSize":5,"ServiceName":"aurastream-api","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"/analyze/*","Version":1,"Attributes":{}},"CreatedAt":1.7e9,"ModifiedAt":1.7e9}]}"#;

/// X-Ray's answer to `SamplingTargets`, with an adaptive-sampling boost for the rule.
const TARGETS: &str = r#"{"SamplingTargetDocuments":[{"RuleName":"Critical endpoints","FixedRate":0.5,"ReservoirQuota":2,"ReservoirQuotaTTL":1.7e9,"Interval":10,"SamplingBoost":{"BoostRate":0.9,"BoostRateTTL":1.7e9}}],"LastRuleModification":1.7e9,"UnprocessedStatistics":[],"UnprocessedBoostStatistics":[]}"#;

/// A stand-in for X-Ray's sampling API that refuses unsigned calls, like X-Ray does.
async fn fake_xray(seen: Seen) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = move |path: &'static str| {
        let seen = seen.clone();
        move |headers: HeaderMap, body: String| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock()
                .unwrap()
                .push((path.to_owned(), auth.clone(), body));
            if !auth.starts_with("AWS4-HMAC-SHA256 ") {
                return (
                    StatusCode::FORBIDDEN,
                    "{\"message\":\"Missing Authentication Token\"}".to_owned(),
                );
            }
            match path {
                "/GetSamplingRules" => (StatusCode::OK, RULES.to_owned()),
                _ => (StatusCode::OK, TARGETS.to_owned()),
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/GetSamplingRules",
            axum::routing::post(handler("/GetSamplingRules")),
        )
        .route(
            "/SamplingTargets",
            axum::routing::post(handler("/SamplingTargets")),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn static_credentials() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "static",
        )))
        .build()
}

/// POSTs `body` to the proxy the way an X-Ray SDK does; status and body of the answer.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn sampling_calls_are_signed_and_forwarded() {
    let seen = Seen::default();
    let xray = fake_xray(seen.clone()).await;
    let config = ProxyServerConfig {
        endpoint: "127.0.0.1:0".into(),
        region: Some("us-east-1".into()),
        aws_endpoint: Some(xray),
    };
    let proxy = Arc::new(SamplingProxy::new(&config).with_sdk_config(static_credentials()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = proxy::serve(
        listener,
        "receiver/awsxray/proxy".into(),
        proxy,
        Arc::new(SelfMetrics::new()),
        stop.clone(),
    );

    let (status, body) = post(addr, "/GetSamplingRules", "{\"NextToken\":null}").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, RULES, "X-Ray's answer, byte for byte");
    let targets = r#"{"SamplingStatisticsDocuments":[{"RuleName":"Critical endpoints","ClientID":"abc","Timestamp":1.7e9,"RequestCount":10,"SampledCount":5,"BorrowCount":0}]}"#;
    let (status, _) = post(addr, "/SamplingTargets", targets).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(addr, "/PutTraceSegments", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (path, auth, _) in &seen {
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && auth.contains("/us-east-1/xray/aws4_request")
                && auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{path}: {auth}"
        );
    }
    assert_eq!(seen[0].2, "{\"NextToken\":null}");
    assert_eq!(seen[1].2, targets, "the body is forwarded as sent");
    stop.cancel();
    task.await.unwrap();
}

/// Adaptive sampling's fields are not the proxy's business: an SDK's
/// `SamplingBoostStatisticsDocuments` reach X-Ray as sent, and X-Ray's `SamplingBoost`
/// reaches the SDK as answered.
#[tokio::test]
async fn adaptive_sampling_statistics_and_boosts_pass_through() {
    let seen = Seen::default();
    let xray = fake_xray(seen.clone()).await;
    let config = ProxyServerConfig {
        endpoint: "127.0.0.1:0".into(),
        region: Some("us-east-1".into()),
        aws_endpoint: Some(xray),
    };
    let proxy = Arc::new(SamplingProxy::new(&config).with_sdk_config(static_credentials()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = proxy::serve(
        listener,
        "receiver/awsxray/proxy".into(),
        proxy,
        Arc::new(SelfMetrics::new()),
        stop.clone(),
    );

    let statistics = r#"{"SamplingStatisticsDocuments":[{"RuleName":"Critical endpoints","ClientID":"abc","Timestamp":1.7e9,"RequestCount":40,"SampledCount":20,"BorrowCount":0}],"SamplingBoostStatisticsDocuments":[{"RuleName":"Critical endpoints","ServiceName":"aurastream-api","Timestamp":1.7e9,"AnomalyCount":12,"TotalCount":40,"SampledAnomalyCount":6}]}"#;
    let (status, body) = post(addr, "/SamplingTargets", statistics).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, TARGETS, "the SamplingBoost reaches the SDK");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].2, statistics,
        "the boost statistics reach X-Ray as sent"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_xray_is_a_bad_gateway() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = ProxyServerConfig {
        endpoint: "127.0.0.1:0".into(),
        region: None,
        aws_endpoint: Some(dead),
    };
    let proxy = Arc::new(SamplingProxy::new(&config).with_sdk_config(static_credentials()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = proxy::serve(
        listener,
        "receiver/awsxray/proxy".into(),
        proxy,
        Arc::new(SelfMetrics::new()),
        stop.clone(),
    );
    let (status, body) = post(addr, "/GetSamplingRules", "{}").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("cannot connect"), "{body}");
    stop.cancel();
    task.await.unwrap();
}
