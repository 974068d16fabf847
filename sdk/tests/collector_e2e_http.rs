//! End to end over OTLP/HTTP: the `Protocol::HttpProtobuf` and `Protocol::HttpJson`
//! options reach the collector's HTTP receiver, and what was sent is read back from the
//! collector's file output.

mod support;

use aurastream_sdk::{LogCategory, Protocol, Sentiment};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Collector, all, attributes, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_delivers_spans_metrics_and_logs() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let guard = aurastream_sdk::init("sdk-http-e2e")
        .endpoint(collector.endpoint(aurastream_sdk::Protocol::HttpProtobuf))
        .protocol(aurastream_sdk::Protocol::HttpProtobuf)
        .console_output(false)
        .customer_id_dimension(false)
        .install()?;
    let telemetry = guard.telemetry().clone();

    let span = tracing::info_span!("batch_job", otel.kind = "internal");
    span.in_scope(|| {
        telemetry.metrics().record_sentiment_analysis(
            Sentiment::Mixed,
            0.6,
            Duration::from_millis(3),
        );
        telemetry.metrics().track_revenue("customer_9", 12.5, 2);
        telemetry
            .logs()
            .with_category(LogCategory::Audit)
            .log_business_event(
                "plan_changed",
                "customer_9",
                &serde_json::json!({"plan": "pro"}),
            );
    });
    drop(span);
    guard.flush().await?;
    guard.shutdown().await?;

    let traces = wait_for(&collector.path("traces.jsonl"), |l| {
        all(l, "spans").iter().any(|s| s["name"] == "batch_job")
    })
    .await;
    let span = all(&traces, "spans")
        .into_iter()
        .find(|s| s["name"] == "batch_job")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("span missing: {traces:#?}"))?;
    // X-Ray id generator: the first 8 hex digits are the start time in epoch seconds.
    let trace_id = span["traceId"].as_str().unwrap_or_default().to_owned();
    let epoch = u64::from_str_radix(&trace_id[..8], 16)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!(now.abs_diff(epoch) < 120, "{trace_id}");

    let metrics = wait_for(&collector.path("metrics.jsonl"), |l| {
        all(l, "metrics").iter().any(|m| m["name"] == "Revenue")
    })
    .await;
    let revenue = all(&metrics, "metrics")
        .into_iter()
        .find(|m| m["name"] == "Revenue")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("Revenue missing"))?;
    let mut points = Vec::new();
    support::collect(&revenue, "dataPoints", &mut points);
    let dims = attributes(points[0]);
    assert_eq!(
        dims.get("aws.emf.namespace").map(String::as_str),
        Some("AuraStream/Revenue")
    );
    assert!(
        !dims.contains_key("CustomerId"),
        "customer_id_dimension(false): {dims:?}"
    );

    let logs = wait_for(&collector.path("logs.jsonl"), |l| {
        all(l, "logRecords")
            .iter()
            .any(|r| attributes(r).get("log.category").map(String::as_str) == Some("audit"))
    })
    .await;
    let record = all(&logs, "logRecords")
        .into_iter()
        .find(|r| attributes(r).get("log.category").map(String::as_str) == Some("audit"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("audit log missing: {logs:#?}"))?;
    assert_eq!(record["traceId"].as_str(), Some(trace_id.as_str()));
    let body: serde_json::Value =
        serde_json::from_str(record["body"]["stringValue"].as_str().unwrap_or_default())?;
    assert_eq!(body["event_type"], "business_plan_changed");
    Ok(())
}

/// Dropping the guard (no explicit shutdown) still delivers what was recorded: the guard
/// shuts the providers down in `Drop`, here from a multi-thread runtime worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_flushes() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let guard = aurastream_sdk::init("sdk-drop-e2e")
        .endpoint(collector.endpoint(aurastream_sdk::Protocol::HttpProtobuf))
        .protocol(aurastream_sdk::Protocol::HttpProtobuf)
        .install_tracing_subscriber(false)
        .install()?;
    guard.telemetry().metrics().record_cache_performance(true);
    guard
        .telemetry()
        .logs()
        .log_error("req-drop", "Timeout", "upstream timed out", None);
    drop(guard);

    let metrics = wait_for(&collector.path("metrics.jsonl"), |l| {
        all(l, "metrics")
            .iter()
            .any(|m| m["name"] == "CacheHitCount")
    })
    .await;
    assert!(
        all(&metrics, "metrics")
            .iter()
            .any(|m| m["name"] == "CacheHitCount")
    );
    let logs = wait_for(&collector.path("logs.jsonl"), |l| {
        !all(l, "logRecords").is_empty()
    })
    .await;
    let records = all(&logs, "logRecords");
    assert!(
        records.iter().any(|r| r["body"]["stringValue"]
            .as_str()
            .is_some_and(|b| b.contains("\"request_id\":\"req-drop\""))),
        "{records:#?}"
    );
    Ok(())
}

/// One span with typed attributes sent over `protocol`; returns the span's attributes and
/// its resource's `service.name` as the collector wrote them.
async fn span_round_trip(
    protocol: Protocol,
    service: &str,
) -> anyhow::Result<(BTreeMap<String, String>, Option<String>)> {
    let collector = Collector::start().await?;
    let guard = aurastream_sdk::init(service)
        .endpoint(collector.endpoint(protocol))
        .protocol(protocol)
        .install_tracing_subscriber(false)
        .install()?;
    let tracer = guard.tracer_provider().tracer("e2e");
    let mut span = tracer
        .span_builder("checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("order.id", "o-17 \"quoted\" ü"),
            KeyValue::new("order.items", 3_i64),
            KeyValue::new("order.express", true),
            KeyValue::new("order.amount", 12.5),
        ])
        .start(&tracer);
    span.set_attribute(KeyValue::new("http.response.status_code", 201_i64));
    span.end();
    guard.shutdown().await?;

    let lines = wait_for(&collector.path("traces.jsonl"), |l| {
        all(l, "spans").iter().any(|s| s["name"] == "checkout")
    })
    .await;
    let span = all(&lines, "spans")
        .into_iter()
        .find(|s| s["name"] == "checkout")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("span missing; stderr:\n{}", collector.stderr()))?;
    let service_name = all(&lines, "resourceSpans")
        .into_iter()
        .filter_map(|rs| rs.get("resource"))
        .find_map(|r| attributes(r).get("service.name").cloned());
    Ok((attributes(&span), service_name))
}

fn expected_attributes() -> BTreeMap<String, String> {
    [
        ("order.id", "o-17 \"quoted\" ü"),
        ("order.items", "3"),
        ("order.express", "true"),
        ("order.amount", "12.5"),
        ("http.response.status_code", "201"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_delivers_span_attributes() -> anyhow::Result<()> {
    let (attrs, service) = span_round_trip(Protocol::HttpJson, "sdk-json-e2e").await?;
    assert_eq!(attrs, expected_attributes());
    assert_eq!(service.as_deref(), Some("sdk-json-e2e"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_delivers_span_attributes() -> anyhow::Result<()> {
    let (attrs, service) = span_round_trip(Protocol::HttpProtobuf, "sdk-proto-e2e").await?;
    assert_eq!(attrs, expected_attributes());
    assert_eq!(service.as_deref(), Some("sdk-proto-e2e"));
    Ok(())
}
