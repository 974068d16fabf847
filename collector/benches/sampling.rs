//! Throughput and memory of the `xray_sampling` processor's core, without the pipeline.
//!
//! * `sampler/decide`: rule matching and the keep/drop decision for one whole trace
//!   (the guide's seed rules, realistic request traces).
//! * `tail/ingest_and_decide`: the tail buffer end to end — spans grouped by trace as
//!   they arrive in 100-trace requests, then every trace decided and released.
//! * Memory per buffered span, printed once before the timed runs: a counting global
//!   allocator measures the bytes live while 20,000 traces wait in the buffer (the spans,
//!   their resources and scopes, and the buffer's indexes), divided by the spans held. The
//!   figure counts allocations, so it is exact and the same in any build profile
//!   (`cargo test --bench sampling` prints it too, without the timed runs).
//!
//! Run: `cargo bench -p aurastream-collector --bench sampling`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use aurastream_collector::model::Batch;
use aurastream_collector::model::ItemBudget;
use aurastream_collector::model::SignalData;
use aurastream_collector::processor::xray_sampling::rules::RuleSet;
use aurastream_collector::processor::xray_sampling::sampler::{RuleCounters, Sampler};
use aurastream_collector::processor::xray_sampling::tail::{
    Released, TailBuffer, TailCounters, TailLimits,
};
use aurastream_collector::processor::xray_sampling::trace_view::TraceView;
use aurastream_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

/// Counts live heap bytes so the memory figure is exact rather than an RSS estimate.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only
// observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// X-Ray-style trace id: 4 bytes of epoch seconds, then 12 mixed bytes.
fn trace_id(n: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&(1_700_000_000u32 + (n / 1000) as u32).to_be_bytes());
    id.extend_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    id.extend_from_slice(&(n as u32).to_be_bytes());
    id
}

/// One request trace as an instrumented service sends it: a SERVER root with HTTP
/// attributes and two children (a database call and an outgoing HTTP call).
fn trace(n: u64) -> ResourceSpans {
    let id = trace_id(n);
    let (path, status) = match n % 10 {
        0 => ("/analyze/text", 200),
        1 => ("/orders/42", 404),
        2 => ("/orders", 503),
        3 => ("/analyze/image", 500),
        _ => ("/orders", 200),
    };
    let span = |sid: u64, parent: u64, name: &str, kind: SpanKind, attrs: Vec<KeyValue>| Span {
        trace_id: id.clone(),
        span_id: sid.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000 + n,
        end_time_unix_nano: 1_700_000_000_050_000_000 + n,
        attributes: attrs,
        flags: 0x100,
        ..Span::default()
    };
    let base = n * 4 + 1;
    let root = span(
        base,
        0,
        "GET /orders",
        SpanKind::Server,
        vec![
            kv("http.request.method", s("GET")),
            kv("url.path", s(path)),
            kv("http.route", s(path)),
            kv("server.address", s("api.aurastream.example")),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(status),
            ),
            kv("user_agent.original", s("aurastream-sdk/1.0")),
        ],
    );
    let db = span(
        base + 1,
        base,
        "SELECT orders",
        SpanKind::Client,
        vec![
            kv("db.system", s("postgresql")),
            kv("db.operation.name", s("SELECT")),
            kv("server.address", s("db.internal")),
        ],
    );
    let http = span(
        base + 2,
        base,
        "POST",
        SpanKind::Client,
        vec![
            kv("http.request.method", s("POST")),
            kv("url.full", s("http://billing.internal/charge")),
            kv("http.response.status_code", any_value::Value::IntValue(200)),
        ],
    );
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", s("aurastream-api")),
                kv("cloud.provider", s("aws")),
                kv("cloud.region", s("eu-west-1")),
            ],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "aurastream-sdk".into(),
                ..InstrumentationScope::default()
            }),
            spans: vec![root, db, http],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

fn sampler() -> Sampler {
    Sampler::new(RuleSet::builtin(), &|_| RuleCounters::default())
}

fn buffer(decision_wait: Duration) -> TailBuffer {
    let limits = TailLimits {
        decision_wait,
        max_wait: decision_wait * 2,
        num_traces: 1_000_000,
        decision_cache_size: 100_000,
        honor_upstream_sampled: false,
        max_spans_per_trace: 10_000,
        max_bytes_per_trace: 8 * 1024 * 1024,
    };
    TailBuffer::new(limits, sampler(), TailCounters::default(), Instant::now())
}

/// Requests of 100 traces each, with their budget tickets.
fn requests(budget: &ItemBudget, traces: u64) -> Vec<Batch> {
    (0..traces / 100)
        .map(|r| {
            let data = SignalData::Traces((r * 100..(r + 1) * 100).map(trace).collect());
            let ticket = budget
                .try_admit(data.item_count())
                .expect("the bench budget holds every span");
            Batch { data, ticket }
        })
        .collect()
}

fn budget() -> ItemBudget {
    ItemBudget::new(10_000_000, Gauge::default(), Gauge::default())
}

fn memory_per_buffered_span() {
    const TRACES: u64 = 20_000;
    let budget = budget();
    let mut buf = buffer(Duration::from_secs(3600));
    let mut out = Released::default();
    let before = LIVE.load(Ordering::Relaxed);
    let batches = requests(&budget, TRACES);
    let after_decode = LIVE.load(Ordering::Relaxed);
    let now = Instant::now();
    for b in batches {
        if buf.ingest(b, now, &mut out).is_err() {
            eprintln!("unexpected non-trace batch");
        }
    }
    let after_ingest = LIVE.load(Ordering::Relaxed);
    let spans = (TRACES * 3) as f64;
    println!(
        "memory per buffered span: {:.0} bytes held by the buffer (the same spans as decoded \
         requests: {:.0}; the buffer's own account: {:.0}); {TRACES} traces, {} spans waiting",
        (after_ingest - before) as f64 / spans,
        (after_decode - before) as f64 / spans,
        buf.held_bytes() as f64 / spans,
        TRACES * 3
    );
    drop(buf);
    drop(out);
}

fn bench(c: &mut Criterion) {
    memory_per_buffered_span();

    let traces: Vec<(Vec<u8>, Vec<ResourceSpans>)> =
        (0..1000).map(|n| (trace_id(n), vec![trace(n)])).collect();
    let mut group = c.benchmark_group("sampler");
    group.throughput(Throughput::Elements(traces.len() as u64));
    group.bench_function("decide", |b| {
        let mut sampler = sampler();
        let mut second = 0u64;
        b.iter(|| {
            second += 1;
            let mut kept = 0usize;
            for (id, fragments) in &traces {
                let view = TraceView::new(fragments);
                kept += usize::from(sampler.decide(&view, id, second).keep);
            }
            kept
        })
    });
    group.finish();

    let budget = budget();
    let mut group = c.benchmark_group("tail");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("ingest_and_decide", |b| {
        b.iter_batched(
            || (buffer(Duration::from_secs(1)), requests(&budget, 10_000)),
            |(mut buf, batches)| {
                let mut out = Released::default();
                let now = Instant::now();
                for batch in batches {
                    if buf.ingest(batch, now, &mut out).is_err() {
                        eprintln!("unexpected non-trace batch");
                    }
                }
                buf.flush(now, &mut out);
                out.into_batch().map_or(0, |b| b.item_count())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
