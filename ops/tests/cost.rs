//! `aurastream cost` against moto and the real collector: custom metrics (one of them
//! per customer), two log groups (one with `AWS/Logs IncomingBytes`, one without) and
//! spans the collector sent to X-Ray; every line item equals the hand computation in
//! this file, and the per-customer dimension is named as the cost driver.
//!
//! moto does not publish CloudWatch Logs' own `IncomingBytes` metric; the test writes it
//! with PutMetricData, as CloudWatch would.

mod support;

use std::time::{Duration, SystemTime};

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::{Collector, base_config, eventually};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::json;
use support::{aurastream, json, minutes_ago, now_secs, stderr};

const GB: f64 = 1_073_741_824.0;

async fn seed(endpoint: &str) {
    let config = support::sdk_config(endpoint).await;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let dim = |k: &str, v: &str| Dimension::builder().name(k).value(v).build();
    let point = |name: &str, dims: Vec<Dimension>, v: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .set_dimensions(Some(dims))
            .timestamp(DateTime::from_secs(minutes_ago(10)))
            .value(v)
            .build()
    };
    // 60 per-customer series + 1 per-endpoint series + 1 business metric = 62 custom
    // metrics; AWS/ApiGateway's are free.
    let mut app: Vec<MetricDatum> = (0..60)
        .map(|c| {
            point(
                "APIRequestCount",
                vec![
                    dim("Endpoint", "/analyze"),
                    dim("CustomerId", &format!("customer_{c}")),
                    dim("StatusCode", "200"),
                ],
                1.0,
            )
        })
        .collect();
    app.push(point(
        "APIRequestCount",
        vec![dim("Endpoint", "/analyze"), dim("StatusCode", "200")],
        60.0,
    ));
    for (ns, data) in [
        ("AuraStream/Application", app),
        ("AuraStream/Business", vec![point("Revenue", vec![], 9.5)]),
        (
            "AWS/ApiGateway",
            vec![point("Count", vec![dim("ApiName", "aurastream-api")], 60.0)],
        ),
        // CloudWatch Logs' own ingestion metric for one group: 2,000,000 bytes today.
        (
            "AWS/Logs",
            vec![
                point(
                    "IncomingBytes",
                    vec![dim("LogGroupName", "/aws/aurastream/metrics/sentiment-api")],
                    1_500_000.0,
                ),
                point(
                    "IncomingBytes",
                    vec![dim("LogGroupName", "/aws/aurastream/metrics/sentiment-api")],
                    500_000.0,
                ),
            ],
        ),
    ] {
        cw.put_metric_data()
            .namespace(ns)
            .set_metric_data(Some(data))
            .send()
            .await
            .expect("PutMetricData");
    }

    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    for (group, retention, messages) in [
        ("/aws/aurastream/application", 30, vec!["a".repeat(1000); 4]),
        (
            "/aws/aurastream/metrics/sentiment-api",
            7,
            vec!["m".repeat(500); 2],
        ),
    ] {
        logs.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .expect("CreateLogGroup");
        logs.put_retention_policy()
            .log_group_name(group)
            .retention_in_days(retention)
            .send()
            .await
            .expect("PutRetentionPolicy");
        logs.create_log_stream()
            .log_group_name(group)
            .log_stream_name("s")
            .send()
            .await
            .expect("CreateLogStream");
        let events: Vec<InputLogEvent> = messages
            .iter()
            .map(|m| {
                InputLogEvent::builder()
                    .timestamp(now_secs() * 1000)
                    .message(m)
                    .build()
                    .expect("event")
            })
            .collect();
        logs.put_log_events()
            .log_group_name(group)
            .log_stream_name("s")
            .set_log_events(Some(events))
            .send()
            .await
            .expect("PutLogEvents");
    }
}

/// 40 spans of 40 traces, as OTLP/JSON.
fn spans() -> serde_json::Value {
    let t = now_secs();
    let spans: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            json!({
                "traceId": format!("{t:08x}{i:024x}"),
                "spanId": format!("{:016x}", i + 1),
                "name": "POST /analyze",
                "kind": 2,
                "startTimeUnixNano": format!("{}", (t as u128) * 1_000_000_000),
                "endTimeUnixNano": format!("{}", (t as u128) * 1_000_000_000 + 5_000_000),
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "sentiment-api"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]
    }]})
}

fn line<'a>(e: &'a serde_json::Value, item: &str) -> &'a serde_json::Value {
    e["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["item"] == item))
        .unwrap_or_else(|| panic!("no {item} in {e}"))
}

fn usd(v: &serde_json::Value) -> f64 {
    v["usd"].as_f64().unwrap_or(f64::NAN)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-6)
}

#[test]
fn the_estimate_of_a_seeded_account_matches_the_hand_computation() {
    use_test_credentials();
    let moto = Moto::start();
    let rt = aurastream_e2e::test_runtime();
    rt.block_on(seed(&moto.url()));

    let collector = Collector::start(|ports, _| {
        format!(
            "{base}
exporters:
  awsxray:
    output_destination: cloudwatch
    region: us-east-1
    endpoint: {moto}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], exporters: [awsxray]}}
",
            base = base_config(ports),
            moto = moto.url()
        )
    });
    // A reading saved "an hour ago", then 40 spans to X-Ray through the collector.
    let baseline = collector.dir.path().join("baseline.prom");
    std::fs::write(&baseline, collector.metrics()).expect("save baseline");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&baseline)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set baseline time");
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/traces", collector.ports.http_url()))
            .header("content-type", "application/json")
            .body(spans().to_string())
            .send()
            .await
            .map(|r| r.status())
    });
    assert!(status.as_ref().is_ok_and(|s| s.is_success()), "{status:?}");
    eventually("40 spans sent to X-Ray", Duration::from_secs(30), || {
        collector.metric(
            "aurastream_exporter_sent_items_total",
            &["exporter=\"awsxray\""],
        ) == 40.0
    });

    let health = format!("http://127.0.0.1:{}", collector.ports.health);
    let out = aurastream(
        &moto.url(),
        &[
            "cost",
            "--collector",
            &health,
            "--baseline",
            &baseline.display().to_string(),
            "--days",
            "30",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = json(&out);

    // Custom metrics: 62 combinations × 1 month × $0.30.
    assert_eq!(line(&e, "custom metrics")["quantity"], 62.0);
    assert!(close(usd(line(&e, "custom metrics")), 18.6));
    // /aws/aurastream/application: no IncomingBytes; 4,000 bytes stored by a group under
    // a day old = 4,000 bytes a day → 120,000 ingested in 30 days; stored at the end
    // min(4,000 + 120,000, 30 d × 4,000) = 120,000.
    let app = 120_000.0 / GB * 0.50 + 120_000.0 / GB * 0.03;
    assert!(close(usd(line(&e, "/aws/aurastream/application")), app));
    // The EMF group: 2,000,000 bytes a day → 60,000,000 ingested; 7-day retention keeps
    // 14,000,000.
    let emf = 60_000_000.0 / GB * 0.50 + 14_000_000.0 / GB * 0.03;
    assert!(close(
        usd(line(&e, "/aws/aurastream/metrics/sentiment-api")),
        emf
    ));
    // X-Ray: 40 spans (no sampler: each may start a trace) in the measured interval.
    let seconds = e["shipped"]["seconds"].as_f64().unwrap_or_default();
    assert!((3600.0..3700.0).contains(&seconds), "{seconds}");
    assert_eq!(e["shipped"]["xray_spans"], 40.0);
    let traces = 40.0 / seconds * 30.0 * 86_400.0;
    assert!(close(usd(line(&e, "traces recorded")), traces / 1e6 * 5.0));
    assert!(close(usd(line(&e, "traces scanned")), traces / 1e6 * 0.5));
    let order: Vec<&str> = e["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["item"].as_str())
        .collect();
    assert_eq!(
        order,
        [
            "custom metrics",
            "traces recorded",
            "/aws/aurastream/metrics/sentiment-api",
            "traces scanned",
            "/aws/aurastream/application"
        ]
    );
    let total = 18.6 + app + emf + traces / 1e6 * 5.5;
    assert!(close(e["total_usd"].as_f64().unwrap_or_default(), total));
    // CustomerId drives 60 of the 62 metrics.
    assert_eq!(
        e["warnings"],
        json!([{"dimension": "CustomerId", "distinct_values": 60, "metrics_due": 60, "usd": 18.0}])
    );

    // The table says it too.
    let out = aurastream(&moto.url(), &["cost"]);
    let text = support::stdout(&out);
    assert!(
        text.contains("warning: dimension CustomerId has 60 distinct values"),
        "{text}"
    );
    assert!(text.contains("note: X-Ray not estimated"), "{text}");
}
