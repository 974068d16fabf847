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
//! Decisions are remembered for the last `decision_cache_size` traces (oldest forgotten
//! first), so spans arriving after their trace was decided follow it: forwarded at once or
//! dropped as `not_sampled`. A span of a forgotten trace starts a new trace and gets the
//! same `rate` draw (it is a function of the trace id), so it usually still agrees.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use super::sampler::Sampler;
use super::trace_view::TraceView;
use crate::model::Batch;
use crate::model::SignalData;
use crate::model::Ticket;

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
    /// Traces kept because the upstream service had sampled them.
    pub upstream_sampled: Counter,
    /// Traces no rule matched (dropped).
    pub no_matching_rule: Counter,
}

type TraceId = Vec<u8>;

struct Pending {
    seq: u64,
    first_seen: Instant,
    /// `decision_wait` after the root span arrived; `None` until it has.
    root_due: Option<Instant>,
    fragments: Vec<ResourceSpans>,
    spans: usize,
    ticket: Ticket,
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
    data: Vec<ResourceSpans>,
    ticket: Option<Ticket>,
}

impl Released {
    fn push(&mut self, fragments: Vec<ResourceSpans>, ticket: Ticket) {
        self.data.extend(fragments);
        match &mut self.ticket {
            Some(t) => t.merge(ticket),
            None => self.ticket = Some(ticket),
        }
    }

    /// The batch to send on, if anything was kept.
    pub fn into_batch(self) -> Option<Batch> {
        let ticket = self.ticket?;
        if self.data.is_empty() {
            return None;
        }
        Some(Batch {
            data: SignalData::Traces(self.data),
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
}

impl TailBuffer {
    pub fn new(limits: TailLimits, sampler: Sampler, counters: TailCounters, now: Instant) -> Self {
        TailBuffer {
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
        for (id, group) in group_by_trace(resource_spans) {
            let share = ticket.split(group.spans);
            self.admit(id, group, share, now, out);
        }
        Ok(())
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
                let mut fragments = group.fragments;
                if let Some(rule) = &d.rule {
                    annotate_roots(&mut fragments, rule);
                }
                out.push(fragments, ticket);
            } else {
                self.counters.not_sampled.inc_by(group.spans as u64);
            }
            return;
        }
        let root_due = group.has_root.then(|| now + self.limits.decision_wait);
        if let Some(p) = self.pending.get_mut(&id) {
            p.fragments.extend(group.fragments);
            p.spans += group.spans;
            p.ticket.merge(ticket);
            if let (None, Some(due)) = (p.root_due, root_due) {
                p.root_due = Some(due);
                self.root_due.insert((due, p.seq));
            }
            return;
        }
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
        self.by_age.insert(seq, id.clone());
        self.pending.insert(
            id,
            Pending {
                seq,
                first_seen: now,
                root_due,
                fragments: group.fragments,
                spans: group.spans,
                ticket,
            },
        );
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
    }

    /// Decides everything still waiting (shutdown), oldest first.
    pub fn flush(&mut self, now: Instant, out: &mut Released) {
        while let Some(&seq) = self.by_age.keys().next() {
            if let Some((id, p)) = self.take_pending(seq) {
                self.decide(id, p, Cause::Due, now, out);
            }
        }
    }

    fn decide(
        &mut self,
        id: TraceId,
        mut p: Pending,
        cause: Cause,
        now: Instant,
        out: &mut Released,
    ) {
        let view = TraceView::new(&p.fragments);
        let upstream = self.limits.honor_upstream_sampled
            && view.root().is_some_and(|s| s.flags & W3C_SAMPLED != 0);
        let (keep, rule) = if upstream {
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
        };
        if keep {
            if let Some(rule) = &rule {
                annotate_roots(&mut p.fragments, rule);
            }
            out.push(p.fragments, p.ticket);
        } else {
            let counter = match cause {
                Cause::Due => &self.counters.not_sampled,
                Cause::Evicted => &self.counters.evicted,
            };
            counter.inc_by(p.spans as u64);
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
                    self.decided.remove(&old);
                }
                None => break,
            }
        }
        if self.decided.insert(id.clone(), decided).is_none() {
            self.decided_order.push_back(id);
        }
    }
}

/// The spans of one trace found in a batch.
struct Group {
    fragments: Vec<ResourceSpans>,
    spans: usize,
    has_root: bool,
    /// `(resource index, scope index)` of the last fragment, to append to it.
    last: (usize, usize),
}

/// Splits a batch by trace id, keeping each span's resource and scope, in first-seen order.
fn group_by_trace(resource_spans: Vec<ResourceSpans>) -> Vec<(TraceId, Group)> {
    let mut groups: Vec<(TraceId, Group)> = Vec::new();
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    for (ri, rs) in resource_spans.into_iter().enumerate() {
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            for span in ss.spans {
                let gi = match index.get(&span.trace_id) {
                    Some(&gi) => gi,
                    None => {
                        index.insert(span.trace_id.clone(), groups.len());
                        groups.push((
                            span.trace_id.clone(),
                            Group {
                                fragments: Vec::new(),
                                spans: 0,
                                has_root: false,
                                last: (usize::MAX, usize::MAX),
                            },
                        ));
                        groups.len() - 1
                    }
                };
                let g = &mut groups[gi].1;
                if g.last != (ri, si) {
                    g.fragments.push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    });
                    g.last = (ri, si);
                }
                g.spans += 1;
                g.has_root |= span.parent_span_id.is_empty();
                if let Some(frag) = g
                    .fragments
                    .last_mut()
                    .and_then(|f| f.scope_spans.last_mut())
                {
                    frag.spans.push(span);
                }
            }
        }
    }
    groups
}

/// Records the deciding rule on the kept trace's root spans.
fn annotate_roots(fragments: &mut [ResourceSpans], rule: &str) {
    let spans = fragments
        .iter_mut()
        .flat_map(|rs| &mut rs.scope_spans)
        .flat_map(|ss| &mut ss.spans)
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
