//! The Rust `opentelemetry-otlp` exporter (gRPC and HTTP/protobuf) sends all three signals
//! to the real collector; the file exporter's output must hold exactly what was sent.

use std::collections::BTreeSet;

use aurastream_e2e::otlp_json::{self, number};
use aurastream_e2e::{Collector, file_config, read_jsonl};
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_otlp::{
    LogExporter, MetricExporter, SpanExporter, WithExportConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProtobuf,
}

/// What the client sent, to compare against what the collector wrote.
#[derive(Debug, Default)]
struct Sent {
    spans: BTreeSet<(String, String, String)>,
    log_trace_id: String,
}

const SPANS: usize = 25;

fn send_everything(c: &Collector, transport: Transport, service: &str) -> Sent {
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build();
    let (span_exporter, metric_exporter, log_exporter) = match transport {
        Transport::Grpc => (
            // Spans go gzipped, to cover the receiver's gRPC decompression.
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(c.ports.grpc_url())
                .with_compression(opentelemetry_otlp::Compression::Gzip)
                .build(),
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(c.ports.grpc_url())
                .build(),
            LogExporter::builder()
                .with_tonic()
                .with_endpoint(c.ports.grpc_url())
                .build(),
        ),
        Transport::HttpProtobuf => (
            SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", c.ports.http_url()))
                .build(),
            MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/metrics", c.ports.http_url()))
                .build(),
            LogExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/logs", c.ports.http_url()))
                .build(),
        ),
    };
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(span_exporter.expect("span exporter"))
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_periodic_exporter(metric_exporter.expect("metric exporter"))
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(log_exporter.expect("log exporter"))
        .build();

    let mut sent = Sent::default();
    let tracer = tracer_provider.tracer("e2e-rust");
    for i in 0..SPANS {
        let mut root = tracer
            .span_builder(format!("GET /analyze/{i}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("url.path", format!("/analyze/{i}")),
                KeyValue::new(
                    "http.response.status_code",
                    if i % 5 == 0 { 404 } else { 200 },
                ),
            ])
            .start(&tracer);
        let trace_id = root.span_context().trace_id().to_string();
        let root_id = root.span_context().span_id().to_string();
        let parent_cx =
            opentelemetry::Context::new().with_remote_span_context(root.span_context().clone());
        let mut child = tracer
            .span_builder("DynamoDB.GetItem")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("rpc.system", "aws-api"),
                KeyValue::new("rpc.service", "DynamoDB"),
                KeyValue::new("aws.dynamodb.table_names", "AuraStream-SentimentCache"),
            ])
            .start_with_context(&tracer, &parent_cx);
        if i % 7 == 0 {
            child.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", "ProvisionedThroughputExceededException"),
                    KeyValue::new("exception.message", "rate exceeded"),
                ],
            );
            child.set_status(Status::error("throttled"));
        }
        let child_id = child.span_context().span_id().to_string();
        child.end();
        root.end();
        sent.spans
            .insert((format!("GET /analyze/{i}"), trace_id.clone(), root_id));
        sent.spans
            .insert(("DynamoDB.GetItem".into(), trace_id.clone(), child_id));
        sent.log_trace_id = trace_id;
    }

    let meter = meter_provider.meter("e2e-rust");
    let count = meter
        .u64_counter("SentimentAnalysisCount")
        .with_unit("{count}")
        .build();
    let latency = meter
        .f64_histogram("ProcessingTime")
        .with_unit("ms")
        .build();
    let rate = meter.f64_gauge("CacheHitRate").with_unit("1").build();
    for (sentiment, n) in [("POSITIVE", 3u64), ("NEGATIVE", 2)] {
        count.add(n, &[KeyValue::new("Sentiment", sentiment)]);
        latency.record(120.0, &[KeyValue::new("Sentiment", sentiment)]);
        latency.record(480.0, &[KeyValue::new("Sentiment", sentiment)]);
    }
    rate.record(0.75, &[]);

    let logger = logger_provider.logger("e2e-rust");
    let trace_id: opentelemetry::trace::TraceId =
        opentelemetry::trace::TraceId::from_hex(&sent.log_trace_id).expect("hex trace id");
    for i in 0..10 {
        let mut record = logger.create_log_record();
        record.set_severity_number(Severity::Info);
        record.set_severity_text("INFO");
        record.set_body(AnyValue::String(
            format!(
                r#"{{"event_type":"api_response","request_id":"req-{i}","status_code":200,"response_time":{}}}"#,
                100 * i
            )
            .into(),
        ));
        record.add_attribute("log.category", "application");
        record.set_trace_context(trace_id, opentelemetry::trace::SpanId::from(7u64), None);
        logger.emit(record);
    }

    tracer_provider.shutdown().expect("traces flushed");
    meter_provider.shutdown().expect("metrics flushed");
    logger_provider.shutdown().expect("logs flushed");
    sent
}

fn check(transport: Transport) {
    let mut c = Collector::start(file_config);
    let service = format!("rust-{transport:?}").to_lowercase();
    let sent = match transport {
        // tonic needs a runtime; the OpenTelemetry SDK's processors run their own threads
        // and block on the exporter's futures, which run on this runtime.
        Transport::Grpc => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let _guard = rt.enter();
            send_everything(&c, transport, &service)
        }
        // The blocking HTTP client must live outside any runtime.
        Transport::HttpProtobuf => send_everything(&c, transport, &service),
    };
    assert_eq!(c.stop(), 0, "clean exit on SIGTERM:\n{}", c.stderr());

    let spans = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")));
    let got: BTreeSet<(String, String, String)> = spans
        .iter()
        .map(|s| (s.name.clone(), s.trace_id.clone(), s.span_id.clone()))
        .collect();
    assert_eq!(spans.len(), 2 * SPANS, "every span exactly once");
    assert_eq!(got, sent.spans);
    for s in &spans {
        assert_eq!(s.service, service);
        assert_eq!(s.scope, "e2e-rust");
        if s.name == "DynamoDB.GetItem" {
            assert_eq!(s.kind, 3, "client span");
            assert_eq!(s.attributes["rpc.system"], "aws-api");
            assert!(!s.parent_span_id.is_empty());
        } else {
            assert_eq!(s.kind, 2, "server span");
            assert_eq!(s.attributes["http.request.method"], "GET");
        }
    }
    let failed: Vec<_> = spans.iter().filter(|s| s.status_code == 2).collect();
    assert_eq!(failed.len(), SPANS.div_ceil(7));
    assert!(
        failed
            .iter()
            .all(|s| s.events == vec!["exception".to_string()])
    );

    let points = otlp_json::points(&read_jsonl(&c.path("metrics.jsonl")));
    // Cumulative temporality: the last export holds the totals.
    let last_count = |sentiment: &str| {
        points
            .iter()
            .filter(|p| {
                p.metric == "SentimentAnalysisCount" && p.attributes["Sentiment"] == sentiment
            })
            .filter_map(|p| number(&p.point))
            .next_back()
    };
    assert_eq!(last_count("POSITIVE"), Some(3.0));
    assert_eq!(last_count("NEGATIVE"), Some(2.0));
    let hist = points
        .iter()
        .rfind(|p| p.metric == "ProcessingTime" && p.attributes["Sentiment"] == "POSITIVE")
        .expect("histogram point");
    assert_eq!(hist.kind, "histogram");
    assert_eq!(hist.unit, "ms");
    assert_eq!(hist.point["count"], "2");
    assert_eq!(hist.point["sum"], 600.0);
    let gauge = points
        .iter()
        .rfind(|p| p.metric == "CacheHitRate")
        .expect("gauge");
    assert_eq!(
        (gauge.kind.as_str(), number(&gauge.point)),
        ("gauge", Some(0.75))
    );

    let logs = otlp_json::logs(&read_jsonl(&c.path("logs.jsonl")));
    assert_eq!(logs.len(), 10);
    for (i, l) in logs.iter().enumerate() {
        let body: serde_json::Value =
            serde_json::from_str(l.body.as_str().expect("string body")).expect("JSON body");
        assert_eq!(body["request_id"], format!("req-{i}"));
        assert_eq!(body["response_time"], 100 * i);
        assert_eq!(l.attributes["log.category"], "application");
        assert_eq!(l.severity_text, "INFO");
        assert_eq!(l.trace_id, sent.log_trace_id);
        assert_eq!(l.service, service);
    }
}

#[test]
fn rust_grpc_client_all_signals_arrive_intact() {
    check(Transport::Grpc);
}

#[test]
fn rust_http_protobuf_client_all_signals_arrive_intact() {
    check(Transport::HttpProtobuf);
}
