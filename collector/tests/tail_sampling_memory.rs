//! Memory the tail-sampling buffer holds, measured by a counting global allocator (exact
//! live heap bytes of this test process, not an RSS estimate).
//!
//! Issue 14's amplification: one OTLP request with a 0.5 MiB resource attribute and 2,000
//! spans on distinct traces took the collector from 12 MB to 1.0 GB, because the buffer
//! copied the request's resource once per trace (this test measured 1,004 MB held before
//! the buffer shared one resource per request). The buffer's own account
//! (`held_bytes`, what a memory budget reads) is checked against the allocator's count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use aurastream_collector::model::{Batch, ItemBudget, SignalData};
use aurastream_collector::processor::xray_sampling::rules::RuleSet;
use aurastream_collector::processor::xray_sampling::sampler::{RuleCounters, Sampler};
use aurastream_collector::processor::xray_sampling::tail::{
    Released, TailBuffer, TailCounters, TailLimits,
};
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

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

const ATTRIBUTE: usize = 512 * 1024;
const TRACES: u64 = 2_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// One request: the resource with the large attribute, one root span per trace.
fn request() -> ResourceSpans {
    let spans = (0..TRACES)
        .map(|n| {
            let mut trace_id = vec![0x5f; 16];
            trace_id[8..].copy_from_slice(&n.to_be_bytes());
            Span {
                trace_id,
                span_id: n.to_be_bytes().to_vec(),
                name: "GET /".into(),
                ..Span::default()
            }
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", "aurastream-api"),
                kv("aurastream.blob", &"r".repeat(ATTRIBUTE)),
            ],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

fn live() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

#[test]
fn a_large_resource_on_thousands_of_traces_is_held_once() {
    let limits = TailLimits {
        decision_wait: Duration::from_secs(5),
        max_wait: Duration::from_secs(30),
        num_traces: 50_000,
        decision_cache_size: 100_000,
        honor_upstream_sampled: false,
        max_spans_per_trace: 10_000,
        max_bytes_per_trace: 8 * 1024 * 1024,
    };
    let sampler = Sampler::new(RuleSet::builtin(), &|_| RuleCounters::default());
    let mut buffer = TailBuffer::new(limits, sampler, TailCounters::default(), Instant::now());
    let budget = ItemBudget::new(100_000, Gauge::default(), Gauge::default());
    let mut out = Released::default();

    let before = live();
    let data = SignalData::Traces(vec![request()]);
    let ticket = budget.try_admit(data.item_count()).expect("room");
    assert!(
        buffer
            .ingest(Batch { data, ticket }, Instant::now(), &mut out)
            .is_ok()
    );
    let held = live() - before;
    assert!(
        held < ATTRIBUTE + TRACES as usize * 1_024,
        "{} MB held for a 0.6 MiB request",
        held / (1024 * 1024)
    );
    let accounted = buffer.held_bytes();
    assert!(
        accounted * 10 >= held * 8 && accounted * 10 <= held * 12,
        "the buffer accounts {accounted} bytes; the allocator counts {held}"
    );

    // Decided and released: what is left is the remembered decisions, in both counts.
    let mut out = Released::default();
    buffer.expire(Instant::now() + Duration::from_secs(5), &mut out);
    let batch = out.into_batch().expect("some traces are kept");
    let kept = batch.item_count();
    drop(batch);
    let left = live() - before;
    assert!(
        kept > 0 && left < TRACES as usize * 256,
        "{left} bytes left after the decisions"
    );
    let accounted_left = buffer.held_bytes();
    println!(
        "held while waiting: {held} bytes (buffer's account {accounted}); \
         after the decisions: {left} (account {accounted_left})"
    );
    let accounted = accounted_left;
    assert!(
        accounted * 10 >= left * 7 && accounted * 10 <= left * 13,
        "the buffer accounts {accounted} bytes; the allocator counts {left}"
    );
}
