//! The fuzz corpus as a regression test: every file of `fuzz/corpus/<target>/` goes through
//! the same entry point as the cargo-fuzz target of that name
//! (`aurastream_e2e::fuzzing`), on stable Rust and without the fuzzer, so an input that
//! once reached new code keeps being run in every `cargo test --workspace`.
//!
//! The corpus was seeded by `seed_inputs_pass_the_harnesses` below (which writes them when
//! `FUZZ_SEED_DIR` is set), grown by the
//! fuzzer and minimized (`cargo fuzz cmin`, then `fuzz/minimize.py`; scripts/fuzz.sh).
//! Inputs that crashed the collector are kept by name in `fuzz/regressions/<target>/`,
//! replayed here too, and have explicit regression tests next to the code they broke.

use std::path::{Path, PathBuf};

use prost::Message;

use aurastream_collector::model::Signal;
use aurastream_e2e::fuzzing::{self, CONFIG_FILE_SEPARATOR, Compression, OtlpInput, otlp_protobuf};
use aurastream_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::metrics::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, Link},
};
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;

/// A fuzz target's harness.
type Harness = fn(&[u8]);

/// Each cargo-fuzz target and its harness.
const TARGETS: [(&str, Harness); 4] = [
    ("otlp_protobuf", fuzzing::otlp_protobuf),
    ("otlp_json", fuzzing::otlp_json),
    ("xray_udp", fuzzing::xray_udp),
    ("config", fuzzing::config),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.expect("corpus entry").path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_without_a_crash() {
    for (target, harness) in TARGETS {
        let corpus = files_in(&corpus_dir().join(target));
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
        let regressions = files_in(&corpus_dir().join("../regressions").join(target));
        let files = [corpus, regressions].concat();
        for file in &files {
            let data = std::fs::read(file).expect("corpus file");
            // A panic names the file: `cargo fuzz run <target> <file>` reproduces it.
            eprintln!("{target}: {}", file.display());
            harness(&data);
        }
        println!("{target}: {} corpus files replayed", files.len());
    }
}

/// The seeds' selector bytes and bodies round-trip (a mistake here would make every seed
/// test something other than what it says).
#[test]
fn otlp_selector_byte_round_trips() {
    for b in 0..=u8::MAX {
        let input = OtlpInput::from_byte(b);
        assert_eq!(OtlpInput::from_byte(input.to_byte()), input);
    }
    otlp_protobuf(&[]);
}

/// The seed inputs: valid requests of every signal and metric type, in protobuf and
/// OTLP/JSON, plain and gzipped; a gzip bomb; X-Ray daemon datagrams as the SDKs send them;
/// the built-in and deploy configs. Each goes through its target's harness in every run; with
/// `FUZZ_SEED_DIR` set they are also written to `$FUZZ_SEED_DIR/<target>/seed-*`, which is
/// how the corpus is re-seeded:
/// `FUZZ_SEED_DIR=$PWD/fuzz/corpus cargo test -p aurastream-e2e --test fuzz_corpus seed`
#[test]
fn seed_inputs_pass_the_harnesses() {
    let out = std::env::var_os("FUZZ_SEED_DIR").map(PathBuf::from);
    let mut seeded: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut write = |target: &'static str, name: &str, data: &[u8]| {
        let (_, harness) = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .expect("a known target");
        eprintln!("{target}: seed-{name}");
        harness(data);
        *seeded.entry(target).or_default() += 1;
        if let Some(root) = &out {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed");
        }
    };
    let bodies = [
        (Signal::Traces, traces().encode_to_vec(), json(&traces())),
        (Signal::Metrics, metrics().encode_to_vec(), json(&metrics())),
        (Signal::Logs, logs().encode_to_vec(), json(&logs())),
    ];
    for (signal, protobuf, json_body) in &bodies {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::GzipWrapped,
        ] {
            for (target, body) in [("otlp_protobuf", protobuf), ("otlp_json", json_body)] {
                let body = match compression {
                    Compression::Gzip => gzip(body),
                    _ => body.clone(),
                };
                let input = OtlpInput {
                    signal: *signal,
                    compression,
                    small_limit: false,
                };
                let name = format!("{signal}-{compression:?}").to_lowercase();
                write(target, &name, &input.with_body(&body));
            }
        }
    }
    for (signal, text) in [
        (Signal::Traces, TRACES_JSON),
        (Signal::Metrics, METRICS_JSON),
        (Signal::Logs, LOGS_JSON),
    ] {
        let input = OtlpInput {
            signal,
            compression: Compression::None,
            small_limit: false,
        };
        write(
            "otlp_json",
            &format!("{signal}-handwritten"),
            &input.with_body(text.as_bytes()),
        );
    }
    // A gzip bomb against the small limit: 64 KiB of zeros compress to ~100 bytes.
    let bomb = OtlpInput {
        signal: Signal::Logs,
        compression: Compression::Gzip,
        small_limit: true,
    };
    write(
        "otlp_protobuf",
        "gzip-bomb",
        &bomb.with_body(&gzip(&[0; 64 << 10])),
    );

    let header = "{\"format\":\"json\",\"version\":1}\n";
    for (name, doc) in XRAY_DOCUMENTS {
        write("xray_udp", name, format!("{header}{doc}").as_bytes());
    }
    write(
        "xray_udp",
        "spaced-header",
        format!(
            "{{\"format\": \"json\", \"version\": 1}}\r\n{}",
            XRAY_DOCUMENTS[0].1
        )
        .as_bytes(),
    );

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (name, path) in [
        ("default", "collector/src/config/default.yaml"),
        ("lambda-default", "collector/src/config/lambda-default.yaml"),
        ("sidecar", "deploy/config/sidecar.yaml"),
        ("local", "deploy/config/local.yaml"),
        ("lambda", "deploy/config/lambda.yaml"),
    ] {
        let text = std::fs::read(repo.join(path)).expect("config file");
        write("config", name, &text);
    }
    write(
        "config",
        "merged",
        format!("{CONFIG_BASE}{CONFIG_FILE_SEPARATOR}\n{CONFIG_OVERRIDE}").as_bytes(),
    );
    for (target, _) in TARGETS {
        assert!(
            seeded.get(target).is_some_and(|n| *n > 0),
            "no seeds for {target}"
        );
    }
}

fn json<T: serde::Serialize>(request: &T) -> Vec<u8> {
    serde_json::to_vec(request).expect("seed as JSON")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> Value {
    Value::StringValue(s.into())
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", string("checkout")),
            kv("cloud.region", string("eu-west-1")),
            kv("aws.log.group.names", string("/aws/ecs/checkout")),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "io.opentelemetry.http".into(),
        version: "1.2.0".into(),
        ..Default::default()
    })
}

const T0: u64 = 1_700_000_000_000_000_000;

fn traces() -> ExportTraceServiceRequest {
    let server = Span {
        trace_id: (1..=16).collect(),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        name: "GET /orders/{id}".into(),
        kind: 2,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 25_000_000,
        attributes: vec![
            kv("http.request.method", string("GET")),
            kv("http.response.status_code", Value::IntValue(500)),
            kv("ratio", Value::DoubleValue(0.25)),
            kv("retry", Value::BoolValue(true)),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(string("a")),
                    }],
                }),
            ),
        ],
        events: vec![Event {
            time_unix_nano: T0 + 1,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", string("IOError")),
                kv("exception.stacktrace", string("at a.b(c.rs:1)\nat d")),
            ],
            ..Default::default()
        }],
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    };
    let client = Span {
        span_id: vec![9; 8],
        parent_span_id: server.span_id.clone(),
        name: "DynamoDB.GetItem".into(),
        kind: 3,
        attributes: vec![
            kv("rpc.system", string("aws-api")),
            kv("aws.dynamodb.table_names", string("orders")),
        ],
        links: vec![Link {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        }],
        events: Vec::new(),
        status: None,
        ..server.clone()
    };
    let invalid = Span {
        trace_id: vec![0; 16],
        ..client.clone()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![server, client, invalid],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            ..Default::default()
        }],
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    let number = |value| NumberDataPoint {
        attributes: vec![kv("Endpoint", string("/orders"))],
        start_time_unix_nano: T0,
        time_unix_nano: T0 + 60_000_000_000,
        value,
        ..Default::default()
    };
    let metric = |name: &str, unit: &str, data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(
                        "queue.depth",
                        "{item}",
                        Data::Gauge(Gauge {
                            data_points: vec![
                                number(Some(number_data_point::Value::AsInt(7))),
                                number(None),
                            ],
                        }),
                    ),
                    metric(
                        "requests",
                        "1",
                        Data::Sum(Sum {
                            data_points: vec![number(Some(number_data_point::Value::AsDouble(
                                12.5,
                            )))],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "latency",
                        "ms",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                count: 6,
                                sum: Some(42.0),
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![5.0, 10.0],
                                min: Some(1.0),
                                max: Some(20.0),
                                time_unix_nano: T0,
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "payload",
                        "By",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                count: 4,
                                sum: Some(100.0),
                                scale: 2,
                                zero_count: 1,
                                positive: Some(Buckets {
                                    offset: -2,
                                    bucket_counts: vec![1, 2],
                                }),
                                negative: Some(Buckets {
                                    offset: 1,
                                    bucket_counts: vec![0],
                                }),
                                time_unix_nano: T0,
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "gc.pause",
                        "s",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                count: 3,
                                sum: 0.3,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.99,
                                    value: 0.2,
                                }],
                                time_unix_nano: T0,
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "",
                        "1",
                        Data::Gauge(Gauge {
                            data_points: vec![number(Some(number_data_point::Value::AsInt(1)))],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs() -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: T0,
        observed_time_unix_nano: T0 + 5,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(string(r#"{"msg":"payment failed","n":1}"#)),
        }),
        attributes: vec![kv("log.category", string("audit"))],
        trace_id: vec![0x11; 16],
        span_id: vec![0x22; 8],
        flags: 1,
        ..Default::default()
    };
    let structured = LogRecord {
        body: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("user", string("u-1")),
                    kv("bytes", Value::BytesValue(vec![0, 1, 2])),
                ],
            })),
        }),
        trace_id: Vec::new(),
        span_id: Vec::new(),
        ..record.clone()
    };
    let bad_ids = LogRecord {
        trace_id: vec![1; 3],
        ..record.clone()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: vec![record, structured, bad_ids],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP/JSON as the specification writes it (int64 as strings, hex ids, enum numbers).
const TRACES_JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scopeSpans":[{"scope":{"name":"manual"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"I'm a server span","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"my.span.attr","value":{"intValue":"42"}}],"status":{"code":1}}]}]}]}"#;

const METRICS_JSON: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scopeMetrics":[{"metrics":[{"name":"my.counter","unit":"1","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"asDouble":5,"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},{"name":"my.gauge","gauge":{"dataPoints":[{"asInt":"10","timeUnixNano":"1544712660300000000"}]}},{"name":"my.histogram","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"2","sum":2,"bucketCounts":["1","1"],"explicitBounds":[1],"min":0,"max":2,"timeUnixNano":"1544712660300000000"}]}}]}]}]}"#;

const LOGS_JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0"},"logRecords":[{"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660300000000","severityNumber":10,"severityText":"Information","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","body":{"stringValue":"Example log record"},"attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}},{"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"doubleValue":3.5}]}}},{"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"some.map.key","value":{"boolValue":true}}]}}}]}]}]}]}"#;

/// Documents as the X-Ray SDKs send them (one per datagram, after the header line).
const XRAY_DOCUMENTS: [(&str, &str); 5] = [
    (
        "segment-tree",
        r#"{"id":"94914ce601f2fe34","name":"orders-api","start_time":1795775725.5036223,"end_time":1795775725.5040102,"trace_id":"1-6b095ced-d0636880d34858533bca10fd","origin":"AWS::ECS::Container","user":"user-42","http":{"request":{"method":"POST","url":"https://api.example.com/orders","client_ip":"10.0.0.1","user_agent":"curl/8"},"response":{"status":200,"content_length":12}},"annotations":{"tier":"premium","n":3,"ok":true,"r":0.5},"metadata":{"default":{"k":[1,2]}},"service":{"version":"1.4.2"},"aws":{"xray":{"sdk":"X-Ray for Python","sdk_version":"2.15.0"},"ecs":{"container_arn":"arn:aws:ecs:eu-west-1:1:container/x"}},"subsegments":[{"id":"9d654ad591b6912a","name":"DynamoDB","namespace":"aws","start_time":1795775725.5037236,"end_time":1795775725.5037525,"error":true,"throttle":true,"aws":{"operation":"GetItem","region":"eu-west-1","table_name":"orders","table_names":["a","b"],"request_id":"R1","account_id":"123456789012"},"http":{"response":{"status":400}},"subsegments":[{"id":"a55557168a87244a","name":"marshal","start_time":1795775725.50373,"end_time":1795775725.50374}]},{"id":"b55557168a87244b","name":"db","namespace":"remote","start_time":1795775725.5038,"end_time":1795775725.5039,"fault":true,"sql":{"sanitized_query":"SELECT 1","database_type":"PostgreSQL","user":"app"},"cause":{"working_directory":"/app","exceptions":[{"id":"e6d03aeb310a01bc","message":"timeout","type":"TimeoutError","remote":true,"stack":[{"path":"app.py","line":46,"label":"query"},{"path":"app.py","line":32}]}]}}]}"#,
    ),
    (
        "in-progress",
        r#"{"id":"70de5b6f19ff9a0a","name":"api","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1700000000,"in_progress":true,"error":true,"http":{"response":{"status":404}}}"#,
    ),
    (
        "independent-subsegment",
        r#"{"type":"subsegment","id":"70de5b6f19ff9a0b","parent_id":"70de5b6f19ff9a0a","name":"payments","namespace":"remote","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5e9,"end_time":1500000000.25,"cause":"70de5b6f19ff9a0c"}"#,
    ),
    (
        "lambda-origin",
        r#"{"id":"70de5b6f19ff9a0d","name":"fn","trace_id":"1-581cf771-a006649127e371903a2de979","parent_id":"70de5b6f19ff9a0e","origin":"AWS::Lambda::Function","start_time":1700000000.123456789,"end_time":1700000000.2,"aws":{"ec2":{"instance_id":"i-1","availability_zone":"eu-west-1a"},"eks":{"cluster_name":"c","pod":"p"}}}"#,
    ),
    (
        "invalid-trace-id",
        r#"{"id":"70de5b6f19ff9a0a","name":"api","trace_id":"1-581cf771-zz","start_time":1.0,"end_time":2.0}"#,
    ),
];

const CONFIG_BASE: &str = r#"receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:${env:PORT}", max_recv_msg_size_mib: 8 }
      http: { endpoint: 127.0.0.1:4318, max_request_body_size: 1048576, cors: { allowed_origins: ["*"], max_age: 60 } }
  awsxray:
    endpoint: 127.0.0.1:2000
processors:
  batch: { send_batch_size: 512, timeout: 200ms }
exporters:
  awsxray: { region: "${env:REGION}", indexed_attributes: [a, b] }
  awsemf: { namespace: X/Y, log_group_name: "/m/{ServiceName}", max_dimension_sets_per_metric: 10 }
  awscloudwatchlogs:
    log_group_name: /l
    log_retention: 30
    sending_queue: { storage: /tmp/q, fsync: batch, max_bytes: 1048576, when_full: drop_oldest }
    retry_on_failure: { initial_interval: 1s, max_interval: 5s, max_elapsed_time: 1m }
  file/traces: { path: ./data/traces.jsonl, rotation: { max_megabytes: 10, max_backups: 3 } }
extensions:
  health_check: { endpoint: 127.0.0.1:13133 }
service:
  extensions: [health_check]
  pipelines:
    traces: { receivers: [otlp, awsxray], processors: [batch], exporters: [awsxray, file/traces] }
    metrics: { receivers: [otlp], exporters: [awsemf] }
    logs: { receivers: [otlp], exporters: [awscloudwatchlogs], queue_size: 1000 }
  memory_limiter: { limit_mib: 96, spike_limit_mib: 32, check_interval: 1s }
"#;

const CONFIG_OVERRIDE: &str = r#"exporters:
  awsxray: { region: "${env:EMPTY}eu-west-1" }
service:
  pipelines:
    logs: { receivers: [otlp], exporters: [awscloudwatchlogs], queue_size: 10 }
"#;
