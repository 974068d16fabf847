//! The receive path per request of 100 realistic spans (the load generator's model): body
//! decompression, protobuf and OTLP/JSON decoding, validation, the memory budget's
//! accounting (the bound walked from the wire, the decoded size a batch is charged), and
//! the file exporter's serialization. Run: `cargo bench -p aurastream-collector --bench decode`.

use std::hint::black_box;
use std::io::Write;

use aurastream_collector::model::memory::{MemoryLimiter, MemoryLimits};
use aurastream_collector::model::{Signal, decoded_size};
use aurastream_collector::output::otlp_json::to_otlp_json;
use aurastream_collector::receiver::otlp::decode;
use aurastream_collector::receiver::otlp::signal::{OtlpSignal, Traces};
use aurastream_loadgen::generate::{self, SeedableRng, SmallRng};
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

const SPANS: usize = 100;

fn bench(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(7);
    let request = generate::traces(&mut rng, SPANS);
    let proto = bytes::Bytes::from(request.encode_to_vec());
    let json = serde_json::to_vec(&request).expect("json");
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&proto).expect("gzip");
        bytes::Bytes::from(e.finish().expect("gzip"))
    };
    let limit = 20 << 20;

    let mut g = c.benchmark_group("receive_100_spans");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("protobuf_decode", |b| {
        b.iter(|| decode::protobuf::<ExportTraceServiceRequest>(black_box(&proto), "req"))
    });
    g.bench_function("gzip_then_protobuf_decode", |b| {
        b.iter(|| {
            let body =
                decode::decompress(black_box(gz.clone()), Some("gzip"), limit).expect("gzip");
            decode::protobuf::<ExportTraceServiceRequest>(&body, "req")
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| decode::json::<ExportTraceServiceRequest>(black_box(&json), "req"))
    });
    g.bench_function("validate", |b| {
        b.iter_batched(
            || request.clone(),
            |r| Traces::accept(black_box(r)),
            criterion::BatchSize::SmallInput,
        )
    });
    let (data, _) = Traces::accept(request.clone());
    g.bench_function("memory_budget_scan_wire", |b| {
        b.iter(|| decoded_size::scan(Signal::Traces, black_box(&proto)))
    });
    g.bench_function("memory_budget_decoded_size", |b| {
        b.iter(|| decoded_size::held(black_box(&data)))
    });
    // What admission adds per request with the budget on: the bound from the wire length,
    // a reservation (atomic add and compare) and its release.
    let limiter = MemoryLimiter::new(
        MemoryLimits {
            soft: 3 << 30,
            hard: 4 << 30,
        },
        prometheus_client::metrics::gauge::Gauge::default(),
    );
    g.bench_function("memory_budget_reserve_release", |b| {
        b.iter(|| {
            let claim = limiter
                .try_reserve(decoded_size::bound(Signal::Traces, black_box(proto.len())))
                .expect("room");
            drop(black_box(claim));
        })
    });
    g.bench_function("file_exporter_serialize", |b| {
        b.iter(|| to_otlp_json(black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
