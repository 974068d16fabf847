//! Fuzz-style property tests: whatever bytes arrive, the collector answers with an error or
//! carries on; it never panics.
//!
//! The coverage-guided fuzzing is in `fuzz/` (cargo-fuzz, `scripts/fuzz.sh`; its corpus is
//! replayed by `tests/tests/fuzz_corpus.rs`). These `proptest` cases cover what those targets do not:
//! the three AWS exporters' translation of whatever decodes (random bytes, and valid inputs
//! with bytes flipped, inserted or cut off, through the OTLP decoders into the exporters) and
//! the queue on disk opening damaged files, plus mutated YAML through the config parser.
//!
//! The normal test run tries `PROPTEST_CASES` cases per target (default 256 here); set it
//! higher for a longer run (`PROPTEST_CASES=100000 cargo test --release -p
//! aurastream-collector --test fuzz_inputs`). A failing input is written by proptest to
//! `fuzz_inputs.proptest-regressions` next to this file and replayed first on every later
//! run: keep that file in the repository.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use prost::Message;

use aurastream_collector::component::Exporter;
use aurastream_collector::component::delivery::Fsync;
use aurastream_collector::config::{ConfigSource, load_sources};
use aurastream_collector::exporter::cloudwatch_logs::CloudWatchLogsExporter;
use aurastream_collector::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig;
use aurastream_collector::exporter::emf::EmfExporter;
use aurastream_collector::exporter::emf::config::EmfExporterConfig;
use aurastream_collector::exporter::xray::XrayExporter;
use aurastream_collector::exporter::xray::config::{OutputDestination, XrayExporterConfig};
use aurastream_collector::output::OutputDestination as LinesOut;
use aurastream_collector::receiver::otlp::decode;
use aurastream_collector::receiver::otlp::signal::{Logs, Metrics, OtlpSignal, Traces};
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_collector::topology::persistent_queue::wal::{Next, Wal, WalOptions};
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::metrics::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    metric::Data, number_data_point,
};
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::Event};
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            attr("service.name", Value::StringValue("fuzz".into())),
            attr("aws.log.group.names", Value::StringValue("/a".into())),
        ],
        ..Default::default()
    })
}

/// Valid requests of every signal, rich enough that mutations hit many field types.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let span = Span {
        trace_id: vec![0x5f; 16],
        span_id: vec![7; 8],
        parent_span_id: vec![3; 8],
        name: "GET /orders/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes: vec![
            attr("http.request.method", Value::StringValue("GET".into())),
            attr("http.response.status_code", Value::IntValue(503)),
            attr("aws.operation", Value::StringValue("PutItem".into())),
            attr("ratio", Value::DoubleValue(f64::NAN)),
        ],
        events: vec![Event {
            name: "exception".into(),
            attributes: vec![attr(
                "exception.stacktrace",
                Value::StringValue("at a.b(c.rs:1)\nat d".into()),
            )],
            ..Default::default()
        }],
        ..Default::default()
    };
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "latency".into(),
                        unit: "ms".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![attr("Endpoint", Value::StringValue("/".into()))],
                                time_unix_nano: 1_700_000_000_000_000_000,
                                value: Some(number_data_point::Value::AsDouble(1.5)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "size".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                count: 3,
                                sum: Some(6.0),
                                bucket_counts: vec![1, 2, 0],
                                explicit_bounds: vec![1.0, 5.0],
                                time_unix_nano: 1_700_000_000_000_000_000,
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(r#"{"msg":"x","n":1}"#.into())),
                    }),
                    attributes: vec![attr("log.category", Value::StringValue("audit".into()))],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    vec![
        ("traces", traces.encode_to_vec()),
        ("metrics", metrics.encode_to_vec()),
        ("logs", logs.encode_to_vec()),
    ]
}

/// A seed with random bytes overwritten, inserted and the tail cut off.
fn mutated(seed: &[u8]) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seed = seed.to_vec();
    let len = seed.len().max(1);
    (
        prop::collection::vec((0..len, any::<u8>()), 0..8),
        prop::collection::vec((0..len, any::<u8>()), 0..4),
        0..=len,
    )
        .prop_map(move |(flips, inserts, keep)| {
            let mut out = seed.clone();
            for (at, b) in flips {
                if let Some(x) = out.get_mut(at) {
                    *x = b;
                }
            }
            for (at, b) in inserts {
                out.insert(at.min(out.len()), b);
            }
            out.truncate(keep.max(1));
            out
        })
}

struct Exporters {
    xray: XrayExporter,
    emf: EmfExporter,
    logs: CloudWatchLogsExporter,
    _dir: tempfile::TempDir,
}

fn exporters() -> Exporters {
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = Arc::new(SelfMetrics::new());
    let xray = XrayExporter::new(
        "awsxray",
        &XrayExporterConfig {
            output_destination: OutputDestination::File,
            path: Some(dir.path().join("xray.jsonl")),
            index_all_attributes: true,
            ..Default::default()
        },
        &metrics,
    );
    let emf = EmfExporter::new(
        "awsemf",
        &EmfExporterConfig {
            output_destination: LinesOut::File,
            path: Some(dir.path().join("emf.jsonl")),
            ..Default::default()
        },
        &metrics,
    )
    .expect("EMF exporter");
    let logs = CloudWatchLogsExporter::new(
        "awscloudwatchlogs",
        &CloudWatchLogsExporterConfig {
            output_destination: LinesOut::File,
            path: Some(dir.path().join("logs.jsonl")),
            ..Default::default()
        },
        &metrics,
    );
    Exporters {
        xray,
        emf,
        logs,
        _dir: dir,
    }
}

/// Decodes `body` as the signal, validates it like the receiver, exports what is left
/// through the matching AWS exporter (to a file) and returns whether it decoded.
fn ingest<S: OtlpSignal>(
    body: &[u8],
    json: bool,
    exporter: &dyn Exporter,
    rt: &tokio::runtime::Runtime,
) -> bool {
    let decoded = if json {
        decode::json::<S::Request>(body, "request")
    } else {
        decode::protobuf::<S::Request>(body, "request")
    };
    let Ok(request) = decoded else {
        return false;
    };
    let (data, _rejected) = S::accept(request);
    let mut rest = data.clone();
    let _ = rest.split_front(data.item_count() / 2);
    let _ = rt.block_on(exporter.export(&data));
    true
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn to_json(signal: &str, body: &[u8]) -> Vec<u8> {
    match signal {
        "traces" => serde_json::to_vec(&ExportTraceServiceRequest::decode(body).expect("seed")),
        "metrics" => serde_json::to_vec(&ExportMetricsServiceRequest::decode(body).expect("seed")),
        _ => serde_json::to_vec(&ExportLogsServiceRequest::decode(body).expect("seed")),
    }
    .expect("seed as JSON")
}

fn run(signal: &str, body: &[u8], json: bool, e: &Exporters, rt: &tokio::runtime::Runtime) -> bool {
    match signal {
        "traces" => ingest::<Traces>(body, json, &e.xray, rt),
        "metrics" => ingest::<Metrics>(body, json, &e.emf, rt),
        _ => ingest::<Logs>(body, json, &e.logs, rt),
    }
}

#[test]
fn seeds_decode_and_export() {
    let (e, rt) = (exporters(), runtime());
    for (signal, body) in seeds() {
        assert!(run(signal, &body, false, &e, &rt), "{signal} protobuf seed");
        assert!(
            run(signal, &to_json(signal, &body), true, &e, &rt),
            "{signal} JSON seed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Integration tests have no lib.rs for proptest's default lookup: name the file.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(cases())
    })]

    #[test]
    fn random_bytes_never_panic_the_decoders(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let (e, rt) = (exporters(), runtime());
        for signal in ["traces", "metrics", "logs"] {
            run(signal, &body, false, &e, &rt);
            run(signal, &body, true, &e, &rt);
        }
        let _ = decode::decompress(body.clone().into(), Some("gzip"), 1 << 20);
    }

    #[test]
    fn mutated_protobuf_never_panics(
        which in 0usize..3,
        body in prop::sample::select(seeds()).prop_flat_map(|(_, s)| mutated(&s)),
    ) {
        let (e, rt) = (exporters(), runtime());
        // Every mutation of one seed is also tried as each other signal.
        let signal = ["traces", "metrics", "logs"][which];
        run(signal, &body, false, &e, &rt);
    }

    #[test]
    fn mutated_json_never_panics(
        (signal, body) in prop::sample::select(seeds())
            .prop_flat_map(|(signal, s)| (Just(signal), mutated(&to_json(signal, &s)))),
    ) {
        let (e, rt) = (exporters(), runtime());
        run(signal, &body, true, &e, &rt);
    }

    #[test]
    fn mutated_config_never_panics(text in mutated(CONFIG.as_bytes())) {
        let text = String::from_utf8_lossy(&text).into_owned();
        let _ = load_sources(
            &[ConfigSource { name: "fuzz.yaml".into(), text }],
            |name| (name == "REGION").then(|| "us-east-1".to_string()),
        );
    }

    #[test]
    fn damaged_queue_files_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        ack in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("00000000000000000000.wal"), &data).expect("segment");
        std::fs::write(dir.path().join("ack"), &ack).expect("cursor");
        let options = WalOptions { fsync: Fsync::Never, segment_bytes: 1 << 16 };
        let (mut wal, _) = Wal::open(dir.path(), options).expect("opens whatever it finds");
        while let Some(next) = wal.next_record().expect("reads") {
            let seq = match next {
                Next::Record { seq, .. } | Next::Damaged { seq, .. } => seq,
            };
            wal.ack(seq).expect("acks");
        }
        wal.append(b"after", 1).expect("appends");
    }
}

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:4317 }
      http: { endpoint: 127.0.0.1:4318 }
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
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [awsxray] }
    metrics: { receivers: [otlp], exporters: [awsemf], memory_limit: { soft_limit_mib: 64, hard_limit_mib: 96 } }
    logs: { receivers: [otlp], exporters: [awscloudwatchlogs], queue_size: 1000 }
"#;
