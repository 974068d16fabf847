//! The decision for one trace: which rule applies and whether it keeps the trace.
//!
//! Per rule, X-Ray's two-step scheme: up to `fixed_target` traces in each second of the
//! clock are kept (the reservoir), then `rate` of the rest. X-Ray shares a rule's reservoir
//! among all instances through its quota API; with rules from a file there is no quota,
//! so each collector keeps its own reservoir of `fixed_target` per second, which X-Ray's
//! SDKs call borrowing. Those keeps are counted as `borrowed` per instance, so a fleet's
//! total can be read off `/metrics`.
//!
//! The `rate` draw is not random: it is [`trace_draw`] of the trace id, so every collector
//! that sees a part of the trace draws the same number and the parts are kept or dropped
//! together. (Reservoir keeps are per instance and cannot agree that way; they are a floor
//! per instance, not a share.)
//!
//! # Which rule decides
//!
//! Rules are tried in evaluation order ([`super::rules`]). The first rule whose matchers all
//! accept the trace decides it, as in X-Ray. One exception protects the traces a rule asks
//! for by attribute (the guide's "High priority for errors" wants every `4*` status): when
//! the deciding rule drops the trace, each later matching rule that has `attributes` gets
//! its turn, in order, and the first that keeps the trace keeps it and is credited. Rules
//! without attributes never get a second turn, so ordinary traffic is sampled exactly at
//! its first rule's rate. A trace no rule matches is dropped.
//!
//! # Targets from X-Ray
//!
//! In centralized mode ([`super::centralized`]) X-Ray answers each rule's statistics with
//! a target: a `FixedRate` that replaces the rule's rate, and a `ReservoirQuota` per second
//! that replaces the per-instance reservoir until its TTL, so the fleet shares the rule's
//! reservoir as X-Ray intends. Quota keeps are X-Ray's assignment, not borrowing, and are
//! not counted in `borrowed`. When the TTL passes, the rule borrows again.

use prometheus_client::metrics::counter::Counter;

use super::rules::{Rule, RuleSet};
use super::trace_view::TraceView;

/// A deterministic number in [0, 1) for a trace id, the same in every collector.
///
/// The 16 bytes are read as two big-endian u64 halves, each passed through the SplitMix64
/// finalizer (a published, well-mixed bijection), combined, mixed again, and the top 53
/// bits are scaled to [0, 1). Hashing rather than reading the id's bits directly matters
/// for X-Ray ids, whose first four bytes are a timestamp. Ids of another length are folded
/// in 8-byte chunks the same way.
pub fn trace_draw(trace_id: &[u8]) -> f64 {
    let mut acc: u64 = 0x243f_6a88_85a3_08d3;
    for chunk in trace_id.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        acc = mix(acc ^ mix(u64::from_be_bytes(word)));
    }
    (acc >> 11) as f64 / (1u64 << 53) as f64
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per-rule counters on `/metrics` (in traces, not spans).
#[derive(Debug, Clone, Default)]
pub struct RuleCounters {
    pub kept: Counter,
    pub dropped: Counter,
    /// Kept from this instance's own reservoir (a subset of `kept`).
    pub borrowed: Counter,
}

/// Where the counters come from: the processor passes `/metrics` families, tests plain
/// counters.
pub type CounterSource<'a> = &'a dyn Fn(&str) -> RuleCounters;

/// One rule's reservoir: how many traces it has kept in the current second.
#[derive(Debug, Clone, Copy, Default)]
struct Reservoir {
    second: u64,
    used: u32,
}

/// X-Ray's target for one rule, as the sampler applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub rule: String,
    /// Replaces the rule's `rate`.
    pub fixed_rate: f64,
    /// Traces per second this instance may keep from the rule's shared reservoir, until
    /// `quota_until_second` (the processor's clock, like `now_second`); `None` = borrow.
    pub quota: Option<(u32, u64)>,
}

/// What a rule saw since the last report, in X-Ray's `SamplingStatisticsDocument` terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleStatistics {
    pub rule: String,
    /// Traces this rule decided (matched first).
    pub requests: u64,
    /// Traces this rule kept.
    pub sampled: u64,
    /// Kept from this instance's own reservoir.
    pub borrowed: u64,
}

/// A rule's live state beyond its definition.
#[derive(Debug, Clone, Default)]
struct RuleState {
    rate: Option<f64>,
    quota: Option<(u32, u64)>,
    requests: u64,
    sampled: u64,
    borrowed: u64,
}

/// The outcome for one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub keep: bool,
    /// Index into the rule set of the rule that kept the trace, or that dropped it.
    pub rule: Option<usize>,
}

/// A rule set with its reservoirs and counters.
pub struct Sampler {
    rules: RuleSet,
    reservoirs: Vec<Reservoir>,
    counters: Vec<RuleCounters>,
    state: Vec<RuleState>,
}

impl Sampler {
    pub fn new(rules: RuleSet, counters: CounterSource<'_>) -> Sampler {
        let counters = rules.rules.iter().map(|r| counters(&r.name)).collect();
        Sampler {
            reservoirs: vec![Reservoir::default(); rules.rules.len()],
            state: vec![RuleState::default(); rules.rules.len()],
            rules,
            counters,
        }
    }

    pub fn rule(&self, index: usize) -> Option<&Rule> {
        self.rules.rules.get(index)
    }

    /// Applies X-Ray's targets; rules it does not name keep their state.
    pub fn apply_targets(&mut self, targets: &[Target]) {
        for t in targets {
            if let Some(i) = self.rules.rules.iter().position(|r| r.name == t.rule) {
                self.state[i].rate = Some(t.fixed_rate.clamp(0.0, 1.0));
                if t.quota.is_some() {
                    self.state[i].quota = t.quota;
                }
            }
        }
    }

    /// Each rule's statistics since the last call (rules that saw no trace are left out).
    pub fn take_statistics(&mut self) -> Vec<RuleStatistics> {
        self.rules
            .rules
            .iter()
            .zip(&mut self.state)
            .filter(|(_, s)| s.requests > 0 || s.sampled > 0)
            .map(|(r, s)| {
                let stats = RuleStatistics {
                    rule: r.name.clone(),
                    requests: s.requests,
                    sampled: s.sampled,
                    borrowed: s.borrowed,
                };
                (s.requests, s.sampled, s.borrowed) = (0, 0, 0);
                stats
            })
            .collect()
    }

    /// Decides a trace at `now_second` (whole seconds of the processor's clock).
    pub fn decide(&mut self, trace: &TraceView<'_>, trace_id: &[u8], now_second: u64) -> Decision {
        let draw = trace_draw(trace_id);
        let mut deciding: Option<usize> = None;
        for i in 0..self.rules.rules.len() {
            let rule = &self.rules.rules[i];
            let second_turn = deciding.is_some();
            if second_turn && rule.attributes.is_empty() {
                continue;
            }
            if !trace.matches(rule) {
                continue;
            }
            if deciding.is_none() {
                deciding = Some(i);
                self.state[i].requests += 1;
            }
            if self.try_keep(i, draw, now_second) {
                return Decision {
                    keep: true,
                    rule: Some(i),
                };
            }
        }
        if let Some(i) = deciding {
            self.counters[i].dropped.inc();
        }
        Decision {
            keep: false,
            rule: deciding,
        }
    }

    fn try_keep(&mut self, i: usize, draw: f64, now_second: u64) -> bool {
        let rule = &self.rules.rules[i];
        let reservoir = &mut self.reservoirs[i];
        if reservoir.second != now_second {
            *reservoir = Reservoir {
                second: now_second,
                used: 0,
            };
        }
        let counters = &self.counters[i];
        let state = &mut self.state[i];
        let quota = state
            .quota
            .filter(|(_, until)| now_second < *until)
            .map(|(per_second, _)| per_second);
        if reservoir.used < quota.unwrap_or(rule.fixed_target) {
            reservoir.used += 1;
            counters.kept.inc();
            state.sampled += 1;
            if quota.is_none() {
                counters.borrowed.inc();
                state.borrowed += 1;
            }
            return true;
        }
        if draw < state.rate.unwrap_or(rule.rate) {
            counters.kept.inc();
            state.sampled += 1;
            return true;
        }
        false
    }
}
