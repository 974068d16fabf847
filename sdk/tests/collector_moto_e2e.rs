//! End to end against AWS stand-ins: the example sentiment API (in process, instrumented by
//! the SDK over OTLP/gRPC) under load from a test client ⇒ the real collector binary with
//! its `awsxray`, `awsemf` and `awscloudwatchlogs` exporters ⇒ moto. Everything is read
//! back from moto's APIs (BatchGetTraces, GetLogEvents, DescribeLogGroups) and checked
//! against what the client saw: trace ids from `X-Amzn-Trace-Id`, request ids from
//! `x-request-id`, sentiments and cache hits from the response bodies.
//!
//! moto comes from the repository's Python venv (`.venv/bin/moto_server`, made by
//! scripts/test.sh) and is started by the e2e harness (`aurastream_e2e::aws::Moto`). The
//! collector binary must have been built first (`cargo build --workspace --bins`).

#[path = "../examples/sentiment_api/app.rs"]
mod app;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aurastream_e2e::aws::Moto;
use aurastream_sdk::LogCategory;
use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Collector, Ports};

const SERVICE: &str = "sentiment-api-moto";
const APPLICATION_GROUP: &str = "/aws/aurastream/application";
const BUSINESS_GROUP: &str = "/aws/aurastream/business";
const SECURITY_GROUP: &str = "/aws/aurastream/security";
const AUDIT_GROUP: &str = "/aws/aurastream/audit";
const PERFORMANCE_GROUP: &str = "/aws/aurastream/performance";
const DEFAULT_GROUP: &str = "/aws/aurastream/default";
const EMF_GROUP: &str = "/aws/aurastream/metrics/sentiment-api-moto";
const EMF_STREAM: &str = "emf";
const APP_NS: &str = "AuraStream/Application";

/// The collector's AWS credentials and region, passed to its process only.
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Texts with their sentiment under the example's word-count stand-in for Comprehend.
const TEXTS: [(&str, &str); 9] = [
    ("I love this, great service", "POSITIVE"),
    ("Amazing and fast, happy customer", "POSITIVE"),
    ("good good bad", "POSITIVE"),
    ("This is terrible and slow", "NEGATIVE"),
    ("I hate the broken app", "NEGATIVE"),
    ("The package arrived on Tuesday", "NEUTRAL"),
    ("Please call me back", "NEUTRAL"),
    ("great but awful", "MIXED"),
    ("fast yet sad", "MIXED"),
];

const CUSTOMERS: [Option<&str>; 3] = [Some("customer_123"), Some("customer_456"), None];

/// What the client saw for one request.
#[derive(Debug, Clone)]
struct Sent {
    path: &'static str,
    customer: String,
    status: u16,
    request_id: String,
    /// `1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx` from the `X-Amzn-Trace-Id` response header.
    trace_id: String,
    /// `(text, sentiment, confidence, cached)` for 200s.
    analysis: Option<(String, String, f64, bool)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_service_telemetry_reaches_xray_emf_and_cloudwatch_logs() -> anyhow::Result<()> {
    let moto = Moto::start();
    let moto_url = moto.url();
    let collector =
        Collector::start_with(|ports, _| aws_config(ports, &moto_url), &AWS_ENV).await?;
    let guard = aurastream_sdk::init(SERVICE)
        .service_version("4.5.6")
        .endpoint(collector.endpoint(aurastream_sdk::Protocol::Grpc))
        .protocol(aurastream_sdk::Protocol::Grpc)
        .console_output(false)
        .install()?;
    let telemetry = guard.telemetry().clone();

    // The example's router, plus one route the test adds behind the same layer so the
    // server-fault path (5xx) is covered too; the example itself never answers 5xx.
    let app = app::router(telemetry.clone()).merge(
        axum::Router::new()
            .route(
                "/fail",
                axum::routing::get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route_layer(telemetry.http_layer().trust_customer_id_header(true)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // 50 requests: 45 analyses (9 texts × 5, so 9 misses and 36 hits, over 3 customers),
    // two empty texts and one oversized text (400, ValidationError), one body without
    // `text` (422, rejected by axum before the handler) and one 500.
    let client = reqwest::Client::builder()
        .user_agent("moto-e2e/1.0")
        .build()?;
    let mut sent: Vec<Sent> = Vec::new();
    for round in 0..5 {
        for (i, (text, _)) in TEXTS.iter().enumerate() {
            let customer = CUSTOMERS[(round + i) % CUSTOMERS.len()];
            let body = json!({ "text": text });
            sent.push(send(&client, addr, "/analyze", customer, Some(&body), text).await?);
        }
    }
    let oversized = "x".repeat(5_001);
    for (customer, body) in [
        (Some("customer_123"), json!({"text": "   "})),
        (None, json!({"text": ""})),
        (Some("customer_456"), json!({"text": oversized})),
        (Some("customer_123"), json!({"txt": "no text field"})),
    ] {
        sent.push(send(&client, addr, "/analyze", customer, Some(&body), "").await?);
    }
    sent.push(send(&client, addr, "/fail", Some("customer_456"), None, "").await?);
    assert_eq!(sent.len(), 50);
    let statuses: Vec<u16> = sent.iter().map(|s| s.status).collect();
    assert_eq!(&statuses[45..], [400, 400, 400, 422, 500]);
    assert!(statuses[..45].iter().all(|s| *s == 200), "{statuses:?}");
    // Every request has its own trace (no caller context was sent).
    let traces: BTreeSet<&str> = sent.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 50);
    for (i, s) in sent[..45].iter().enumerate() {
        let (_, got, _, _) = s.analysis.as_ref().expect("a 200 with an analysis");
        assert_eq!(
            got,
            TEXTS[i % TEXTS.len()].1,
            "{}",
            TEXTS[i % TEXTS.len()].0
        );
    }

    // Business metrics the example does not record itself, and one security, audit and
    // performance event, so every namespace and log category of the guide is exercised.
    let metrics = telemetry.metrics();
    metrics.record_revenue_metrics("customer_123", 49.5, 3);
    metrics.track_revenue("customer_456", 12.25, 7);
    telemetry
        .logs()
        .with_category(LogCategory::Security)
        .log_business_event(
            "failed_authentication",
            "customer_999",
            &json!({"ip_address": "203.0.113.9"}),
        );
    telemetry
        .logs()
        .with_category(LogCategory::Audit)
        .log_business_event("plan_changed", "customer_123", &json!({"plan": "pro"}));
    telemetry
        .logs()
        .with_category(LogCategory::Performance)
        .log_response("req-slow", 200, Duration::from_millis(1_500), false);

    guard.shutdown().await?;
    server.abort();

    let expected = Expected::from(&sent);

    // ---- X-Ray: every request's trace, with the SERVER span as a segment. ----
    // Batches may reach moto in any order: wait for every document of every trace.
    let xray = wait_until(
        "every segment and subsegment in X-Ray",
        &collector,
        || async {
            let docs = xray_documents(&moto).await;
            let complete = sent.iter().all(|s| {
                docs.get(&s.trace_id)
                    .is_some_and(|d| d.len() > expected_subsegments(s).len())
            });
            complete.then_some(docs)
        },
    )
    .await;
    for s in &sent {
        let docs = &xray[&s.trace_id];
        let segments: Vec<&Value> = docs.iter().filter(|d| d.get("type").is_none()).collect();
        assert_eq!(segments.len(), 1, "{}: {docs:#?}", s.trace_id);
        let segment = segments[0];
        assert_eq!(segment["name"], SERVICE, "{segment:#}");
        assert_eq!(segment["trace_id"], s.trace_id.as_str());
        assert_eq!(segment.get("parent_id"), None, "{segment:#}");
        let http = &segment["http"];
        let method = if s.path == "/fail" { "GET" } else { "POST" };
        assert_eq!(http["request"]["method"], method, "{segment:#}");
        // The URL is rebuilt from `server.address` and `url.path`; the middleware records
        // no `server.port`, so the port is not in it.
        let url = http["request"]["url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with("http://127.0.0.1") && url.ends_with(s.path),
            "{segment:#}"
        );
        assert_eq!(http["request"]["user_agent"], "moto-e2e/1.0");
        assert_eq!(http["request"]["client_ip"], "127.0.0.1");
        assert_eq!(http["response"]["status"], s.status, "{segment:#}");
        let flag = |name: &str| segment.get(name).and_then(Value::as_bool).unwrap_or(false);
        assert_eq!(
            (flag("error"), flag("fault")),
            match s.status {
                200 => (false, false),
                400..=499 => (true, false),
                _ => (false, true),
            },
            "{}: {segment:#}",
            s.status
        );
        for d in docs {
            assert_eq!(d["trace_id"], s.trace_id.as_str());
            if d.get("type").is_some() {
                assert_eq!(d["type"], "subsegment");
            }
        }
        // The handler's `#[tracing::instrument]` spans are subsegments of the segment.
        let subsegments: BTreeSet<&str> = docs
            .iter()
            .filter(|d| d["type"] == "subsegment" && d["parent_id"] == segment["id"])
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            subsegments,
            expected_subsegments(s),
            "{}: {docs:#?}",
            s.trace_id
        );
        assert_eq!(docs.len(), 1 + subsegments.len(), "{docs:#?}");
        if let Some((text, _, _, false)) = &s.analysis {
            let nlp = docs
                .iter()
                .find(|d| d["name"] == "comprehend_api")
                .expect("the NLP subsegment");
            // tracing-opentelemetry records a `usize` span field through `Debug`, so it
            // arrives as a string attribute.
            let length = &nlp["metadata"]["default"]["text_length"];
            let length = length
                .as_str()
                .map_or_else(|| length.to_string(), str::to_owned);
            assert_eq!(length, text.len().to_string(), "{nlp:#}");
        }
    }

    // ---- CloudWatch Logs: the guide's documents in their category groups, each carrying
    // the trace id of its request's X-Ray trace. ----
    let application = wait_until("all application logs", &collector, || async {
        let messages = moto.log_messages(APPLICATION_GROUP, SERVICE).await;
        let docs = documents(&messages);
        let count = |f: &dyn Fn(&Value) -> bool| docs.iter().filter(|d| f(d)).count();
        let complete = count(&|d| d["event_type"] == "api_request") >= sent.len()
            && count(&|d| d["event_type"] == "api_response") >= sent.len()
            && count(&|d| d["event_type"] == "error") >= 3
            && count(&|d| d["body"] == "sentiment detected") >= expected.misses();
        complete.then_some(messages)
    })
    .await;
    let app_docs = documents(&application);
    let by_request = |event: &str, request_id: &str| -> Vec<&Value> {
        app_docs
            .iter()
            .filter(|d| d["event_type"] == event && d["request_id"] == request_id)
            .collect()
    };
    for s in &sent {
        let requests = by_request("api_request", &s.request_id);
        assert_eq!(requests.len(), 1, "api_request {}", s.request_id);
        let request = requests[0];
        assert_eq!(
            request["method"],
            if s.path == "/fail" { "GET" } else { "POST" }
        );
        assert_eq!(request["path"], s.path);
        assert_eq!(request["customer_id"], s.customer.as_str());
        assert_eq!(request["user_agent"], "moto-e2e/1.0");
        assert_eq!(request["ip_address"], "127.0.0.1");
        assert_trace(request, &s.trace_id);

        let responses = by_request("api_response", &s.request_id);
        assert_eq!(responses.len(), 1, "api_response {}", s.request_id);
        let response = responses[0];
        assert_eq!(response["status_code"], s.status);
        assert!(response["response_time"].is_u64(), "{response}");
        let cached = s.analysis.as_ref().is_some_and(|a| a.3);
        assert_eq!(response["cache_hit"], cached, "{response}");
        assert_trace(response, &s.trace_id);

        let errors = by_request("error", &s.request_id);
        if s.status == 400 {
            assert_eq!(errors.len(), 1, "error log for {}", s.request_id);
            assert_eq!(errors[0]["error_type"], "ValidationError");
            assert_eq!(errors[0]["error_message"], "text must be 1 to 5000 bytes");
            assert_trace(errors[0], &s.trace_id);
        } else {
            assert!(errors.is_empty(), "{errors:#?}");
        }
    }
    // The handler's own `tracing` event, wrapped with its record's metadata.
    let detected: Vec<&Value> = app_docs
        .iter()
        .filter(|d| d["body"] == "sentiment detected")
        .collect();
    assert_eq!(detected.len(), expected.misses(), "{detected:#?}");
    for d in &detected {
        assert_eq!(d["attributes"]["log.category"], "application");
        assert_eq!(d["resource"]["service.name"], SERVICE);
        let trace = xray_id(d["trace_id"].as_str().unwrap_or_default());
        assert!(
            sent.iter()
                .any(|s| s.trace_id == trace && s.analysis.as_ref().is_some_and(|a| !a.3)),
            "{d}"
        );
    }

    let business = wait_until("all business logs", &collector, || async {
        let messages = moto.log_messages(BUSINESS_GROUP, SERVICE).await;
        (documents(&messages).len() >= 45).then_some(messages)
    })
    .await;
    let business = documents(&business);
    assert_eq!(business.len(), 45, "{business:#?}");
    for s in sent.iter().filter(|s| s.analysis.is_some()) {
        let (text, sentiment, _, cached) = s.analysis.as_ref().expect("analysis");
        let events: Vec<&Value> = business
            .iter()
            .filter(|d| d["data"]["request_id"] == s.request_id.as_str())
            .collect();
        assert_eq!(events.len(), 1, "business event of {}", s.request_id);
        let event = events[0];
        assert_eq!(event["event_type"], "business_analysis_completed");
        assert_eq!(event["customer_id"], s.customer.as_str());
        assert_eq!(event["data"]["sentiment"], sentiment.as_str());
        assert_eq!(event["data"]["cached"], *cached);
        assert_eq!(event["data"]["characters"], text.chars().count());
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{event}"
        );
        assert_trace(event, &s.trace_id);
    }
    for (group, event) in [
        (SECURITY_GROUP, "business_failed_authentication"),
        (AUDIT_GROUP, "business_plan_changed"),
    ] {
        let messages = wait_until(group, &collector, || async {
            let m = moto.log_messages(group, SERVICE).await;
            (!m.is_empty()).then_some(m)
        })
        .await;
        let docs = documents(&messages);
        assert_eq!(docs.len(), 1, "{group}: {messages:?}");
        assert_eq!(docs[0]["event_type"], event);
    }
    let performance = wait_until(PERFORMANCE_GROUP, &collector, || async {
        let m = moto.log_messages(PERFORMANCE_GROUP, SERVICE).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    let performance = documents(&performance);
    assert_eq!(performance.len(), 1, "{performance:#?}");
    // A top-level number, so the guide's `filter response_time > 1000` finds it.
    assert_eq!(performance[0]["response_time"], 1_500);
    assert_eq!(performance[0]["request_id"], "req-slow");

    // ---- EMF: the guide's metrics, names, units, dimensions and namespaces. ----
    let characters: f64 = sent
        .iter()
        .filter_map(|s| s.analysis.as_ref())
        .map(|(text, ..)| text.chars().count() as f64)
        .sum();
    let misses = expected.misses() as f64;
    // Every metric's values (counter totals, distribution counts) summed over all series.
    let volume = [
        (APP_NS, "SentimentAnalysisCount", misses),
        (APP_NS, "SentimentConfidence", misses),
        (APP_NS, "ProcessingTime", misses),
        (APP_NS, "CacheHitCount", expected.hits as f64),
        (APP_NS, "CacheMissCount", misses),
        (APP_NS, "CacheHitRate", 45.0),
        (APP_NS, "APIRequestCount", 50.0),
        (APP_NS, "APIResponseTime", 50.0),
        ("AuraStream/Business", "CustomerActivity", 45.0),
        ("AuraStream/Customer", "CustomerUsage", characters),
        ("AuraStream/Business", "Revenue", 49.5),
        ("AuraStream/Business", "Usage", 3.0),
        ("AuraStream/Revenue", "Revenue", 12.25),
        ("AuraStream/Revenue", "Usage", 7.0),
    ];
    let emf = wait_until("every metric in EMF", &collector, || async {
        let messages = moto.log_messages(EMF_GROUP, EMF_STREAM).await;
        let metrics = EmfMetrics::parse(&messages);
        let complete = volume
            .iter()
            .all(|(ns, name, want)| metrics.volume(ns, name) >= *want);
        complete.then_some(metrics)
    })
    .await;
    for (ns, name, want) in volume {
        assert_eq!(emf.volume(ns, name), want, "{ns} {name}");
    }
    emf.check_units([
        ("SentimentAnalysisCount", "Count"),
        ("SentimentConfidence", "None"),
        ("ProcessingTime", "Milliseconds"),
        ("CacheHitCount", "Count"),
        ("CacheMissCount", "Count"),
        ("CacheHitRate", "None"),
        ("APIRequestCount", "Count"),
        ("APIResponseTime", "Milliseconds"),
        ("CustomerActivity", "Count"),
        ("CustomerUsage", "Count"),
        ("Revenue", "None"),
        ("Usage", "Count"),
    ]);
    let namespaces: BTreeSet<&str> = emf.values.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(
        namespaces,
        [
            "AuraStream/Application",
            "AuraStream/Business",
            "AuraStream/Customer",
            "AuraStream/Revenue"
        ]
        .into()
    );

    // Application: sentiment analyses (one per cache miss), by `Sentiment`.
    for (sentiment, confidences) in &expected.misses_by_sentiment {
        let dims = format!("Sentiment={sentiment}");
        let count = emf.get(APP_NS, "SentimentAnalysisCount", &dims);
        assert_eq!(count.total, confidences.len() as f64, "{sentiment}");
        let confidence = emf.get(APP_NS, "SentimentConfidence", &dims);
        assert_eq!(confidence.count, confidences.len() as f64, "{sentiment}");
        assert_eq!(
            confidence.sum,
            confidences.iter().sum::<f64>(),
            "{sentiment}"
        );
        assert_eq!(
            confidence.min,
            confidences.iter().copied().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            confidence.max,
            confidences
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max)
        );
        let processing = emf.get(APP_NS, "ProcessingTime", &dims);
        assert_eq!(processing.count, confidences.len() as f64, "{sentiment}");
        assert!(processing.min >= 0.0, "{processing:?}");
    }
    assert_eq!(
        emf.dimension_values(APP_NS, "SentimentAnalysisCount"),
        expected
            .misses_by_sentiment
            .keys()
            .map(|s| format!("Sentiment={s}"))
            .collect::<BTreeSet<_>>()
    );
    // Cache: no dimensions; the hit rate's average is hits / lookups.
    assert_eq!(
        emf.get(APP_NS, "CacheHitCount", "").total,
        expected.hits as f64
    );
    assert_eq!(
        emf.get(APP_NS, "CacheMissCount", "").total,
        expected.misses() as f64
    );
    let rate = emf.get(APP_NS, "CacheHitRate", "");
    assert_eq!(rate.count, 45.0);
    assert_eq!(rate.sum, expected.hits as f64);
    assert_eq!((rate.min, rate.max), (0.0, 1.0));
    // API usage: per Endpoint × CustomerId × StatusCode, and latency per Endpoint × CustomerId.
    let mut requests = BTreeMap::new();
    let mut latencies = BTreeMap::new();
    for s in &sent {
        *requests
            .entry(format!(
                "CustomerId={},Endpoint={},StatusCode={}",
                s.customer, s.path, s.status
            ))
            .or_insert(0.0) += 1.0;
        *latencies
            .entry(format!("CustomerId={},Endpoint={}", s.customer, s.path))
            .or_insert(0.0) += 1.0;
    }
    assert_eq!(emf.totals(APP_NS, "APIRequestCount"), requests);
    let response_counts: BTreeMap<String, f64> = emf
        .series(APP_NS, "APIResponseTime")
        .map(|(dims, v)| (dims.clone(), v.count))
        .collect();
    assert_eq!(response_counts, latencies);
    // Business, customer and revenue namespaces.
    let mut activity = BTreeMap::new();
    let mut usage = BTreeMap::new();
    for s in &sent {
        if let Some((text, ..)) = &s.analysis {
            *activity
                .entry(format!("ActivityType=analysis,CustomerId={}", s.customer))
                .or_insert(0.0) += 1.0;
            *usage
                .entry(format!("CustomerId={},UsageType=characters", s.customer))
                .or_insert(0.0) += text.chars().count() as f64;
        }
    }
    assert_eq!(
        emf.totals("AuraStream/Business", "CustomerActivity"),
        activity
    );
    assert_eq!(emf.totals("AuraStream/Customer", "CustomerUsage"), usage);
    let one = |dims: &str, v: f64| BTreeMap::from([(dims.to_owned(), v)]);
    assert_eq!(
        emf.totals("AuraStream/Business", "Revenue"),
        one("CustomerId=customer_123", 49.5)
    );
    assert_eq!(
        emf.totals("AuraStream/Business", "Usage"),
        one("CustomerId=customer_123", 3.0)
    );
    assert_eq!(
        emf.totals("AuraStream/Revenue", "Revenue"),
        one("CustomerId=customer_456", 12.25)
    );
    assert_eq!(
        emf.totals("AuraStream/Revenue", "Usage"),
        one("CustomerId=customer_456", 7.0)
    );
    for doc in &emf.documents {
        // The namespace attribute picks the namespace; it is neither a dimension nor a field.
        assert!(doc.get("aws.emf.namespace").is_none(), "{doc}");
        assert_eq!(doc["service.name"], SERVICE, "{doc}");
    }

    // ---- Log groups and their retention. ----
    let retention = moto.log_groups().await;
    for (group, days) in [
        (APPLICATION_GROUP, 30),
        (BUSINESS_GROUP, 365),
        (SECURITY_GROUP, 2557),
        (AUDIT_GROUP, 2557),
        (PERFORMANCE_GROUP, 90),
        (EMF_GROUP, 30),
    ] {
        assert_eq!(
            retention.get(group),
            Some(&Some(days)),
            "{group}: {retention:?}"
        );
    }
    // Every record had a category, so nothing fell through to the default group.
    assert!(!retention.contains_key(DEFAULT_GROUP), "{retention:?}");

    drop(collector);
    drop(moto);
    Ok(())
}

/// One request; the response's trace and request ids are recorded with what it answered.
async fn send(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &'static str,
    customer: Option<&str>,
    body: Option<&Value>,
    text: &str,
) -> anyhow::Result<Sent> {
    let url = format!("http://{addr}{path}");
    let mut request = match body {
        Some(body) => client.post(url).json(body),
        None => client.get(url),
    };
    if let Some(c) = customer {
        request = request.header("x-customer-id", c);
    }
    let response = request.send().await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let trace_header = header("x-amzn-trace-id");
    let trace_id = trace_header
        .split(';')
        .find_map(|part| part.strip_prefix("Root="))
        .unwrap_or_else(|| panic!("no Root in X-Amzn-Trace-Id {trace_header:?}"))
        .to_owned();
    assert!(
        trace_header.contains("Sampled=1"),
        "sampled: {trace_header}"
    );
    let request_id = header("x-request-id");
    assert!(!request_id.is_empty(), "x-request-id on the response");
    let status = response.status().as_u16();
    let analysis = if status == 200 {
        let body: app::AnalyzeResponse = response.json().await?;
        Some((
            text.to_owned(),
            body.sentiment,
            body.confidence,
            body.cached,
        ))
    } else {
        None
    };
    Ok(Sent {
        path,
        customer: customer.unwrap_or("anonymous").to_owned(),
        status,
        request_id,
        trace_id,
        analysis,
    })
}

/// The handler's `#[tracing::instrument]` spans a request makes: a cache lookup for every
/// analysis, the NLP call only on a miss; none when the text is refused before the cache is
/// consulted (400), the body is rejected by axum (422) or the route is not the example's.
fn expected_subsegments(s: &Sent) -> BTreeSet<&'static str> {
    match &s.analysis {
        Some((_, _, _, false)) => ["cache_operation", "comprehend_api"].into(),
        Some((_, _, _, true)) => ["cache_operation"].into(),
        None => BTreeSet::new(),
    }
}

/// What the metrics must add up to, from the client's side.
struct Expected {
    /// Confidence of each cache miss, by sentiment.
    misses_by_sentiment: BTreeMap<String, Vec<f64>>,
    hits: usize,
}

impl Expected {
    fn from(sent: &[Sent]) -> Expected {
        let mut misses_by_sentiment: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut hits = 0;
        for (_, sentiment, confidence, cached) in sent.iter().filter_map(|s| s.analysis.as_ref()) {
            if *cached {
                hits += 1;
            } else {
                misses_by_sentiment
                    .entry(sentiment.clone())
                    .or_default()
                    .push(*confidence);
            }
        }
        let expected = Expected {
            misses_by_sentiment,
            hits,
        };
        // Each distinct text misses once (the first time), then hits.
        assert_eq!(expected.misses(), TEXTS.len());
        assert_eq!(expected.hits, 45 - TEXTS.len());
        expected
    }

    fn misses(&self) -> usize {
        self.misses_by_sentiment.values().map(Vec::len).sum()
    }
}

/// The collector configuration: OTLP in; X-Ray, EMF and CloudWatch Logs (all at moto) out.
fn aws_config(ports: &Ports, moto: &str) -> String {
    format!(
        r#"{receivers}processors:
  batch:
    timeout: 100ms
exporters:
  awsxray:
    region: us-east-1
    endpoint: {moto}
  awsemf:
    region: us-east-1
    endpoint: {moto}
    namespace: {APP_NS}
    log_group_name: /aws/aurastream/metrics/{{ServiceName}}
    log_stream_name: {EMF_STREAM}
    log_retention: 30
    dimension_rollup_option: NoDimensionRollup   # the checks below read each point's own set
  awscloudwatchlogs:
    region: us-east-1
    endpoint: {moto}
    log_group_name: {DEFAULT_GROUP}
    log_stream_name: "{{ServiceName}}"
    log_retention: 14
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [awsxray]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [awsemf]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [awscloudwatchlogs]
"#,
        receivers = support::receivers_and_health(ports),
    )
}

/// The log document carries the trace id (32 hex digits) of `xray_trace` (`1-8hex-24hex`).
fn assert_trace(doc: &Value, xray_trace: &str) {
    let hex = doc["trace_id"].as_str().unwrap_or_default();
    assert_eq!(xray_id(hex), xray_trace, "trace id of {doc}");
    assert_eq!(
        doc["span_id"].as_str().map(str::len),
        Some(16),
        "span id of {doc}"
    );
}

/// `5759e988bd862e3fe1be46a994272793` ⇒ `1-5759e988-bd862e3fe1be46a994272793`.
fn xray_id(hex: &str) -> String {
    if hex.len() != 32 {
        return format!("<not a trace id: {hex:?}>");
    }
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// The JSON objects among `messages`.
fn documents(messages: &[String]) -> Vec<Value> {
    messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(Value::is_object)
        .collect()
}

/// Polls `probe` until it yields a value; after 60 s panics with the collector's stderr.
async fn wait_until<T, F, Fut>(what: &str, collector: &Collector, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; collector stderr:\n{}",
            collector.stderr()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One metric series' values summed over every document that carries it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Aggregate {
    /// Sum of plain values (counters).
    total: f64,
    /// Distributions / statistic sets: their `Count`, `Sum`, `Min`, `Max` combined.
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

/// The EMF documents of a log stream, indexed by (namespace, metric, `k=v,...` dimensions).
struct EmfMetrics {
    documents: Vec<Value>,
    values: BTreeMap<(String, String, String), Aggregate>,
    units: BTreeMap<String, BTreeSet<String>>,
}

impl EmfMetrics {
    fn parse(messages: &[String]) -> EmfMetrics {
        let mut out = EmfMetrics {
            documents: Vec::new(),
            values: BTreeMap::new(),
            units: BTreeMap::new(),
        };
        for m in messages {
            let doc: Value =
                serde_json::from_str(m).unwrap_or_else(|e| panic!("EMF is JSON: {e}: {m}"));
            let aws = &doc["_aws"];
            assert!(aws["Timestamp"].is_i64(), "{doc}");
            let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
            assert!(!directives.is_empty(), "{doc}");
            for directive in directives {
                let namespace = directive["Namespace"].as_str().expect("Namespace");
                let sets = directive["Dimensions"].as_array().expect("Dimensions");
                // No rollup configured: exactly the point's own dimension set.
                assert_eq!(sets.len(), 1, "{doc}");
                let mut names: Vec<&str> = sets[0]
                    .as_array()
                    .expect("a dimension set")
                    .iter()
                    .map(|d| d.as_str().expect("a dimension name"))
                    .collect();
                names.sort_unstable();
                let dims = names
                    .iter()
                    .map(|d| {
                        let v = doc[*d].as_str().unwrap_or_else(|| panic!("{d} in {doc}"));
                        format!("{d}={v}")
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                for def in directive["Metrics"].as_array().expect("Metrics") {
                    let name = def["Name"].as_str().expect("Name");
                    out.units
                        .entry(name.to_owned())
                        .or_default()
                        // No `Unit` is CloudWatch's `None` (the exporter leaves it out).
                        .insert(def["Unit"].as_str().unwrap_or("None").to_owned());
                    let value = &doc[name];
                    let agg = out
                        .values
                        .entry((namespace.to_owned(), name.to_owned(), dims.clone()))
                        .or_insert(Aggregate {
                            min: f64::INFINITY,
                            max: f64::NEG_INFINITY,
                            ..Aggregate::default()
                        });
                    if let Some(v) = value.as_f64() {
                        agg.total += v;
                    } else {
                        let field = |f: &str| {
                            value[f]
                                .as_f64()
                                .unwrap_or_else(|| panic!("{name}.{f} in {doc}"))
                        };
                        agg.count += field("Count");
                        agg.sum += field("Sum");
                        agg.min = agg.min.min(field("Min"));
                        agg.max = agg.max.max(field("Max"));
                    }
                }
            }
            out.documents.push(doc);
        }
        out
    }

    /// Counter totals plus distribution counts over every series of a metric.
    fn volume(&self, namespace: &str, name: &str) -> f64 {
        self.series(namespace, name)
            .map(|(_, v)| v.total + v.count)
            .sum()
    }

    fn series<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Aggregate)> + 'a {
        self.values
            .iter()
            .filter(move |((ns, n, _), _)| ns == namespace && n == name)
            .map(|((_, _, dims), v)| (dims, v))
    }

    fn get(&self, namespace: &str, name: &str, dims: &str) -> Aggregate {
        *self
            .values
            .get(&(namespace.to_owned(), name.to_owned(), dims.to_owned()))
            .unwrap_or_else(|| {
                panic!(
                    "{namespace} {name} [{dims}] missing; have {:#?}",
                    self.values.keys().collect::<Vec<_>>()
                )
            })
    }

    fn totals(&self, namespace: &str, name: &str) -> BTreeMap<String, f64> {
        self.series(namespace, name)
            .map(|(dims, v)| (dims.clone(), v.total))
            .collect()
    }

    fn dimension_values(&self, namespace: &str, name: &str) -> BTreeSet<String> {
        self.series(namespace, name)
            .map(|(dims, _)| dims.clone())
            .collect()
    }

    fn check_units<'a>(&self, want: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (name, unit) in want {
            assert_eq!(
                self.units.get(name),
                Some(&BTreeSet::from([unit.to_owned()])),
                "unit of {name}"
            );
        }
    }
}

/// Every document X-Ray holds (`aurastream_e2e::aws::Moto::xray_segments`), by trace id.
async fn xray_documents(moto: &Moto) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (_, doc) in moto.xray_segments().await {
        let trace = doc["trace_id"].as_str().unwrap_or_default().to_owned();
        out.entry(trace).or_default().push(doc);
    }
    out
}
