//! Centralized mode: rules and reservoir quotas from X-Ray's sampling API.
//!
//! A task per processor talks to X-Ray so that a slow or unreachable API never stalls the
//! spans: it calls `GetSamplingRules` every `rules_interval` and hands the processor a new
//! [`RuleSet`] when the rules changed, and it turns each batch of per-rule statistics the
//! processor sends (every `targets_interval`) into a `GetSamplingTargets` call whose
//! targets (rate and reservoir quota per rule) go back to the processor. This is the X-Ray
//! SDKs' protocol, so X-Ray's console shows the collector's statistics per rule and shares
//! each rule's reservoir across the fleet.
//!
//! Adaptive sampling: for rules with a `SamplingRateBoost`, the statistics carry
//! `SamplingBoostStatisticsDocuments` (traces and anomalies per service), and the
//! `SamplingBoost` of X-Ray's answer (a rate and its TTL) raises the rule's rate until the
//! TTL; see [`super::sampler`].
//!
//! Failures are logged and retried at the next interval; the rules in force stay (the
//! local ones until X-Ray's first answer).
//!
//! This module holds the messages; the calls themselves are in
//! [`super::centralized_api`], behind the `xray-api` feature.

use std::time::SystemTime;

use super::rules::RuleSet;
use super::sampler::Target;

/// A message from the X-Ray task to the processor.
#[derive(Debug)]
pub enum Update {
    Rules(RuleSet),
    Targets(Vec<Assignment>),
}

/// X-Ray's target for one rule, with the quota's expiry on the wall clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub rule: String,
    pub fixed_rate: f64,
    pub quota: Option<u32>,
    pub quota_ttl: Option<SystemTime>,
    /// X-Ray's `SamplingBoost`: the boosted rate and when it ends.
    pub boost: Option<(f64, SystemTime)>,
}

impl Assignment {
    /// The target on the sampler's clock: `now_second` is the sampler's second at the
    /// wall-clock time `now`.
    pub fn to_target(&self, now_second: u64, now: SystemTime) -> Target {
        let until = |ttl: Option<SystemTime>| {
            let left = ttl
                .and_then(|ttl| ttl.duration_since(now).ok())
                .unwrap_or_default();
            now_second + left.as_secs()
        };
        Target {
            rule: self.rule.clone(),
            fixed_rate: self.fixed_rate,
            quota: self.quota.map(|q| (q, until(self.quota_ttl))),
            boost: self.boost.map(|(rate, ttl)| (rate, until(Some(ttl)))),
        }
    }
}
