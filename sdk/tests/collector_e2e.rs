//! End to end: the example sentiment API, instrumented by the SDK over OTLP/gRPC, against
//! the real collector binary; asserts on the files the collector writes.

#[path = "../examples/sentiment_api/app.rs"]
mod app;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::{Collector, all, attributes, wait_for};

const XRAY_IN: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_service_telemetry_reaches_the_collector() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let guard = aurastream_sdk::init("sentiment-api-e2e")
        .service_version("9.9.9")
        .endpoint(collector.endpoint(aurastream_sdk::Protocol::Grpc))
        .protocol(aurastream_sdk::Protocol::Grpc)
        .console_output(false)
        .install()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = app::router(guard.telemetry().clone());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let client = reqwest::Client::builder()
        .user_agent("e2e-test/1.0")
        .build()?;
    let analyze = |text: &str| {
        client
            .post(format!("http://{addr}/analyze"))
            .header("x-customer-id", "customer_123")
            .header("x-amzn-trace-id", XRAY_IN)
            .json(&serde_json::json!({ "text": text }))
    };
    let first = analyze("I love this, great service").send().await?;
    assert_eq!(first.status(), 200);
    let xray_out = first
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        xray_out.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;"),
        "{xray_out}"
    );
    let body: app::AnalyzeResponse = first.json().await?;
    assert_eq!((body.sentiment.as_str(), body.cached), ("POSITIVE", false));
    let second: app::AnalyzeResponse = analyze("I love this, great service")
        .send()
        .await?
        .json()
        .await?;
    assert!(second.cached);
    let invalid = analyze("   ").send().await?;
    assert_eq!(invalid.status(), 400);

    guard.shutdown().await?;
    server.abort();

    // Traces: the SERVER span, in the caller's X-Ray trace, with the HTTP conventions.
    let traces = wait_for(&collector.path("traces.jsonl"), |lines| {
        all(lines, "spans").iter().filter(|s| is_server(s)).count() >= 3
    })
    .await;
    let spans = all(&traces, "spans");
    let server_spans: Vec<&Value> = spans.iter().copied().filter(|s| is_server(s)).collect();
    assert_eq!(server_spans.len(), 3, "{spans:#?}");
    let span = server_spans[0];
    assert_eq!(span["traceId"], "5759e988bd862e3fe1be46a994272793");
    assert_eq!(span["parentSpanId"], "53995c3f42cd8ad8");
    assert_eq!(span["name"], "POST /analyze");
    let a = attributes(span);
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["url.path"], "/analyze");
    assert_eq!(a["http.route"], "/analyze");
    assert_eq!(a["client.address"], "127.0.0.1");
    assert_eq!(a["server.address"], "127.0.0.1");
    assert_eq!(a["user_agent.original"], "e2e-test/1.0");
    let statuses: Vec<String> = server_spans
        .iter()
        .map(|s| attributes(s)["http.response.status_code"].clone())
        .collect();
    assert_eq!(statuses, ["200", "200", "400"]);
    // `#[tracing::instrument]` spans in the handler are children in the same trace.
    assert!(spans.iter().any(
        |s| s["name"] == "comprehend_api" && s["traceId"] == "5759e988bd862e3fe1be46a994272793"
    ));
    let resource = traces[0]["resourceSpans"][0]["resource"].clone();
    let r = attributes(&resource);
    assert_eq!(r["service.version"], "9.9.9");

    // Metrics: the guide's names with their dimensions and the EMF namespace attribute.
    let metrics = wait_for(&collector.path("metrics.jsonl"), |lines| {
        all(lines, "metrics")
            .iter()
            .any(|m| m["name"] == "APIRequestCount")
    })
    .await;
    let points = |name: &str| -> Vec<std::collections::BTreeMap<String, String>> {
        all(&metrics, "metrics")
            .into_iter()
            .filter(|m| m["name"] == name)
            .flat_map(|m| {
                let mut dps = Vec::new();
                support::collect(m, "dataPoints", &mut dps);
                dps.into_iter().map(attributes).collect::<Vec<_>>()
            })
            .collect()
    };
    let requests = points("APIRequestCount");
    assert!(
        requests
            .iter()
            .any(|p| p.get("aws.emf.namespace").map(String::as_str)
                == Some("AuraStream/Application")
                && p.get("Endpoint").map(String::as_str) == Some("/analyze")
                && p.get("CustomerId").map(String::as_str) == Some("customer_123")
                && p.get("StatusCode").map(String::as_str) == Some("200")),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|p| p.get("StatusCode").map(String::as_str) == Some("400"))
    );
    for (name, dims) in [
        ("APIResponseTime", &["Endpoint", "CustomerId"][..]),
        ("SentimentAnalysisCount", &["Sentiment"][..]),
        ("SentimentConfidence", &["Sentiment"][..]),
        ("ProcessingTime", &["Sentiment"][..]),
        ("CacheHitCount", &[][..]),
        ("CacheMissCount", &[][..]),
        ("CacheHitRate", &[][..]),
        ("CustomerActivity", &["CustomerId", "ActivityType"][..]),
        ("CustomerUsage", &["CustomerId", "UsageType"][..]),
    ] {
        let found = points(name);
        assert!(!found.is_empty(), "{name} missing");
        for p in &found {
            let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
            keys.retain(|k| *k != "aws.emf.namespace");
            let mut want = dims.to_vec();
            want.sort();
            keys.sort();
            assert_eq!(keys, want, "{name} dimensions");
            assert!(p["aws.emf.namespace"].starts_with("AuraStream/"), "{name}");
        }
    }
    let sentiment = points("SentimentAnalysisCount");
    assert_eq!(sentiment[0]["Sentiment"], "POSITIVE");
    assert_eq!(sentiment[0]["aws.emf.namespace"], "AuraStream/Application");
    assert_eq!(
        points("CustomerUsage")[0]["aws.emf.namespace"],
        "AuraStream/Customer"
    );
    let units: Vec<(String, String)> = all(&metrics, "metrics")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_owned(),
                m["unit"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(units.contains(&("APIResponseTime".into(), "ms".into())));
    assert!(units.contains(&("APIRequestCount".into(), "{count}".into())));
    assert!(units.contains(&("SentimentConfidence".into(), "1".into())));

    // Logs: the guide's JSON bodies, a log.category, the same trace as the span.
    let logs = wait_for(&collector.path("logs.jsonl"), |lines| {
        all(lines, "logRecords")
            .iter()
            .filter(|r| event_type(r).is_some())
            .count()
            >= 9
    })
    .await;
    let records = all(&logs, "logRecords");
    let typed: Vec<(String, String, String)> = records
        .iter()
        .filter_map(|r| {
            Some((
                event_type(r)?,
                attributes(r).get("log.category")?.clone(),
                r["traceId"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let count = |event: &str, category: &str| {
        typed
            .iter()
            .filter(|(e, c, t)| {
                e == event && c == category && t == "5759e988bd862e3fe1be46a994272793"
            })
            .count()
    };
    assert_eq!(count("api_request", "application"), 3, "{typed:#?}");
    assert_eq!(count("api_response", "application"), 3, "{typed:#?}");
    assert_eq!(
        count("business_analysis_completed", "business"),
        2,
        "{typed:#?}"
    );
    assert_eq!(count("error", "application"), 1, "{typed:#?}");
    // The api_response log of the first request carries that request's SERVER span id.
    let first_span_id = span["spanId"].as_str().unwrap_or_default();
    assert!(
        records
            .iter()
            .any(|r| r["spanId"] == first_span_id
                && event_type(r).as_deref() == Some("api_response"))
    );
    // `tracing` events (the handler's "sentiment detected") are exported as OTLP logs too.
    // They get the default category so the CloudWatch Logs exporter can route them.
    assert!(records.iter().any(|r| {
        r["body"]["stringValue"] == "sentiment detected"
            && attributes(r).get("log.category").map(String::as_str) == Some("application")
    }));

    drop(collector);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

fn is_server(span: &Value) -> bool {
    span["kind"] == 2 || span["kind"] == "SPAN_KIND_SERVER"
}

/// `event_type` of a record whose body is one of the guide's JSON documents.
fn event_type(record: &Value) -> Option<String> {
    let body = record["body"]["stringValue"].as_str()?;
    let doc: Value = serde_json::from_str(body).ok()?;
    Some(doc["event_type"].as_str()?.to_owned())
}
