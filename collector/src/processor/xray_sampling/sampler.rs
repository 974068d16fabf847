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
//!
//! # Adaptive sampling
//!
//! A rule with a `SamplingRateBoost` (`MaxRate`, `CooldownWindowMinutes`) has its rate
//! raised to `MaxRate` for a while when its traces start failing, so that an incident is
//! seen in full and ordinary traffic stays cheap. A trace counts as an anomaly when it
//! shows a fault ([`TraceView::has_fault`]: a 5xx status or span status `ERROR`).
//!
//! * Locally (rules from a file, or before X-Ray's arrive), each rule's traces are counted
//!   in windows of [`BOOST_WINDOW_SECONDS`]. A spike is a window with at least
//!   [`SPIKE_MIN_ANOMALIES`] anomalies whose anomaly share is more than
//!   [`SPIKE_FACTOR`] times the rule's usual share (an average over earlier windows, so a
//!   steady error level is not a spike). A spike boosts the rule to `MaxRate` for
//!   [`BOOST_SECONDS`] (X-Ray's boosts are brief: up to a minute), and no new boost starts
//!   until `CooldownWindowMinutes` after the last one started. Boosts are counted in
//!   `rule_boosted/NAME`.
//! * In centralized mode X-Ray decides: the sampler reports each boost rule's traces and
//!   anomalies per service (`SamplingBoostStatisticsDocuments`) with its statistics, and
//!   applies the `SamplingBoost` rate X-Ray answers with until its TTL; it does not boost
//!   X-Ray's rules on its own.
//!
//! A boost never lowers a rule's rate: the rate in force is the larger of the two.

use std::collections::BTreeMap;

use prometheus_client::metrics::counter::Counter;

use super::rules::{Rule, RuleSet};
use super::trace_view::TraceView;

/// Length of the windows in which a rule's anomalies are counted: X-Ray's statistics
/// interval.
pub const BOOST_WINDOW_SECONDS: u64 = 10;
/// How long a local boost lasts.
pub const BOOST_SECONDS: u64 = 60;
/// Fewest anomalies in a window that can make a spike: a handful of failures is noise.
pub const SPIKE_MIN_ANOMALIES: u64 = 5;
/// How many times its usual anomaly share a window must show to be a spike.
pub const SPIKE_FACTOR: f64 = 2.0;
/// Weight of the latest window in the usual anomaly share (an exponential average over
/// about the last minute of windows).
const BASELINE_WEIGHT: f64 = 0.2;
/// Services per rule whose boost statistics are kept between two reports; more are not
/// reported (one rule rarely spans more services, and the map must stay bounded).
const MAX_BOOST_SERVICES: usize = 64;

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
    /// Local boosts started (adaptive sampling).
    pub boosted: Counter,
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
    /// X-Ray's `SamplingBoost`: the rate in force until the second given (same clock).
    pub boost: Option<(f64, u64)>,
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
    /// Per service, for a rule with a `SamplingRateBoost`: X-Ray's
    /// `SamplingBoostStatisticsDocument` terms.
    pub boost: Vec<BoostStatistics>,
}

/// A boost rule's traces of one service since the last report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoostStatistics {
    pub service: String,
    /// Traces the rule decided.
    pub total: u64,
    /// Of which showed a fault.
    pub anomalies: u64,
    /// Of which were kept.
    pub sampled_anomalies: u64,
}

/// A rule's live state beyond its definition.
#[derive(Debug, Clone, Default)]
struct RuleState {
    rate: Option<f64>,
    quota: Option<(u32, u64)>,
    requests: u64,
    sampled: u64,
    borrowed: u64,
    /// The boosted rate and the second it ends, locally or from X-Ray.
    boost: Option<(f64, u64)>,
    /// First second a new local boost may start.
    next_boost: u64,
    spikes: SpikeWindow,
    by_service: BTreeMap<String, BoostStatistics>,
}

impl RuleState {
    /// The rate in force at `now_second`.
    fn rate(&self, rule: &Rule, now_second: u64) -> f64 {
        let base = self.rate.unwrap_or(rule.rate);
        match self.boost {
            Some((boosted, until)) if now_second < until => base.max(boosted),
            _ => base,
        }
    }
}

/// A rule's anomalies in the current window, against its usual share.
#[derive(Debug, Clone, Default)]
struct SpikeWindow {
    /// First second of the current window.
    start: u64,
    traces: u64,
    anomalies: u64,
    /// The usual anomaly share: an exponential average over the earlier windows; `None`
    /// until a window has closed.
    usual: Option<f64>,
}

impl SpikeWindow {
    /// Counts one trace at `now_second`; whether the current window is now a spike.
    fn observe(&mut self, now_second: u64, anomaly: bool) -> bool {
        if now_second >= self.start + BOOST_WINDOW_SECONDS {
            if self.traces > 0 {
                let share = self.anomalies as f64 / self.traces as f64;
                self.usual = Some(match self.usual {
                    Some(usual) => usual + BASELINE_WEIGHT * (share - usual),
                    None => share,
                });
            }
            self.start = now_second - now_second % BOOST_WINDOW_SECONDS;
            (self.traces, self.anomalies) = (0, 0);
        }
        self.traces += 1;
        self.anomalies += u64::from(anomaly);
        let share = self.anomalies as f64 / self.traces as f64;
        anomaly
            && self.anomalies >= SPIKE_MIN_ANOMALIES
            && share > SPIKE_FACTOR * self.usual.unwrap_or(0.0)
    }
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
    /// Whether spikes boost rules here, or X-Ray decides boosts (its own rules).
    local_boost: bool,
}

impl Sampler {
    pub fn new(rules: RuleSet, counters: CounterSource<'_>) -> Sampler {
        let counters = rules.rules.iter().map(|r| counters(&r.name)).collect();
        Sampler {
            reservoirs: vec![Reservoir::default(); rules.rules.len()],
            state: vec![RuleState::default(); rules.rules.len()],
            rules,
            counters,
            local_boost: true,
        }
    }

    /// For X-Ray's rules: boosts come from X-Ray's targets only.
    pub fn with_boosts_from_xray(mut self) -> Sampler {
        self.local_boost = false;
        self
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
                if let Some((rate, until)) = t.boost {
                    // X-Ray's boost stays within the rule's own `MaxRate`.
                    let max = self.rules.rules[i].boost.map_or(1.0, |b| b.max_rate);
                    self.state[i].boost = Some((rate.clamp(0.0, max), until));
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
                    boost: std::mem::take(&mut s.by_service).into_values().collect(),
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
        // Whether the trace is an anomaly, when the deciding rule has a boost to feed.
        let mut anomaly = false;
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
                if rule.boost.is_some() {
                    anomaly = trace.has_fault();
                    self.observe(i, trace.service(), anomaly, now_second);
                }
            }
            if self.try_keep(i, draw, now_second) {
                if anomaly && let Some(d) = deciding {
                    self.count_sampled_anomaly(d, trace.service());
                }
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

    /// Feeds a trace that boost rule `i` decides to its statistics and, locally, to its
    /// spike detection; starts a boost on a spike outside the cooldown.
    fn observe(&mut self, i: usize, service: &str, anomaly: bool, now_second: u64) {
        let Some(boost) = self.rules.rules[i].boost else {
            return;
        };
        let state = &mut self.state[i];
        if let Some(stats) = service_statistics(&mut state.by_service, service) {
            stats.total += 1;
            stats.anomalies += u64::from(anomaly);
        }
        if !self.local_boost {
            return;
        }
        let spike = state.spikes.observe(now_second, anomaly);
        let boosting = state.boost.is_some_and(|(_, until)| now_second < until);
        if spike && !boosting && now_second >= state.next_boost {
            state.boost = Some((boost.max_rate, now_second + BOOST_SECONDS));
            state.next_boost = now_second + boost.cooldown_seconds.max(BOOST_SECONDS);
            self.counters[i].boosted.inc();
        }
    }

    fn count_sampled_anomaly(&mut self, i: usize, service: &str) {
        if let Some(stats) = service_statistics(&mut self.state[i].by_service, service) {
            stats.sampled_anomalies += 1;
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
        if draw < state.rate(rule, now_second) {
            counters.kept.inc();
            state.sampled += 1;
            return true;
        }
        false
    }
}

/// The statistics of `service`, unless the map is full of other services.
fn service_statistics<'a>(
    by_service: &'a mut BTreeMap<String, BoostStatistics>,
    service: &str,
) -> Option<&'a mut BoostStatistics> {
    if !by_service.contains_key(service) {
        if by_service.len() >= MAX_BOOST_SERVICES {
            return None;
        }
        by_service.insert(
            service.to_string(),
            BoostStatistics {
                service: service.to_string(),
                ..BoostStatistics::default()
            },
        );
    }
    by_service.get_mut(service)
}
