//! The Python OpenTelemetry SDK (`opentelemetry-exporter-otlp`, gRPC and HTTP/protobuf)
//! sends all three signals; the file exporter's output must hold exactly what was sent.

use std::collections::BTreeSet;

use aurastream_e2e::otlp_json::{self, number};
use aurastream_e2e::{Collector, file_config, python_client, read_jsonl};
use serde_json::Value;

fn check(protocol: &str) {
    let mut c = Collector::start(file_config);
    let endpoint = match protocol {
        "grpc" => c.ports.grpc_url(),
        _ => c.ports.http_url(),
    };
    let service = format!("python-{protocol}");
    let out = python_client("send_otlp.py", protocol, &endpoint, &service)
        .output()
        .expect("run send_otlp.py");
    assert!(
        out.status.success(),
        "send_otlp.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout");
    assert_eq!(c.stop(), 0, "clean exit on SIGTERM:\n{}", c.stderr());

    let sent_spans: BTreeSet<(String, String, String)> = sent["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap_or_default().to_string(),
                s[1].as_str().unwrap_or_default().to_string(),
                s[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let spans = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")));
    assert_eq!(spans.len(), sent_spans.len(), "every span exactly once");
    let got: BTreeSet<_> = spans
        .iter()
        .map(|s| (s.name.clone(), s.trace_id.clone(), s.span_id.clone()))
        .collect();
    assert_eq!(got, sent_spans);
    for s in &spans {
        assert_eq!(s.service, service);
        if s.name.starts_with("POST /analyze/") {
            assert_eq!(s.kind, 2);
            assert_eq!(s.attributes["http.method"], "POST");
            let i: i64 = s
                .name
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("index");
            assert_eq!(
                s.attributes["http.status_code"],
                if i % 4 == 0 { 429 } else { 200 }
            );
        } else {
            assert_eq!(s.name, "comprehend_api");
            assert_eq!(s.attributes["rpc.method"], "DetectSentiment");
            assert!(!s.parent_span_id.is_empty());
        }
    }
    let with_exception = spans
        .iter()
        .filter(|s| s.events.contains(&"exception".to_string()))
        .count();
    assert_eq!(
        with_exception, 5,
        "traces 0,4,8,12,16 recorded an exception"
    );

    let points = otlp_json::points(&read_jsonl(&c.path("metrics.jsonl")));
    // The Python SDK lower-cases instrument names before export (the file exporter keeps
    // names exactly as received); for the seed's CloudWatch names, rename with a Python View
    // or list the names in `awsemf`'s `metric_descriptors` (see python_cloudwatch.rs).
    assert!(points.iter().all(|p| p.metric == p.metric.to_lowercase()));
    let count = |sentiment: &str| {
        points
            .iter()
            .filter(|p| {
                p.metric == "sentimentanalysiscount" && p.attributes["Sentiment"] == sentiment
            })
            .filter_map(|p| number(&p.point))
            .next_back()
    };
    assert_eq!(count("POSITIVE"), Some(4.0));
    assert_eq!(count("NEUTRAL"), Some(1.0));
    let processing = points
        .iter()
        .rfind(|p| p.metric == "processingtime" && p.attributes["Sentiment"] == "POSITIVE")
        .expect("ProcessingTime histogram");
    assert_eq!(processing.kind, "histogram");
    assert_eq!(processing.point["count"], "4");
    assert_eq!(processing.point["sum"], 1000.0);

    let logs = otlp_json::logs(&read_jsonl(&c.path("logs.jsonl")));
    let ids: Vec<String> = logs
        .iter()
        .map(|l| {
            let body: Value =
                serde_json::from_str(l.body.as_str().expect("string body")).expect("JSON");
            assert_eq!(body["event_type"], "api_request");
            assert_eq!(l.attributes["log.category"], "application");
            assert_eq!(
                l.trace_id,
                sent["trace_id_of_logs"].as_str().unwrap_or_default()
            );
            body["request_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let want: Vec<String> = sent["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn python_grpc_client_all_signals_arrive_intact() {
    check("grpc");
}

#[test]
fn python_http_protobuf_client_all_signals_arrive_intact() {
    check("http");
}
