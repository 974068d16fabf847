//! `aurastream traces` and `aurastream trace ID` against moto seeded with three traces
//! (slow, fast, failing) through PutTraceSegments and log lines through PutLogEvents:
//! the slow trace is named as a bottleneck with its slow subsegment, the fault is found
//! where it starts, and one trace's waterfall comes with exactly its log lines.
//!
//! moto does not evaluate X-Ray filter expressions (`--filter`), so they are not tested
//! here; and its GetTraceSummaries answer has a malformed `Users` field, fixed by the
//! patched moto of tests/support/moto_patched.py.

mod support;

use serde_json::json;
use support::{PatchedMoto, aurastream, json, now_secs, stdout};

const SLOW: &str = "1-6750a000-0000000000000000000000a1";
const FAST: &str = "1-6750a000-0000000000000000000000a2";
const FAILING: &str = "1-6750a000-0000000000000000000000a3";

fn segments(t0: f64) -> Vec<serde_json::Value> {
    vec![
        json!({"name": "sentiment-api", "id": "1000000000000001", "trace_id": SLOW,
               "start_time": t0, "end_time": t0 + 2.4,
               "http": {"request": {"method": "POST", "url": "/analyze"}, "response": {"status": 200}},
               "subsegments": [
                   {"name": "cache_operation", "id": "1000000000000002", "start_time": t0 + 0.01, "end_time": t0 + 0.03},
                   {"name": "comprehend_api", "id": "1000000000000003", "start_time": t0 + 0.05, "end_time": t0 + 2.25}]}),
        json!({"name": "sentiment-api", "id": "2000000000000001", "trace_id": FAST,
               "start_time": t0 + 1.0, "end_time": t0 + 1.08}),
        json!({"name": "sentiment-api", "id": "3000000000000001", "trace_id": FAILING,
               "start_time": t0 + 2.0, "end_time": t0 + 2.3, "fault": true,
               "http": {"response": {"status": 500}},
               "subsegments": [
                   {"name": "DynamoDB", "id": "3000000000000002", "start_time": t0 + 2.05, "end_time": t0 + 2.2,
                    "fault": true, "namespace": "aws",
                    "cause": {"exceptions": [{"message": "InternalServerError from DynamoDB"}]}}]}),
    ]
}

async fn seed(endpoint: &str, t0: f64) {
    let config = support::sdk_config(endpoint).await;
    let xray = aws_sdk_xray::Client::new(&config);
    let docs: Vec<String> = segments(t0).iter().map(|s| s.to_string()).collect();
    let out = xray
        .put_trace_segments()
        .set_trace_segment_documents(Some(docs))
        .send()
        .await
        .expect("PutTraceSegments");
    assert!(out.unprocessed_trace_segments().is_empty());

    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let group = "/aws/aurastream/application";
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .expect("CreateLogGroup");
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name("sentiment-api")
        .send()
        .await
        .expect("CreateLogStream");
    let at = (t0 * 1000.0) as i64;
    let events = [
        (
            at + 100,
            json!({"event_type": "api_request", "path": "/analyze",
                          "trace_id": "6750a0000000000000000000000000a1"}),
        ),
        (
            at + 2300,
            json!({"event_type": "api_response", "response_time": 2400,
                           "trace_id": "6750a0000000000000000000000000a1"}),
        ),
        (
            at + 2400,
            json!({"event_type": "api_request", "path": "/analyze",
                           "trace_id": "6750a0000000000000000000000000a2"}),
        ),
    ];
    let events: Vec<_> = events
        .iter()
        .map(|(t, m)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(*t)
                .message(m.to_string())
                .build()
                .expect("event")
        })
        .collect();
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name("sentiment-api")
        .set_log_events(Some(events))
        .send()
        .await
        .expect("PutLogEvents");
}

#[test]
fn the_slow_trace_is_named_and_one_trace_comes_with_its_log_lines() {
    let moto = PatchedMoto::start();
    let t0 = (now_secs() - 300) as f64;
    aurastream_e2e::test_runtime().block_on(seed(&moto.url(), t0));

    let out = aurastream(
        &moto.url(),
        &["traces", "--since", "15m", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let report = json(&out);
    assert_eq!(report["summarised"], 3, "{report}");
    let found: Vec<(String, String, String, String)> = report["bottlenecks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["rule"].as_str().unwrap_or_default().to_string(),
                b["trace_id"].as_str().unwrap_or_default().to_string(),
                b["segment"].as_str().unwrap_or_default().to_string(),
                b["culprit"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "fault".into(),
                FAILING.into(),
                "sentiment-api".into(),
                "DynamoDB".into()
            ),
            (
                "slow_segment".into(),
                SLOW.into(),
                "sentiment-api".into(),
                "comprehend_api".into()
            ),
        ]
    );
    assert_eq!(report["analysed"][0]["id"], SLOW, "slowest first");

    let table = stdout(&aurastream(&moto.url(), &["traces", "--since", "15m"]));
    assert!(
        table.contains("2400 ms > 1000 ms; slowest inside: comprehend_api 2200 ms"),
        "{table}"
    );
    assert!(
        table.contains("fault: InternalServerError from DynamoDB"),
        "{table}"
    );

    let out = aurastream(&moto.url(), &["trace", SLOW]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" ms ")).collect();
    assert!(rows[0].starts_with("sentiment-api"), "{text}");
    assert!(rows[1].starts_with("  cache_operation"), "{text}");
    assert!(
        rows[2].starts_with("  comprehend_api") && rows[2].contains("2200 ms"),
        "{text}"
    );
    assert!(
        text.contains("slow_segment    sentiment-api → comprehend_api"),
        "{text}"
    );
    assert!(text.contains("(1 of 5 log groups exist)"), "{text}");
    let log_lines: Vec<&str> = text.lines().filter(|l| l.contains("event_type")).collect();
    assert_eq!(log_lines.len(), 2, "exactly the trace's lines: {text}");
    assert!(log_lines[0].contains("api_request") && log_lines[1].contains("api_response"));

    let out = aurastream(
        &moto.url(),
        &["trace", "1-6750a000-0000000000000000000000ff"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(support::stderr(&out).contains("not found in X-Ray"));
}
