//! The cost of the `redaction` processor with the rules the shipped configs use
//! (`deploy/config/sidecar.yaml`, HMAC-SHA-256), against the rest of the OTLP → file path
//! for the same request of 100 realistic spans or log records (the load generator's model,
//! which carries `client.address`, `user_agent.original` and the guide's JSON log bodies).
//! Run: `cargo bench -p aurastream-collector --bench redaction`.

use std::hint::black_box;

use aurastream_collector::model::SignalData;
use aurastream_collector::output::otlp_json::to_otlp_json;
use aurastream_collector::processor::redaction::Rules;
use aurastream_collector::processor::redaction::config::RedactionConfig;
use aurastream_collector::receiver::otlp::decode;
use aurastream_collector::receiver::otlp::signal::{Logs, OtlpSignal, Traces};
use aurastream_loadgen::generate::{self, SeedableRng, SmallRng};
use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

const ITEMS: usize = 100;

/// The sidecar's `processors.redaction`, with the key from a file instead of the
/// environment.
fn shipped_rules(key_file: &std::path::Path) -> Rules {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config/sidecar.yaml");
    let text = std::fs::read_to_string(path).expect("sidecar.yaml");
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let mut options = config["processors"]["redaction"].clone();
    let map = options.as_mapping_mut().expect("redaction options");
    map.remove("hmac_key_env");
    map.insert(
        "hmac_key_file".into(),
        key_file.to_string_lossy().into_owned().into(),
    );
    let options: RedactionConfig = serde_yaml_ng::from_value(options).expect("options");
    Rules::compile(&options).expect("shipped rules compile")
}

fn bench(c: &mut Criterion) {
    let key = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key.path(), "bench-redaction-key-0123456789").expect("write key");
    let shipped = shipped_rules(key.path());
    let nothing_blocked = Rules::compile(&RedactionConfig {
        allow_all_keys: true,
        ..Default::default()
    })
    .expect("rules");

    let mut rng = SmallRng::seed_from_u64(7);
    let traces = generate::traces(&mut rng, ITEMS);
    let logs = generate::logs(&mut rng, ITEMS);
    let traces_proto = traces.encode_to_vec();
    let logs_proto = logs.encode_to_vec();
    let (trace_data, _) = Traces::accept(traces);
    let (log_data, _) = Logs::accept(logs);

    for (name, proto, data) in [
        ("traces_100", &traces_proto, &trace_data),
        ("logs_100", &logs_proto, &log_data),
    ] {
        let mut g = c.benchmark_group(format!("redaction_{name}"));
        g.throughput(Throughput::Elements(ITEMS as u64));
        g.bench_function("shipped_rules", |b| {
            b.iter_batched(
                || data.clone(),
                |mut d: SignalData| {
                    shipped.redact(&mut d);
                    d
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("allow_all_nothing_blocked", |b| {
            b.iter_batched(
                || data.clone(),
                |mut d: SignalData| {
                    nothing_blocked.redact(&mut d);
                    d
                },
                BatchSize::SmallInput,
            )
        });
        // The rest of the OTLP → file path for the same request: decode and write.
        g.bench_function("decode_and_file_serialize", |b| {
            b.iter(|| {
                let data = if name.starts_with("traces") {
                    let r = decode::protobuf::<ExportTraceServiceRequest>(black_box(proto), "r")
                        .expect("decode");
                    Traces::accept(r).0
                } else {
                    let r = decode::protobuf::<ExportLogsServiceRequest>(black_box(proto), "r")
                        .expect("decode");
                    Logs::accept(r).0
                };
                to_otlp_json(&data)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
