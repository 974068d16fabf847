//! OTLP/JSON over HTTP for all three signals: answered in JSON, written intact, and every
//! item accounted for on /metrics while the collector runs.

use std::time::Duration;

use aurastream_e2e::{Collector, eventually, file_config, otlp_json, read_jsonl};
use serde_json::json;

#[tokio::test]
async fn json_requests_round_trip_and_counts_add_up() {
    let mut c = Collector::start(file_config);
    let client = reqwest::Client::new();
    let post = |path: &'static str, body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{}{path}", c.ports.http_url());
        async move {
            let r = client.post(url).json(&body).send().await.expect("answer");
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            r.json::<serde_json::Value>().await.expect("JSON response")
        }
    };
    let resource =
        json!({"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]});
    let traces = json!({"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "s"}, "spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "GET /health",
         "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000250000000",
         "attributes": [{"key": "http.response.status_code", "value": {"intValue": "503"}},
                        {"key": "big", "value": {"intValue": 9007199254740993i64}}],
         "status": {"code": 2, "message": "upstream down"}},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "child", "kind": 3, "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000200000000"}
    ]}]}]});
    assert_eq!(post("/v1/traces", traces).await, json!({}));
    let metrics = json!({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
        {"name": "CacheHitRate", "unit": "1", "gauge": {"dataPoints": [
            {"timeUnixNano": "1700000000000000000", "asDouble": 0.5},
            {"timeUnixNano": "1700000001000000000", "asDouble": "NaN"}]}},
        {"name": "APIRequestCount", "unit": "{count}", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [{"timeUnixNano": "1700000000000000000", "asInt": "42",
                            "attributes": [{"key": "Endpoint", "value": {"stringValue": "/analyze"}}]}]}}
    ]}]}]});
    // The string "NaN" cannot be decoded into a protobuf double here: that point is refused
    // through partial success, never silently turned into a point without a value.
    let answer = post("/v1/metrics", metrics).await;
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );
    // Over protobuf, NaN is a plain double: accepted, and written as OTLP/JSON's "NaN".
    let nan = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        resource_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
            scope_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ScopeMetrics {
                metrics: vec![opentelemetry_proto::tonic::metrics::v1::Metric {
                    name: "NaNGauge".into(),
                    data: Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(
                        opentelemetry_proto::tonic::metrics::v1::Gauge {
                            data_points: vec![opentelemetry_proto::tonic::metrics::v1::NumberDataPoint {
                                value: Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(f64::NAN)),
                                ..Default::default()
                            }],
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = client
        .post(format!("{}/v1/metrics", c.ports.http_url()))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&nan))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let logs = json!({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000000000000", "severityText": "ERROR", "severityNumber": 17,
         "body": {"kvlistValue": {"values": [{"key": "event_type", "value": {"stringValue": "error"}},
                                              {"key": "error_type", "value": {"stringValue": "Timeout"}}]}},
         "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    ]}]}]});
    assert_eq!(post("/v1/logs", logs).await, json!({}));

    // Every accepted item leaves through the exporter; nothing is left in the queues.
    eventually("all items exported", Duration::from_secs(10), || {
        let m = c.metrics();
        let sent = |signal: &str| {
            aurastream_e2e::metric_sum(
                &m,
                "aurastream_exporter_sent_items_total",
                &[&format!("signal=\"{signal}\"")],
            )
        };
        sent("traces") == 2.0 && sent("metrics") == 3.0 && sent("logs") == 1.0
    });
    let m = c.metrics();
    for (signal, n) in [("traces", 2.0), ("metrics", 3.0), ("logs", 1.0)] {
        let accepted = aurastream_e2e::metric_sum(
            &m,
            "aurastream_receiver_accepted_items_total",
            &["transport=\"http\"", &format!("signal=\"{signal}\"")],
        );
        let pipeline = aurastream_e2e::metric_sum(
            &m,
            "aurastream_pipeline_accepted_items_total",
            &[&format!("pipeline=\"{signal}\"")],
        );
        assert_eq!((accepted, pipeline), (n, n), "{signal}");
        assert_eq!(
            aurastream_e2e::metric_sum(
                &m,
                "aurastream_pipeline_queue_items",
                &[&format!("pipeline=\"{signal}\"")]
            ),
            0.0
        );
    }
    assert_eq!(
        aurastream_e2e::metric_sum(&m, "aurastream_exporter_failed_items_total", &[]),
        0.0
    );
    assert!(aurastream_e2e::metric_sum(&m, "aurastream_process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(c.stop(), 0);

    let spans = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")));
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(spans[0].attributes["http.response.status_code"], 503);
    assert_eq!(
        spans[0].attributes["big"], 9007199254740993i64,
        "int64 kept exactly"
    );
    assert_eq!(
        (spans[0].status_code, spans[1].parent_span_id.as_str()),
        (2, "eee19b7ec3c1b174")
    );
    let raw = std::fs::read_to_string(c.path("traces.jsonl")).expect("file");
    assert!(
        raw.contains(r#""startTimeUnixNano":"1700000000000000000""#),
        "int64 as strings"
    );

    let points = otlp_json::points(&read_jsonl(&c.path("metrics.jsonl")));
    assert_eq!(points.len(), 3);
    assert_eq!(points[0].point["asDouble"], 0.5);
    assert_eq!(points[1].attributes["Endpoint"], "/analyze");
    assert_eq!(
        (points[2].metric.as_str(), &points[2].point["asDouble"]),
        ("NaNGauge", &json!("NaN"))
    );

    let logs = otlp_json::logs(&read_jsonl(&c.path("logs.jsonl")));
    assert_eq!(
        logs[0].body,
        json!({"event_type": "error", "error_type": "Timeout"})
    );
    assert_eq!(logs[0].span_id, "eee19b7ec3c1b174");
}
