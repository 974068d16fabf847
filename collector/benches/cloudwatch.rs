//! The CloudWatch exporters' own work per core, with the load generator's traffic model:
//! OTLP metrics to EMF documents (every metric type), log records to CloudWatch log events,
//! and log events cut into PutLogEvents batches. Output goes to /dev/null, so the figures
//! are translation and batching, not the network.
//!
//! Run: `cargo bench -p aurastream-collector --bench cloudwatch`

use std::hint::black_box;
use std::sync::Arc;

use aurastream_collector::aws::cloudwatch_logs::request_builder::{LogEvent, build_batches};
use aurastream_collector::component::Exporter;
use aurastream_collector::exporter::cloudwatch_logs::CloudWatchLogsExporter;
use aurastream_collector::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig;
use aurastream_collector::exporter::emf::EmfExporter;
use aurastream_collector::exporter::emf::config::EmfExporterConfig;
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_loadgen::generate::{self, SeedableRng, SmallRng};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const POINTS: usize = 500;
const RECORDS: usize = 1_000;
const EVENTS: usize = 10_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Arc::new(SelfMetrics::new());
    let mut rng = SmallRng::seed_from_u64(11);

    let emf_config: EmfExporterConfig = serde_yaml_ng::from_str(
        "{namespace: Bench, output_destination: file, path: /dev/null, initial_value: keep}",
    )
    .expect("emf config");
    let emf = EmfExporter::new("awsemf", &emf_config, &metrics).expect("emf exporter");
    let metric_batch = SignalData::Metrics(generate::metrics(&mut rng, POINTS).resource_metrics);

    let logs_config: CloudWatchLogsExporterConfig = serde_yaml_ng::from_str(
        "{log_group_name: /bench, log_stream_name: s, output_destination: file, path: /dev/null}",
    )
    .expect("logs config");
    let logs = CloudWatchLogsExporter::new("awscloudwatchlogs", &logs_config, &metrics);
    let log_batch = SignalData::Logs(generate::logs(&mut rng, RECORDS).resource_logs);

    let events: Vec<LogEvent> = (0..EVENTS)
        .map(|i| LogEvent {
            timestamp_ms: 1_795_773_543_000 + (i as i64 * 7919) % 60_000,
            message: format!(
                r#"{{"event_type":"api_response","request_id":"req-{i:08}","status_code":200,"response_time":{},"cache_hit":true}}"#,
                i % 2000
            ),
            origin: i,
        })
        .collect();

    let mut g = c.benchmark_group("cloudwatch");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.bench_function("emf_500_points_every_type", |b| {
        b.iter(|| rt.block_on(emf.export(black_box(&metric_batch))))
    });
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("logs_1000_records_to_events", |b| {
        b.iter(|| rt.block_on(logs.export(black_box(&log_batch))))
    });
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("put_log_events_batches_10000_events", |b| {
        b.iter_batched(
            || events.clone(),
            |e| build_batches(black_box(e)),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
