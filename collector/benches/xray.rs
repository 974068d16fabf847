//! Throughput of the X-Ray paths, per core (each benchmark runs on one thread).
//!
//! * `xray/translate_spans`: the `awsxray` exporter turning OTLP spans into segment
//!   documents (translation, 64 KB check, JSON) and writing them one per line to
//!   `/dev/null`, for batches of realistic request traces: a SERVER span with HTTP
//!   attributes, two AWS SDK client calls (Comprehend, DynamoDB) and an internal span
//!   that failed with a Python exception and its stack.
//! * `xray/forward_received`: the same exporter sending on the documents the `awsxray`
//!   receiver kept (spans decoded from SDK datagrams): the per-span id check only.
//! * `xray/decode_datagram`: the `awsxray` receiver decoding one SDK datagram (header,
//!   JSON, a segment with two nested subsegments) into OTLP spans.
//!
//! Run: `cargo bench -p aurastream-collector --bench xray`

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use aurastream_collector::component::Exporter;
use aurastream_collector::exporter::xray::XrayExporter;
use aurastream_collector::exporter::xray::config::{OutputDestination, XrayExporterConfig};
use aurastream_collector::model::SignalData;
use aurastream_collector::receiver::xray_udp;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind, status::StatusCode,
};

/// Traces per exported batch; four spans each.
const TRACES: usize = 256;

const PYTHON_STACK: &str = "Traceback (most recent call last):
  File \"/app/aurastream/api/handlers.py\", line 88, in analyze
    result = tracing.analyze_sentiment(text, options)
  File \"/app/aurastream/tracing.py\", line 41, in analyze_sentiment
    cache_result = self._check_cache(text)
  File \"/app/aurastream/tracing.py\", line 77, in _check_cache
    response = table.get_item(Key={'text_hash': cache_key})
  File \"/usr/local/lib/python3.11/site-packages/boto3/resources/factory.py\", line 580, in do_action
    response = action(self, *args, **kwargs)
  File \"/usr/local/lib/python3.11/site-packages/botocore/client.py\", line 1023, in _make_api_call
    raise error_class(parsed_response, operation_name)
botocore.errorfactory.ProvisionedThroughputExceededException: An error occurred (ProvisionedThroughputExceededException) when calling the GetItem operation: Rate exceeded
";

/// The datagram the Python SDK sends for tests/python/xray_sdk_app.py.
const DATAGRAM: &str = r#"{"format":"json","version":1}
{"id": "94914ce601f2fe34", "name": "aurastream-api", "start_time": 1795775725.5036223, "in_progress": false, "http": {"request": {"method": "POST", "url": "https://api.aurastream.example/analyze/sentiment"}, "response": {"status": 200}}, "annotations": {"customer_tier": "premium"}, "metadata": {"default": {"text_length": 36, "has_options": false, "cache_error": "AuraStream-SentimentCache is throttled"}}, "aws": {"xray": {"sdk": "X-Ray for Python", "sdk_version": "2.15.0"}}, "subsegments": [{"id": "9d654ad591b6912a", "name": "comprehend_api", "start_time": 1795775725.5037236, "parent_id": "94914ce601f2fe34", "in_progress": false, "annotations": {"sentiment": "POSITIVE"}, "metadata": {"default": {"sentiment": "POSITIVE", "confidence": {"Positive": 0.98, "Negative": 0.01}}}, "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "type": "subsegment", "namespace": "local", "end_time": 1795775725.5037525}, {"id": "a55557168a87244a", "name": "cache_operation", "start_time": 1795775725.5037696, "parent_id": "94914ce601f2fe34", "in_progress": false, "metadata": {"default": {"cache_key": "sha256:3f2a"}}, "cause": {"working_directory": "/work/main", "exceptions": [{"id": "e6d03aeb310a01bc", "message": "AuraStream-SentimentCache is throttled", "type": "CacheUnavailable", "remote": false, "stack": [{"path": "xray_sdk_app.py", "line": 46, "label": "analyze_sentiment"}, {"path": "xray_sdk_app.py", "line": 32, "label": "check_cache"}]}]}, "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "type": "subsegment", "namespace": "local", "fault": true, "end_time": 1795775725.5039954}], "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "user": "user-42", "service": {"runtime": "CPython", "runtime_version": "3.11.7"}, "end_time": 1795775725.5040102}"#;

fn s(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

fn span(trace: u32, id: u8, parent: Option<u8>, kind: SpanKind, name: &str) -> Span {
    let mut trace_id = 0x6b09_5ced_u32.to_be_bytes().to_vec();
    trace_id.extend_from_slice(&trace.to_be_bytes());
    trace_id.extend_from_slice(&[0xa5; 8]);
    let span_id = |n: u8| {
        let mut v = trace.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, n]);
        v
    };
    let start = 1_795_775_725_000_000_000 + u64::from(id) * 1_000_000;
    Span {
        trace_id,
        span_id: span_id(id),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 42_000_000,
        ..Default::default()
    }
}

/// One request through the guide's sentiment API.
fn request(trace: u32) -> Vec<Span> {
    let mut server = span(trace, 1, None, SpanKind::Server, "POST /analyze/sentiment");
    server.attributes = vec![
        s("http.request.method", "POST"),
        s("url.path", "/analyze/sentiment"),
        s("url.scheme", "https"),
        s("server.address", "api.aurastream.example"),
        s("client.address", "203.0.113.7"),
        s("user_agent.original", "aurastream-web/3.2"),
        i("http.response.status_code", 200),
        s("http.route", "/analyze/{kind}"),
        s("enduser.id", "user-42"),
        s("customer_tier", "premium"),
    ];
    let mut comprehend = span(
        trace,
        2,
        Some(1),
        SpanKind::Client,
        "Comprehend.DetectSentiment",
    );
    comprehend.attributes = vec![
        s("rpc.system", "aws-api"),
        s("rpc.service", "Comprehend"),
        s("rpc.method", "DetectSentiment"),
        s("cloud.region", "us-east-1"),
        s("aws.request_id", "6a2c6c63-7c1b-4f7e-9f57-2f4e1b4c1a11"),
        i("http.response.status_code", 200),
    ];
    let mut dynamo = span(trace, 3, Some(1), SpanKind::Client, "DynamoDB.GetItem");
    dynamo.attributes = vec![
        s("rpc.system", "aws-api"),
        s("rpc.service", "DynamoDB"),
        s("rpc.method", "GetItem"),
        s("cloud.region", "us-east-1"),
        s("aws.dynamodb.table_names", "AuraStream-SentimentCache"),
        i("http.response.status_code", 400),
    ];
    let mut cache = span(trace, 4, Some(1), SpanKind::Internal, "cache_operation");
    cache.attributes = vec![s("cache_key", "sha256:3f2a")];
    cache.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "Rate exceeded".into(),
    });
    cache.events = vec![Event {
        name: "exception".into(),
        attributes: vec![
            s(
                "exception.type",
                "botocore.errorfactory.ProvisionedThroughputExceededException",
            ),
            s("exception.message", "Rate exceeded"),
            s("exception.stacktrace", PYTHON_STACK),
        ],
        ..Default::default()
    }];
    vec![server, comprehend, dynamo, cache]
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            s("service.name", "aurastream-api"),
            s("service.version", "2.4.1"),
            s("telemetry.sdk.language", "python"),
            s("cloud.provider", "aws"),
            s("cloud.platform", "aws_ecs"),
            s("aws.ecs.launch_type", "fargate"),
        ],
        ..Default::default()
    }
}

fn exporter() -> XrayExporter {
    let config = XrayExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(PathBuf::from("/dev/null")),
        ..Default::default()
    };
    XrayExporter::new("awsxray", &config, &SelfMetrics::new())
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let exporter = exporter();
    let mut group = c.benchmark_group("xray");

    let spans: Vec<Span> = (0..TRACES as u32).flat_map(request).collect();
    let count = spans.len() as u64;
    let batch = SignalData::Traces(vec![ResourceSpans {
        resource: Some(resource()),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }]);
    group.throughput(Throughput::Elements(count));
    group.bench_function("translate_spans", |b| {
        b.iter(|| runtime.block_on(exporter.export(&batch)).expect("exported"))
    });

    let received: Vec<ResourceSpans> = (0..TRACES)
        .map(|_| xray_udp::decode(DATAGRAM.as_bytes()).expect("the SDK's datagram decodes"))
        .collect();
    let received = SignalData::Traces(received);
    group.throughput(Throughput::Elements(received.item_count() as u64));
    group.bench_function("forward_received", |b| {
        b.iter(|| {
            runtime
                .block_on(exporter.export(&received))
                .expect("exported")
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_datagram", |b| {
        b.iter(|| xray_udp::decode(std::hint::black_box(DATAGRAM.as_bytes())).expect("decoded"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
