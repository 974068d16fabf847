//! The tail buffer: spans wait here, grouped by trace, until their trace is decided.
//!
//! A trace is decided `decision_wait` after its root span arrived (OTLP only carries ended
//! spans, so arrival is the root's end as far as the collector can know; children that end
//! after the root still have that long to arrive), or `max_wait` after its first span
//! arrived if the root never comes. Until then its spans hold their share of the pipeline's
//! item budget: a full buffer makes receivers answer "retry later" rather than grow memory.
//!
//! `num_traces` bounds how many traces wait at once. When a new trace would exceed it, the
//! oldest waiting trace is decided at once with what has arrived so far (its spans are not
//! simply thrown away: the rules may well keep it, and a partial trace is better than
//! none); if the rules drop it, its spans are counted as dropped with reason `evicted`, and
//! every eviction is counted in `traces_evicted`.
//!
//! `max_spans_per_trace` and `max_bytes_per_trace` bound what one trace may hold while it
//! waits. A trace that reaches either is decided at once the same way (counted in
//! `traces_limited/spans` or `traces_limited/bytes`; its dropped spans with reason
//! `trace_limit`), and its later spans follow the decision like any late span: one huge or
//! root-less trace cannot sit on the pipeline's item budget until `max_wait` while every
//! sender is told to retry.
//!
//! Decisions are remembered for the last `decision_cache_size` traces (oldest forgotten
//! first), so spans arriving after their trace was decided follow it: forwarded at once or
//! dropped as `not_sampled`. A span of a forgotten trace starts a new trace and gets the
//! same `rate` draw (it is a function of the trace id), so it usually still agrees.
//!
//! # Memory
//!
//! A request's spans usually belong to many traces, but they share the request's resource
//! and scopes. Those are held once per request behind an [`Arc`] however many traces the
//! request feeds (a copy per trace let one request with a large resource attribute and
//! spans on thousands of traces ask for gigabytes). The waiting spans themselves are kept
//! protobuf-encoded, one buffer per trace and scope, and decoded when their trace is
//! decided: about a third of their decoded size, which is what lets the buffer hold many
//! traces. [`TailBuffer::held_bytes`] is what the buffer holds: the encoded spans, the
//! shared resources and scopes (each counted once), and an estimate of the bookkeeping
//! per trace and per remembered decision.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use aurastream_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use tokio::time::Instant;

use super::sampler::Sampler;
use super::trace_view::TraceView;
use crate::model::Batch;
use crate::model::SignalData;
use crate::model::Ticket;
use crate::model::held_bytes::{Charge, btree_bytes, hash_table_bytes};

/// Attribute naming the rule that kept a trace, set on its root span.
pub const RULE_ATTRIBUTE: &str = "aws.xray.sampling_rule";

/// W3C `sampled` flag: the low byte of OTLP's span `flags` holds the W3C trace flags.
const W3C_SAMPLED: u32 = 0x01;

/// Timing and size limits of the buffer.
#[derive(Debug, Clone)]
pub struct TailLimits {
    pub decision_wait: Duration,
    pub max_wait: Duration,
    pub num_traces: usize,
    pub decision_cache_size: usize,
    pub honor_upstream_sampled: bool,
    /// A trace holding this many spans is decided at once.
    pub max_spans_per_trace: usize,
    /// A trace holding this many (encoded) bytes is decided at once.
    pub max_bytes_per_trace: usize,
}

/// Where the buffer reports what it did, beyond the per-rule counters.
#[derive(Debug, Clone, Default)]
pub struct TailCounters {
    /// Spans dropped because their trace was not sampled.
    pub not_sampled: Counter,
    /// Spans of traces decided early because of `num_traces`, and dropped.
    pub evicted: Counter,
    /// Traces decided early because of `num_traces`.
    pub traces_evicted: Counter,
    /// Spans of traces decided early because of a per-trace limit, and dropped.
    pub trace_limit: Counter,
    /// Traces decided early because they reached `max_spans_per_trace`.
    pub traces_limited_spans: Counter,
    /// Traces decided early because they reached `max_bytes_per_trace`.
    pub traces_limited_bytes: Counter,
    /// Spans that could not be read back from the buffer (dropped).
    pub unreadable: Counter,
    /// Traces kept because the upstream service had sampled them.
    pub upstream_sampled: Counter,
    /// Traces no rule matched (dropped).
    pub no_matching_rule: Counter,
    /// Bytes the buffer holds; the buffer keeps its own account in it.
    pub held_bytes: Gauge,
}

type TraceId = Vec<u8>;

/// A request's resource, shared by every trace its spans belong to.
struct SharedResource {
    resource: Option<Resource>,
    schema_url: String,
    _charge: Charge,
}

/// One scope of a request with its resource: what a span needs besides itself to become a
/// `ResourceSpans` again.
struct Origin {
    resource: Arc<SharedResource>,
    scope: Option<InstrumentationScope>,
    schema_url: String,
    _charge: Charge,
}

impl Origin {
    fn resource(&self) -> Option<&Resource> {
        self.resource.resource.as_ref()
    }
}

/// Spans of one trace from one origin, decoded.
struct Part {
    origin: Arc<Origin>,
    spans: Vec<Span>,
}

/// Spans of one trace from one origin, stored: length-delimited protobuf `Span`s.
struct Stored {
    origin: Arc<Origin>,
    encoded: Vec<u8>,
    spans: usize,
}

struct Pending {
    seq: u64,
    first_seen: Instant,
    /// `decision_wait` after the root span arrived; `None` until it has.
    root_due: Option<Instant>,
    stored: Vec<Stored>,
    spans: usize,
    /// Encoded bytes of the spans.
    bytes: usize,
    ticket: Ticket,
    /// The spans' bytes and the trace's bookkeeping, in `held_bytes`.
    charge: Charge,
}

#[derive(Clone)]
struct Decided {
    keep: bool,
    /// The rule that kept the trace, for a root span that arrives late.
    rule: Option<Arc<str>>,
}

/// Kept spans on their way out, with their share of the budget.
#[derive(Default)]
pub struct Released {
    parts: Vec<Part>,
    ticket: Option<Ticket>,
}

impl Released {
    fn push(&mut self, parts: Vec<Part>, ticket: Ticket) {
        self.parts.extend(parts);
        match &mut self.ticket {
            Some(t) => t.merge(ticket),
            None => self.ticket = Some(ticket),
        }
    }

    /// The batch to send on, if anything was kept.
    pub fn into_batch(self) -> Option<Batch> {
        let ticket = self.ticket?;
        if self.parts.is_empty() {
            return None;
        }
        Some(Batch {
            data: SignalData::Traces(rebuild(self.parts)),
            ticket,
        })
    }
}

/// Why a trace is being decided now.
#[derive(Clone, Copy, PartialEq)]
enum Cause {
    /// Its wait is over, or the collector is shutting down.
    Due,
    /// It was the oldest when `num_traces` was reached.
    Evicted,
    /// It reached `max_spans_per_trace` or `max_bytes_per_trace`.
    Limit,
}

pub struct TailBuffer {
    limits: TailLimits,
    sampler: Sampler,
    counters: TailCounters,
    /// Reservoir seconds count from here.
    epoch: Instant,
    pending: HashMap<TraceId, Pending>,
    /// Waiting traces by arrival of their first span (`seq`): eviction and `max_wait`
    /// order.
    by_age: BTreeMap<u64, TraceId>,
    /// `(due, seq)` of waiting traces whose root has arrived. Both indexes hold exactly the
    /// waiting traces, so memory stays bounded by `num_traces`.
    root_due: BTreeSet<(Instant, u64)>,
    next_seq: u64,
    decided: HashMap<TraceId, Decided>,
    decided_order: VecDeque<TraceId>,
    /// The remembered decisions' heap data, in `held_bytes`.
    decided_charge: Charge,
    /// The tables above (their buckets and nodes), in `held_bytes`.
    tables_charge: Charge,
}

impl TailBuffer {
    pub fn new(limits: TailLimits, sampler: Sampler, counters: TailCounters, now: Instant) -> Self {
        TailBuffer {
            decided_charge: Charge::new(&counters.held_bytes, 0),
            tables_charge: Charge::new(&counters.held_bytes, 0),
            limits,
            sampler,
            counters,
            epoch: now,
            pending: HashMap::new(),
            by_age: BTreeMap::new(),
            root_due: BTreeSet::new(),
            next_seq: 0,
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
        }
    }

    /// New rules take effect for every trace decided from now on (reservoirs start empty).
    pub fn set_sampler(&mut self, sampler: Sampler) {
        self.sampler = sampler;
    }

    /// The sampler in force, for centralized mode's statistics and targets.
    pub fn sampler_mut(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// The reservoir clock at `now`: whole seconds since the buffer started.
    pub fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// Bytes the buffer holds now: waiting spans (encoded), the resources and scopes they
    /// share (once each), and the bookkeeping of waiting traces and remembered decisions.
    pub fn held_bytes(&self) -> usize {
        usize::try_from(self.counters.held_bytes.get()).unwrap_or(0)
    }

    /// Spans waiting for their trace's decision.
    pub fn held_spans(&self) -> usize {
        self.pending.values().map(|p| p.spans).sum()
    }

    /// Takes in a batch of spans: spans of decided traces follow their decision, the rest
    /// wait. A batch of another signal is handed back untouched (configuration validation
    /// keeps this processor out of other pipelines, so that does not happen in practice).
    pub fn ingest(&mut self, batch: Batch, now: Instant, out: &mut Released) -> Result<(), Batch> {
        let Batch { data, mut ticket } = batch;
        let resource_spans = match data {
            SignalData::Traces(rs) => rs,
            other => {
                return Err(Batch {
                    data: other,
                    ticket,
                });
            }
        };
        for (id, group) in group_by_trace(resource_spans, &self.counters.held_bytes) {
            let share = ticket.split(group.spans);
            self.admit(id, group, share, now, out);
        }
        self.charge_tables();
        Ok(())
    }

    /// Brings the tables' share of `held_bytes` up to date with their capacities (hash
    /// tables allocate all their buckets up front and keep them when entries leave), and
    /// gives the room of a mostly empty table of waiting traces back.
    fn charge_tables(&mut self) {
        // After a burst the table would keep room for the burst's traces for good.
        if self.pending.capacity() > 1024 && self.pending.len() * 4 < self.pending.capacity() {
            self.pending.shrink_to(self.pending.len() * 2);
        }
        let bytes = hash_table_bytes::<(TraceId, Pending)>(self.pending.capacity())
            + hash_table_bytes::<(TraceId, Decided)>(self.decided.capacity())
            + self.decided_order.capacity() * size_of::<TraceId>()
            + btree_bytes::<u64, TraceId>(self.by_age.len())
            + btree_bytes::<(Instant, u64), ()>(self.root_due.len());
        self.tables_charge.set(bytes);
    }

    fn admit(
        &mut self,
        id: TraceId,
        group: Group,
        ticket: Ticket,
        now: Instant,
        out: &mut Released,
    ) {
        if let Some(d) = self.decided.get(&id) {
            if d.keep {
                let mut parts = group.parts;
                if let Some(rule) = &d.rule {
                    annotate_roots(&mut parts, rule);
                }
                out.push(parts, ticket);
            } else {
                self.counters.not_sampled.inc_by(group.spans as u64);
            }
            return;
        }
        let root_due = group.has_root.then(|| now + self.limits.decision_wait);
        let (stored, bytes) = store(group.parts);
        let seq = match self.pending.get_mut(&id) {
            Some(p) => {
                p.charge.add(bytes + stored.len() * size_of::<Stored>());
                p.stored.extend(stored);
                p.spans += group.spans;
                p.bytes += bytes;
                p.ticket.merge(ticket);
                if let (None, Some(due)) = (p.root_due, root_due) {
                    p.root_due = Some(due);
                    self.root_due.insert((due, p.seq));
                }
                p.seq
            }
            None => {
                while self.pending.len() >= self.limits.num_traces {
                    let Some(&oldest) = self.by_age.keys().next() else {
                        break;
                    };
                    if let Some((id, p)) = self.take_pending(oldest) {
                        self.counters.traces_evicted.inc();
                        self.decide(id, p, Cause::Evicted, now, out);
                    }
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                if let Some(due) = root_due {
                    self.root_due.insert((due, seq));
                }
                let charge = Charge::new(
                    &self.counters.held_bytes,
                    bytes + stored.len() * size_of::<Stored>() + trace_overhead(&id),
                );
                self.by_age.insert(seq, id.clone());
                self.pending.insert(
                    id,
                    Pending {
                        seq,
                        first_seen: now,
                        root_due,
                        stored,
                        spans: group.spans,
                        bytes,
                        ticket,
                        charge,
                    },
                );
                seq
            }
        };
        self.enforce_trace_limits(seq, now, out);
    }

    /// Decides the waiting trace `seq` now if it holds more than one trace may.
    fn enforce_trace_limits(&mut self, seq: u64, now: Instant, out: &mut Released) {
        let Some(p) = self.by_age.get(&seq).and_then(|id| self.pending.get(id)) else {
            return;
        };
        let counter = if p.spans >= self.limits.max_spans_per_trace {
            &self.counters.traces_limited_spans
        } else if p.bytes >= self.limits.max_bytes_per_trace {
            &self.counters.traces_limited_bytes
        } else {
            return;
        };
        counter.inc();
        if let Some((id, p)) = self.take_pending(seq) {
            self.decide(id, p, Cause::Limit, now, out);
        }
    }

    /// Removes the waiting trace `seq` from every index (its `by_age` entry in any case).
    fn take_pending(&mut self, seq: u64) -> Option<(TraceId, Pending)> {
        let id = self.by_age.remove(&seq)?;
        let p = self.pending.remove(&id)?;
        if let Some(due) = p.root_due {
            self.root_due.remove(&(due, seq));
        }
        Some((id, p))
    }

    /// When the next trace falls due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        let by_root = self.root_due.first().map(|(due, _)| *due);
        let by_age = self
            .by_age
            .first_key_value()
            .and_then(|(_, id)| self.pending.get(id))
            .map(|p| p.first_seen + self.limits.max_wait);
        match (by_root, by_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Decides every trace that is due at `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Released) {
        while let Some(&(due, seq)) = self.root_due.first() {
            if due > now {
                break;
            }
            self.root_due.remove(&(due, seq));
            if let Some((id, p)) = self.take_pending(seq) {
                self.decide(id, p, Cause::Due, now, out);
            }
        }
        while let Some((&seq, id)) = self.by_age.first_key_value() {
            let waiting_since = self.pending.get(id).map(|p| p.first_seen);
            if waiting_since.is_some_and(|t| t + self.limits.max_wait > now) {
                break;
            }
            // `take_pending` always removes the `by_age` entry, so this loop advances.
            if let Some((id, p)) = self.take_pending(seq) {
                self.decide(id, p, Cause::Due, now, out);
            }
        }
        self.charge_tables();
    }

    /// Decides everything still waiting (shutdown), oldest first.
    pub fn flush(&mut self, now: Instant, out: &mut Released) {
        while let Some(&seq) = self.by_age.keys().next() {
            if let Some((id, p)) = self.take_pending(seq) {
                self.decide(id, p, Cause::Due, now, out);
            }
        }
        self.charge_tables();
    }

    fn decide(&mut self, id: TraceId, p: Pending, cause: Cause, now: Instant, out: &mut Released) {
        let Pending {
            stored,
            mut ticket,
            spans: mut count,
            charge,
            ..
        } = p;
        let mut parts = Vec::with_capacity(stored.len());
        for s in stored {
            match decode(&s.encoded, s.spans) {
                Ok(spans) => parts.push(Part {
                    origin: s.origin,
                    spans,
                }),
                Err(e) => {
                    // Only a span nested deeper than protobuf decoding allows (possible
                    // from OTLP/JSON) fails to come back.
                    tracing::error!(error = %e, spans = s.spans,
                        "buffered spans could not be read back; dropped as unreadable");
                    self.counters.unreadable.inc_by(s.spans as u64);
                    drop(ticket.split(s.spans));
                    count -= s.spans;
                }
            }
        }
        // The encoded copies are gone; the decoded spans are the ticket's to account for.
        drop(charge);
        let (keep, rule) = {
            let view = TraceView::from_parts(
                parts
                    .iter()
                    .map(|p| (p.origin.resource(), p.spans.as_slice()))
                    .collect(),
            );
            let upstream = self.limits.honor_upstream_sampled
                && view.root().is_some_and(|s| s.flags & W3C_SAMPLED != 0);
            if upstream {
                self.counters.upstream_sampled.inc();
                (true, None)
            } else {
                let second = now.saturating_duration_since(self.epoch).as_secs();
                let d = self.sampler.decide(&view, &id, second);
                if d.rule.is_none() {
                    self.counters.no_matching_rule.inc();
                }
                let name = d
                    .rule
                    .and_then(|i| self.sampler.rule(i))
                    .map(|r| Arc::<str>::from(r.name.as_str()));
                (d.keep, if d.keep { name } else { None })
            }
        };
        if keep {
            if let Some(rule) = &rule {
                annotate_roots(&mut parts, rule);
            }
            out.push(parts, ticket);
        } else {
            let counter = match cause {
                Cause::Due => &self.counters.not_sampled,
                Cause::Evicted => &self.counters.evicted,
                Cause::Limit => &self.counters.trace_limit,
            };
            counter.inc_by(count as u64);
            // The ticket is dropped here: the spans leave the pipeline's budget.
        }
        self.remember(id, Decided { keep, rule });
    }

    fn remember(&mut self, id: TraceId, decided: Decided) {
        if self.limits.decision_cache_size == 0 {
            return;
        }
        while self.decided_order.len() >= self.limits.decision_cache_size {
            match self.decided_order.pop_front() {
                Some(old) => {
                    if let Some(d) = self.decided.remove(&old) {
                        self.decided_charge.sub(decision_overhead(&old, &d));
                    }
                }
                None => break,
            }
        }
        let bytes = decision_overhead(&id, &decided);
        if self.decided.insert(id.clone(), decided).is_none() {
            self.decided_charge.add(bytes);
            self.decided_order.push_back(id);
        }
    }
}

/// Heap data of one waiting trace besides its spans and the tables: its id, held by the
/// map and by the age index.
fn trace_overhead(id: &[u8]) -> usize {
    2 * id.len()
}

/// Heap data of one remembered decision: its id twice (map and order) and the rule name
/// of a kept trace.
fn decision_overhead(id: &[u8], d: &Decided) -> usize {
    2 * id.len()
        + d.rule
            .as_ref()
            .map_or(0, |r| 2 * size_of::<usize>() + r.len())
}

/// The spans of one trace found in a batch.
struct Group {
    parts: Vec<Part>,
    spans: usize,
    has_root: bool,
}

/// Splits a batch by trace id, in first-seen order. Every trace gets a reference to the
/// resource and scope its spans came with, not a copy.
fn group_by_trace(resource_spans: Vec<ResourceSpans>, held: &Gauge) -> Vec<(TraceId, Group)> {
    let mut groups: Vec<(TraceId, Group)> = Vec::new();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for rs in resource_spans {
        let resource = Arc::new(SharedResource {
            _charge: Charge::new(
                held,
                size_of::<SharedResource>() + rs.resource.as_ref().map_or(0, resource_size),
            ),
            resource: rs.resource,
            schema_url: rs.schema_url,
        });
        for ss in rs.scope_spans {
            let origin = Arc::new(Origin {
                _charge: Charge::new(
                    held,
                    size_of::<Origin>()
                        + ss.scope.as_ref().map_or(0, scope_size)
                        + ss.schema_url.len(),
                ),
                resource: resource.clone(),
                scope: ss.scope,
                schema_url: ss.schema_url,
            });
            for span in ss.spans {
                let gi = match index.get(&span.trace_id) {
                    Some(&gi) => gi,
                    None => {
                        index.insert(span.trace_id.clone(), groups.len());
                        groups.push((
                            span.trace_id.clone(),
                            Group {
                                parts: Vec::new(),
                                spans: 0,
                                has_root: false,
                            },
                        ));
                        groups.len() - 1
                    }
                };
                let g = &mut groups[gi].1;
                g.spans += 1;
                g.has_root |= span.parent_span_id.is_empty();
                match g.parts.last_mut() {
                    Some(part) if Arc::ptr_eq(&part.origin, &origin) => part.spans.push(span),
                    _ => g.parts.push(Part {
                        origin: origin.clone(),
                        spans: vec![span],
                    }),
                }
            }
        }
    }
    groups
}

/// The parts of a trace in their stored form, and their encoded bytes.
fn store(parts: Vec<Part>) -> (Vec<Stored>, usize) {
    let mut bytes = 0;
    let stored = parts
        .into_iter()
        .map(|part| {
            let encoded = encode(&part.spans);
            bytes += encoded.len();
            Stored {
                origin: part.origin,
                encoded,
                spans: part.spans.len(),
            }
        })
        .collect();
    (stored, bytes)
}

/// Spans as length-delimited protobuf, in a buffer of exactly their size.
fn encode(spans: &[Span]) -> Vec<u8> {
    let len = spans
        .iter()
        .map(|s| {
            let n = s.encoded_len();
            prost::length_delimiter_len(n) + n
        })
        .sum();
    let mut buf = Vec::with_capacity(len);
    for s in spans {
        s.encode_length_delimited(&mut buf)
            .expect("a Vec grows to hold whatever is encoded into it");
    }
    buf
}

fn decode(mut encoded: &[u8], count: usize) -> Result<Vec<Span>, prost::DecodeError> {
    let mut spans = Vec::with_capacity(count);
    while !encoded.is_empty() {
        spans.push(Span::decode_length_delimited(&mut encoded)?);
    }
    Ok(spans)
}

/// Puts kept spans back into OTLP's shape: one `ResourceSpans` per request resource and one
/// `ScopeSpans` per scope, however many traces they come from. A resource or scope is moved
/// out when nothing else holds it any more, and copied while traces of its request still
/// wait.
fn rebuild(parts: Vec<Part>) -> Vec<ResourceSpans> {
    type Scopes = Vec<(Arc<Origin>, Vec<Span>)>;
    let mut resources: Vec<(Arc<SharedResource>, Scopes)> = Vec::new();
    // Addresses identify the shared values while the `Arc`s above keep them alive.
    let mut by_resource: HashMap<*const SharedResource, usize> = HashMap::new();
    let mut by_origin: HashMap<*const Origin, (usize, usize)> = HashMap::new();
    for Part { origin, spans } in parts {
        if let Some(&(ri, oi)) = by_origin.get(&Arc::as_ptr(&origin)) {
            resources[ri].1[oi].1.extend(spans);
            continue;
        }
        let ri = *by_resource
            .entry(Arc::as_ptr(&origin.resource))
            .or_insert_with(|| {
                resources.push((origin.resource.clone(), Vec::new()));
                resources.len() - 1
            });
        by_origin.insert(Arc::as_ptr(&origin), (ri, resources[ri].1.len()));
        resources[ri].1.push((origin, spans));
    }
    resources
        .into_iter()
        .map(|(resource, scopes)| {
            // The scopes first: each holds its resource, which can only be moved out once
            // they are gone.
            let scope_spans = scopes
                .into_iter()
                .map(|(origin, spans)| {
                    let (scope, schema_url) = match Arc::try_unwrap(origin) {
                        Ok(o) => (o.scope, o.schema_url),
                        Err(shared) => (shared.scope.clone(), shared.schema_url.clone()),
                    };
                    ScopeSpans {
                        scope,
                        spans,
                        schema_url,
                    }
                })
                .collect();
            let (resource, schema_url) = match Arc::try_unwrap(resource) {
                Ok(r) => (r.resource, r.schema_url),
                Err(shared) => (shared.resource.clone(), shared.schema_url.clone()),
            };
            ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            }
        })
        .collect()
}

/// Estimated decoded size of a resource: its attributes as structs plus their heap data.
fn resource_size(r: &Resource) -> usize {
    size_of::<Resource>() + attributes_size(&r.attributes)
}

fn scope_size(s: &InstrumentationScope) -> usize {
    size_of::<InstrumentationScope>()
        + s.name.len()
        + s.version.len()
        + attributes_size(&s.attributes)
}

fn attributes_size(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| size_of::<KeyValue>() + kv.key.len() + kv.value.as_ref().map_or(0, value_heap))
        .sum()
}

/// Heap bytes an attribute value owns beyond its struct.
fn value_heap(v: &AnyValue) -> usize {
    match &v.value {
        Some(Value::StringValue(s)) => s.len(),
        Some(Value::BytesValue(b)) => b.len(),
        Some(Value::ArrayValue(a)) => a
            .values
            .iter()
            .map(|v| size_of::<AnyValue>() + value_heap(v))
            .sum(),
        Some(Value::KvlistValue(l)) => attributes_size(&l.values),
        _ => 0,
    }
}

/// Records the deciding rule on the kept trace's root spans.
fn annotate_roots(parts: &mut [Part], rule: &str) {
    let spans = parts
        .iter_mut()
        .flat_map(|p| &mut p.spans)
        .filter(|s| s.parent_span_id.is_empty());
    for span in spans {
        let value = Some(AnyValue {
            value: Some(Value::StringValue(rule.to_string())),
        });
        match span
            .attributes
            .iter_mut()
            .find(|kv| kv.key == RULE_ATTRIBUTE)
        {
            Some(kv) => kv.value = value,
            None => span.attributes.push(KeyValue {
                key: RULE_ATTRIBUTE.into(),
                value,
                ..Default::default()
            }),
        }
    }
}
