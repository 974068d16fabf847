//! Centralized sampling through the real binary against a fake X-Ray sampling API.
//!
//! moto has no X-Ray sampling API, so the fake is here: an axum server answering
//! `GetSamplingRules` with a fixed rule set and `GetSamplingTargets` with a target that
//! raises the `Checkout` rule's rate to 1, recording the statistics it was sent. Once it has
//! been sent faults of the `Payments` rule (adaptive sampling's boost statistics), its
//! answer also boosts `Payments` to 0.5, as X-Ray does within a rule's `MaxRate`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_collector::processor::xray_sampling::sampler::trace_draw;
use aurastream_e2e::otlp_json;
use aurastream_e2e::{Collector, Ports, aws, base_config, eventually, read_jsonl};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use serde_json::{Value, json};

#[derive(Default)]
struct Recorded {
    rules_calls: usize,
    /// Every `SamplingStatisticsDocument` received.
    statistics: Vec<Value>,
    /// Every `SamplingBoostStatisticsDocument` received.
    boost_statistics: Vec<Value>,
}

type Shared = Arc<Mutex<Recorded>>;

fn epoch_seconds(after: Duration) -> f64 {
    (SystemTime::now() + after)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn rule(name: &str, priority: i64, service: &str, rate: f64) -> Value {
    json!({
        "SamplingRule": {
            "RuleName": name,
            "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "Priority": priority, "FixedRate": rate, "ReservoirSize": 0,
            "ServiceName": service, "ServiceType": "*", "Host": "*", "HTTPMethod": "*",
            "URLPath": "*", "ResourceARN": "*", "Version": 1, "Attributes": {}
        },
        "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9
    })
}

async fn get_sampling_rules(State(rec): State<Shared>) -> String {
    rec.lock().unwrap().rules_calls += 1;
    let mut payments = rule("Payments", 2, "payments", 0.0);
    payments["SamplingRule"]["SamplingRateBoost"] =
        json!({ "MaxRate": 0.5, "CooldownWindowMinutes": 1 });
    json!({ "SamplingRuleRecords": [
        rule("Default", 10000, "*", 1.0),
        rule("Checkout", 1, "checkout", 0.0),
        payments,
    ]})
    .to_string()
}

async fn get_sampling_targets(State(rec): State<Shared>, body: Bytes) -> String {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let docs = request["SamplingStatisticsDocuments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let boost_docs = request["SamplingBoostStatisticsDocuments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut rec = rec.lock().unwrap();
    rec.statistics.extend(docs);
    rec.boost_statistics.extend(boost_docs);
    let mut targets = vec![json!({
        "RuleName": "Checkout", "FixedRate": 1.0, "ReservoirQuota": 0,
        "ReservoirQuotaTTL": epoch_seconds(Duration::from_secs(60)), "Interval": 10
    })];
    let faults: i64 = rec
        .boost_statistics
        .iter()
        .filter(|d| d["RuleName"] == "Payments")
        .map(|d| d["AnomalyCount"].as_i64().unwrap_or(0))
        .sum();
    if faults > 0 {
        targets.push(json!({
            "RuleName": "Payments", "FixedRate": 0.0, "Interval": 10,
            "SamplingBoost": {
                "BoostRate": 0.5,
                "BoostRateTTL": epoch_seconds(Duration::from_secs(600))
            }
        }));
    }
    json!({
        "SamplingTargetDocuments": targets,
        "LastRuleModification": 1.7e9,
        "UnprocessedStatistics": []
    })
    .to_string()
}

/// Starts the fake on a free port; it serves while `runtime` lives.
fn start_fake(runtime: &tokio::runtime::Runtime) -> (Shared, SocketAddr) {
    let recorded = Shared::default();
    let app = Router::new()
        .route("/GetSamplingRules", post(get_sampling_rules))
        .route("/SamplingTargets", post(get_sampling_targets))
        .with_state(recorded.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the fake X-Ray API");
    let addr = listener.local_addr().expect("fake address");
    runtime.spawn(async move { axum::serve(listener, app).await });
    (recorded, addr)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// Never all zeros (an invalid id): the counter starts at 1.
fn trace_id(n: u64) -> [u8; 16] {
    let n = n + 1;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

/// One single-span trace per `n`, of `service`.
fn request(service: &str, ns: std::ops::Range<u64>) -> ExportTraceServiceRequest {
    request_with_status(service, ns, "200")
}

/// The same, with the given HTTP status on every span.
fn request_with_status(
    service: &str,
    ns: std::ops::Range<u64>,
    status: &str,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: ns
                    .map(|n| Span {
                        trace_id: trace_id(n).to_vec(),
                        span_id: (n + 1).to_be_bytes().to_vec(),
                        name: "GET /cart".into(),
                        kind: SpanKind::Server as i32,
                        attributes: vec![
                            kv("http.request.method", "GET"),
                            kv("url.path", "/cart"),
                            kv("http.response.status_code", status),
                        ],
                        ..Span::default()
                    })
                    .collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn send(runtime: &tokio::runtime::Runtime, c: &Collector, request: ExportTraceServiceRequest) {
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(c.ports.grpc_url())
            .await
            .expect("connect");
        client.export(request).await.expect("export");
    });
}

fn kept(path: &Path) -> BTreeSet<String> {
    otlp_json::spans(&read_jsonl(path))
        .into_iter()
        .map(|s| s.trace_id)
        .collect()
}

fn hex(n: u64) -> String {
    trace_id(n).iter().map(|b| format!("{b:02x}")).collect()
}

fn config(ports: &Ports, dir: &Path, centralized: &str, rules_file: Option<&str>) -> String {
    let rules = match rules_file {
        Some(text) => {
            let path = dir.join("rules.json");
            std::fs::write(&path, text).expect("write rules");
            format!("rules_file: {}\n    ", path.display())
        }
        None => String::new(),
    };
    format!(
        r#"{base}
processors:
  xray_sampling:
    {rules}decision_wait: 200ms
    centralized: {centralized}
exporters:
  file/traces: {{ path: {dir}/traces.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [xray_sampling], exporters: [file/traces] }}
"#,
        base = base_config(ports),
        dir = dir.display()
    )
}

fn decided(c: &Collector) -> f64 {
    c.metric("aurastream_exporter_sent_items_total", &[])
        + c.metric(
            "aurastream_pipeline_dropped_items_total",
            &["reason=\"not_sampled\""],
        )
}

fn event(c: &Collector, name: &str) -> f64 {
    c.metric(
        "aurastream_component_events_total",
        &[&format!("event=\"{name}\"")],
    )
}

#[test]
fn rules_and_targets_come_from_the_xray_sampling_api() {
    aws::use_test_credentials();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (recorded, fake) = start_fake(&runtime);
    let mut c = Collector::start(|ports, dir| {
        config(
            ports,
            dir,
            &format!(
                "{{ endpoint: \"http://{fake}\", region: us-east-1, rules_interval: 1s, \
                 targets_interval: 300ms }}"
            ),
            None,
        )
    });
    eventually("X-Ray's rules in force", Duration::from_secs(20), || {
        event(&c, "rules_reloaded") >= 1.0
    });
    assert!(recorded.lock().unwrap().rules_calls >= 1);

    // X-Ray's rules: checkout at rate 0, everything else at rate 1 (the guide's local
    // default would keep about 10% of `cart`).
    send(&runtime, &c, request("checkout", 0..100));
    send(&runtime, &c, request("cart", 100..200));
    eventually("first traces decided", Duration::from_secs(20), || {
        decided(&c) == 200.0
    });
    let first = kept(&c.path("traces.jsonl"));
    assert_eq!(
        first,
        (100..200).map(hex).collect(),
        "exactly the non-checkout traces"
    );

    // The statistics reach X-Ray, and its target (Checkout at rate 1) comes back.
    eventually("statistics reported", Duration::from_secs(20), || {
        let rec = recorded.lock().unwrap();
        let total = |rule: &str, field: &str| -> i64 {
            rec.statistics
                .iter()
                .filter(|d| d["RuleName"] == rule)
                .map(|d| d[field].as_i64().unwrap_or(0))
                .sum()
        };
        total("Checkout", "RequestCount") == 100
            && total("Checkout", "SampledCount") == 0
            && total("Default", "RequestCount") == 100
            && total("Default", "SampledCount") == 100
    });
    let ids: BTreeSet<String> = recorded
        .lock()
        .unwrap()
        .statistics
        .iter()
        .filter_map(|d| d["ClientID"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 1, "one client id per collector: {ids:?}");
    assert!(ids.iter().all(|id| id.len() == 24), "{ids:?}");
    eventually("X-Ray's target applied", Duration::from_secs(20), || {
        event(&c, "targets_applied") >= 1.0
    });
    send(&runtime, &c, request("checkout", 200..300));
    eventually("second traces decided", Duration::from_secs(20), || {
        decided(&c) == 300.0
    });
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
    let all = kept(&c.path("traces.jsonl"));
    assert!(
        (200..300).map(hex).all(|id| all.contains(&id)),
        "checkout kept at the target's rate 1"
    );
}

#[test]
fn an_unreachable_xray_api_leaves_the_local_rules_in_force() {
    aws::use_test_credentials();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nowhere = aurastream_e2e::free_port();
    let half = r#"{"version": 2, "rules": [{"description": "Half", "service_name": "*",
        "http_method": "*", "url_path": "*", "fixed_target": 0, "rate": 0.5}]}"#;
    let mut c = Collector::start(|ports, dir| {
        config(
            ports,
            dir,
            &format!(
                "{{ endpoint: \"http://127.0.0.1:{nowhere}\", region: us-east-1, \
                 rules_interval: 200ms, timeout: 1s }}"
            ),
            Some(half),
        )
    });
    send(&runtime, &c, request("cart", 0..400));
    eventually("traces decided", Duration::from_secs(20), || {
        decided(&c) == 400.0
    });
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
    let expected: BTreeSet<String> = (0..400)
        .filter(|n| trace_draw(&trace_id(*n)) < 0.5)
        .map(hex)
        .collect();
    assert_eq!(
        kept(&c.path("traces.jsonl")),
        expected,
        "the local rules decided"
    );
    assert!(
        c.stderr().contains("unreachable"),
        "says why:\n{}",
        c.stderr()
    );
}

/// Adaptive sampling in centralized mode: the collector reports the `Payments` rule's
/// faults per service in `SamplingBoostStatisticsDocuments`, and X-Ray's `SamplingBoost`
/// raises the rule (base rate 0) to the boost rate until the boost's TTL.
#[test]
fn an_xray_sampling_boost_raises_a_rule_from_its_fault_statistics() {
    aws::use_test_credentials();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (recorded, fake) = start_fake(&runtime);
    let mut c = Collector::start(|ports, dir| {
        config(
            ports,
            dir,
            &format!(
                "{{ endpoint: \"http://{fake}\", region: us-east-1, rules_interval: 1s, \
                 targets_interval: 300ms }}"
            ),
            None,
        )
    });
    eventually("X-Ray's rules in force", Duration::from_secs(20), || {
        event(&c, "rules_reloaded") >= 1.0
    });
    send(&runtime, &c, request_with_status("payments", 0..100, "503"));
    eventually("failed traces decided", Duration::from_secs(20), || {
        decided(&c) == 100.0
    });
    assert!(
        kept(&c.path("traces.jsonl")).is_empty(),
        "Payments' base rate is 0"
    );
    eventually("fault statistics reported", Duration::from_secs(20), || {
        let rec = recorded.lock().unwrap();
        let sum = |field: &str| -> i64 {
            rec.boost_statistics
                .iter()
                .filter(|d| d["RuleName"] == "Payments" && d["ServiceName"] == "payments")
                .map(|d| d[field].as_i64().unwrap_or(0))
                .sum()
        };
        sum("TotalCount") == 100 && sum("AnomalyCount") == 100 && sum("SampledAnomalyCount") == 0
    });
    assert!(
        recorded
            .lock()
            .unwrap()
            .boost_statistics
            .iter()
            .all(|d| d["RuleName"] == "Payments"),
        "boost statistics only for the rule with a SamplingRateBoost"
    );
    // The first statistics with Payments' faults are answered with its boost (two target
    // documents: Checkout's and Payments'); traces decided after it are kept at 0.5.
    eventually("X-Ray's boost applied", Duration::from_secs(20), || {
        event(&c, "targets_applied") >= 2.0
    });
    send(
        &runtime,
        &c,
        request_with_status("payments", 100..400, "200"),
    );
    eventually("boosted traces decided", Duration::from_secs(20), || {
        decided(&c) == 400.0
    });
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());
    let expected: BTreeSet<String> = (100..400)
        .filter(|n| trace_draw(&trace_id(*n)) < 0.5)
        .map(hex)
        .collect();
    assert_eq!(
        kept(&c.path("traces.jsonl")),
        expected,
        "exactly the traces the boost rate's draw keeps"
    );
}
