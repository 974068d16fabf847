//! The X-Ray task of centralized mode: `GetSamplingRules` and `GetSamplingTargets` with
//! aws-sdk-xray (only in builds with the `xray-api` feature).

use std::time::SystemTime;

use aurastream_proto::sampling::{SamplingRateBoost, SamplingRule};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_xray::Client;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use aws_sdk_xray::error::DisplayErrorContext;
use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::{SamplingBoostStatisticsDocument, SamplingStatisticsDocument};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::centralized::{Assignment, Update};
use crate::processor::xray_sampling::config::CentralizedConfig;
use crate::processor::xray_sampling::rules::{RuleSet, RulesError};
use crate::processor::xray_sampling::sampler::RuleStatistics;

/// What went wrong talking to X-Ray, said so that it can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum CentralizedError {
    #[error("no AWS region: set `centralized.region` or AWS_REGION")]
    NoRegion,
    #[error("GetSamplingRules failed: {0}")]
    Rules(String),
    #[error("X-Ray's sampling rules are not usable: {0}")]
    Invalid(#[from] RulesError),
    #[error("GetSamplingTargets failed: {0}")]
    Targets(String),
}

/// The two calls, on one client.
pub struct SamplingApi {
    client: Client,
    /// Identifies this collector in X-Ray's statistics (24 hex digits, as the SDKs use).
    client_id: String,
}

impl SamplingApi {
    pub async fn new(config: &CentralizedConfig) -> Result<SamplingApi, CentralizedError> {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let mut builder = aws_sdk_xray::config::Builder::from(&base)
            // Polling again at the next interval is the retry.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.timeout)
                    .build(),
            );
        if let Some(region) = &config.region {
            builder = builder.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let built = builder.build();
        if built.region().is_none() {
            return Err(CentralizedError::NoRegion);
        }
        let client_id = format!("{:024x}", rand::random::<u128>() >> 32);
        Ok(SamplingApi {
            client: Client::from_conf(built),
            client_id,
        })
    }

    /// Every rule, across pages, in X-Ray's own shape.
    pub async fn rules(&self) -> Result<Vec<SamplingRule>, CentralizedError> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_sampling_rules()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| CentralizedError::Rules(DisplayErrorContext(&e).to_string()))?;
            rules.extend(
                page.sampling_rule_records()
                    .iter()
                    .filter_map(|r| r.sampling_rule())
                    .map(|r| SamplingRule {
                        rule_name: r.rule_name().map(str::to_string),
                        rule_arn: r.rule_arn().map(str::to_string),
                        priority: i64::from(r.priority()),
                        reservoir_size: i64::from(r.reservoir_size()),
                        fixed_rate: r.fixed_rate(),
                        service_name: r.service_name().to_string(),
                        service_type: r.service_type().to_string(),
                        host: r.host().to_string(),
                        http_method: r.http_method().to_string(),
                        url_path: r.url_path().to_string(),
                        resource_arn: r.resource_arn().to_string(),
                        attributes: r
                            .attributes()
                            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default(),
                        version: Some(i64::from(r.version())),
                        sampling_rate_boost: r.sampling_rate_boost().map(|b| SamplingRateBoost {
                            max_rate: b.max_rate(),
                            cooldown_window_minutes: i64::from(b.cooldown_window_minutes()),
                        }),
                    }),
            );
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(rules),
            }
        }
    }

    /// Reports `statistics` and returns X-Ray's targets.
    pub async fn targets(
        &self,
        statistics: &[RuleStatistics],
    ) -> Result<Vec<Assignment>, CentralizedError> {
        let now = DateTime::from(SystemTime::now());
        let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        let documents = statistics
            .iter()
            .map(|s| {
                SamplingStatisticsDocument::builder()
                    .rule_name(&s.rule)
                    .client_id(&self.client_id)
                    .timestamp(now)
                    .request_count(count(s.requests))
                    .sampled_count(count(s.sampled))
                    .borrow_count(count(s.borrowed))
                    .build()
                    .map_err(|e| CentralizedError::Targets(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let boost_documents = statistics
            .iter()
            .flat_map(|s| s.boost.iter().map(move |b| (s, b)))
            .map(|(s, b)| {
                SamplingBoostStatisticsDocument::builder()
                    .rule_name(&s.rule)
                    .service_name(&b.service)
                    .timestamp(now)
                    .total_count(count(b.total))
                    .anomaly_count(count(b.anomalies))
                    .sampled_anomaly_count(count(b.sampled_anomalies))
                    .build()
                    .map_err(|e| CentralizedError::Targets(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .get_sampling_targets()
            .set_sampling_statistics_documents(Some(documents))
            .set_sampling_boost_statistics_documents(
                (!boost_documents.is_empty()).then_some(boost_documents),
            )
            .send()
            .await
            .map_err(|e| CentralizedError::Targets(DisplayErrorContext(&e).to_string()))?;
        Ok(out
            .sampling_target_documents()
            .iter()
            .filter_map(|d| {
                Some(Assignment {
                    rule: d.rule_name()?.to_string(),
                    fixed_rate: d.fixed_rate(),
                    quota: d.reservoir_quota().and_then(|q| u32::try_from(q).ok()),
                    quota_ttl: d
                        .reservoir_quota_ttl()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                    boost: d.sampling_boost().and_then(|b| {
                        Some((
                            b.boost_rate(),
                            SystemTime::try_from(*b.boost_rate_ttl()).ok()?,
                        ))
                    }),
                })
            })
            .collect())
    }
}

/// X-Ray's rules as a rule set, validated like a rules file.
fn rule_set(rules: &[SamplingRule]) -> Result<RuleSet, CentralizedError> {
    let text = serde_json::to_string(rules).map_err(RulesError::Json)?;
    Ok(RuleSet::parse(&text)?)
}

/// Starts the X-Ray task for processor `id`. Statistics go in on the returned sender
/// (the task ends when it is dropped); updates come out of the receiver.
pub fn spawn(
    id: &str,
    config: CentralizedConfig,
) -> (mpsc::Sender<Vec<RuleStatistics>>, mpsc::Receiver<Update>) {
    let (stats_tx, stats_rx) = mpsc::channel(1);
    let (updates_tx, updates_rx) = mpsc::channel(4);
    tokio::spawn(run(id.to_string(), config, stats_rx, updates_tx));
    (stats_tx, updates_rx)
}

async fn run(
    id: String,
    config: CentralizedConfig,
    mut statistics: mpsc::Receiver<Vec<RuleStatistics>>,
    updates: mpsc::Sender<Update>,
) {
    let api = match SamplingApi::new(&config).await {
        Ok(api) => api,
        Err(e) => {
            tracing::error!(processor = %id, error = %e,
                "centralized sampling disabled; the local rules stay in force");
            return;
        }
    };
    let mut rules_tick = tokio::time::interval(config.rules_interval);
    rules_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<Vec<SamplingRule>> = None;
    let mut reachable = true;
    loop {
        tokio::select! {
            _ = rules_tick.tick() => {
                let update = match api.rules().await {
                    Ok(rules) if last.as_ref() == Some(&rules) => None,
                    Ok(rules) => match rule_set(&rules) {
                        Ok(set) => {
                            tracing::info!(processor = %id, rules = set.rules.len(),
                                "sampling rules from X-Ray in force");
                            last = Some(rules);
                            Some(Update::Rules(set))
                        }
                        Err(e) => {
                            tracing::error!(processor = %id, error = %e,
                                "X-Ray's sampling rules refused; the rules in force stay");
                            None
                        }
                    },
                    Err(e) => {
                        if reachable {
                            tracing::warn!(processor = %id, error = %e,
                                "X-Ray's sampling API unreachable; the rules in force stay");
                        }
                        reachable = false;
                        continue;
                    }
                };
                reachable = true;
                if let Some(u) = update && updates.send(u).await.is_err() {
                    return;
                }
            }
            received = statistics.recv() => {
                let Some(stats) = received else { return };
                match api.targets(&stats).await {
                    Ok(targets) => {
                        if updates.send(Update::Targets(targets)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(processor = %id, error = %e,
                        "sampling statistics not reported; quotas unchanged"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use aurastream_proto::otlp::resource::Resource;
    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::processor::xray_sampling::sampler::{RuleCounters, Sampler, Target, trace_draw};
    use crate::processor::xray_sampling::trace_view::TraceView;

    fn xray_rule(
        name: &str,
        priority: i64,
        service: &str,
        reservoir: i64,
        rate: f64,
    ) -> SamplingRule {
        SamplingRule {
            rule_name: Some(name.into()),
            rule_arn: None,
            priority,
            reservoir_size: reservoir,
            fixed_rate: rate,
            service_name: service.into(),
            service_type: "*".into(),
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            resource_arn: "*".into(),
            attributes: Default::default(),
            version: Some(1),
            sampling_rate_boost: None,
        }
    }

    fn trace(service: &str, n: u64) -> (Vec<u8>, Vec<ResourceSpans>) {
        let mut id = vec![0x5f; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        let span = Span {
            trace_id: id.clone(),
            span_id: vec![1; 8],
            ..Span::default()
        };
        let rs = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        (id, vec![rs])
    }

    fn sampler() -> Sampler {
        let rules = rule_set(&[
            xray_rule("Default", 10000, "*", 1, 0.0),
            xray_rule("Checkout", 1, "checkout", 2, 0.0),
        ])
        .unwrap();
        Sampler::new(rules, &|_| RuleCounters::default())
    }

    /// Keeps of `count` checkout traces in second `second`.
    fn keep_checkout(s: &mut Sampler, count: u64, second: u64) -> usize {
        (0..count)
            .filter(|n| {
                let (id, fragments) = trace("checkout", *n);
                s.decide(&TraceView::new(&fragments), &id, second).keep
            })
            .count()
    }

    #[test]
    fn xray_rules_become_a_rule_set_in_priority_order() {
        let set = rule_set(&[
            xray_rule("Default", 10000, "*", 1, 0.05),
            xray_rule("B", 20, "b", 0, 0.1),
            xray_rule("A", 10, "a", 0, 0.1),
        ])
        .unwrap();
        let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "Default"]);
        assert!(rule_set(&[xray_rule("Bad", 1, "*", 0, 2.0)]).is_err());
    }

    #[test]
    fn statistics_count_requests_keeps_and_borrows_per_rule_and_reset() {
        let mut s = sampler();
        assert_eq!(
            keep_checkout(&mut s, 10, 0),
            2,
            "the reservoir of 2 per second"
        );
        let (id, fragments) = trace("other", 1);
        s.decide(&TraceView::new(&fragments), &id, 0);
        let stats = s.take_statistics();
        let checkout = stats.iter().find(|r| r.rule == "Checkout").unwrap();
        assert_eq!(
            (checkout.requests, checkout.sampled, checkout.borrowed),
            (10, 2, 2)
        );
        let default = stats.iter().find(|r| r.rule == "Default").unwrap();
        assert_eq!(
            (default.requests, default.sampled, default.borrowed),
            (1, 1, 1)
        );
        assert!(s.take_statistics().is_empty(), "reported once");
    }

    #[test]
    fn targets_replace_rate_and_reservoir_until_the_quota_expires() {
        let mut s = sampler();
        let now = SystemTime::now();
        let assignment = Assignment {
            rule: "Checkout".into(),
            fixed_rate: 0.0,
            quota: Some(5),
            quota_ttl: Some(now + Duration::from_secs(10)),
            boost: None,
        };
        let target = assignment.to_target(100, now);
        assert_eq!(target.quota, Some((5, 110)));
        s.apply_targets(&[target]);
        assert_eq!(
            keep_checkout(&mut s, 20, 105),
            5,
            "the quota, not the reservoir"
        );
        let stats = s.take_statistics();
        let checkout = stats.iter().find(|r| r.rule == "Checkout").unwrap();
        assert_eq!(
            (checkout.sampled, checkout.borrowed),
            (5, 0),
            "quota keeps are not borrowed"
        );
        assert_eq!(
            keep_checkout(&mut s, 20, 110),
            2,
            "expired: borrowing again"
        );

        s.apply_targets(&[Target {
            rule: "Checkout".into(),
            fixed_rate: 1.0,
            quota: None,
            boost: None,
        }]);
        assert_eq!(keep_checkout(&mut s, 20, 111), 20, "the target's rate");
        s.apply_targets(&[Target {
            rule: "Unknown".into(),
            fixed_rate: 1.0,
            quota: None,
            boost: None,
        }]);
    }

    /// `count` checkout traces of `service` in second `second`, every other one failed
    /// (HTTP 500); the keeps.
    fn failing(s: &mut Sampler, service: &str, count: u64, second: u64) -> usize {
        (0..count)
            .filter(|n| {
                let (id, mut fragments) = trace(service, 1_000 + *n);
                if n % 2 == 0 {
                    fragments[0].scope_spans[0].spans[0]
                        .attributes
                        .push(KeyValue {
                            key: "http.response.status_code".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(500)),
                            }),
                            ..KeyValue::default()
                        });
                }
                s.decide(&TraceView::new(&fragments), &id, second).keep
            })
            .count()
    }

    fn boosted_sampler() -> Sampler {
        let mut checkout = xray_rule("Checkout", 1, "checkout*", 2, 0.0);
        checkout.sampling_rate_boost = Some(SamplingRateBoost {
            max_rate: 0.5,
            cooldown_window_minutes: 5,
        });
        let rules = rule_set(&[xray_rule("Default", 10000, "*", 1, 0.0), checkout]).unwrap();
        Sampler::new(rules, &|_| RuleCounters::default()).with_boosts_from_xray()
    }

    #[test]
    fn boost_rules_report_traces_and_faults_per_service() {
        let mut s = boosted_sampler();
        let kept = failing(&mut s, "checkout", 10, 0) + failing(&mut s, "checkout-eu", 4, 0);
        assert_eq!(
            kept, 2,
            "the reservoir only: X-Ray's rules are not boosted locally"
        );
        let (id, fragments) = trace("other", 1);
        s.decide(&TraceView::new(&fragments), &id, 0);
        let stats = s.take_statistics();
        let checkout = stats.iter().find(|r| r.rule == "Checkout").unwrap();
        let by_service: Vec<_> = checkout
            .boost
            .iter()
            .map(|b| {
                (
                    b.service.as_str(),
                    b.total,
                    b.anomalies,
                    b.sampled_anomalies,
                )
            })
            .collect();
        // The reservoir kept the first two traces of the second: both failed (n = 0, 1
        // ... every even n fails), one of them.
        assert_eq!(
            by_service,
            [("checkout", 10, 5, 1), ("checkout-eu", 4, 2, 0)]
        );
        let default = stats.iter().find(|r| r.rule == "Default").unwrap();
        assert!(default.boost.is_empty(), "no boost, no boost statistics");
        assert!(
            s.take_statistics().is_empty(),
            "reported once, boost statistics included"
        );
    }

    #[test]
    fn an_xray_boost_raises_the_rate_within_max_rate_until_its_ttl() {
        let mut s = boosted_sampler();
        let now = SystemTime::now();
        let assignment = Assignment {
            rule: "Checkout".into(),
            fixed_rate: 0.0,
            quota: None,
            quota_ttl: None,
            boost: Some((0.9, now + Duration::from_secs(60))),
        };
        let target = assignment.to_target(100, now);
        assert_eq!(target.boost, Some((0.9, 160)));
        s.apply_targets(&[target]);
        let draws: Vec<f64> = (0..200)
            .map(|n| trace_draw(&trace("checkout", n).0))
            .collect();
        let at_max_rate = draws.iter().filter(|d| **d < 0.5).count();
        assert_eq!(
            keep_checkout(&mut s, 200, 120),
            2 + draws[2..].iter().filter(|d| **d < 0.5).count(),
            "the reservoir, then X-Ray's boost capped at the rule's MaxRate 0.5"
        );
        assert!(at_max_rate > 60, "{at_max_rate} of 200 under 0.5");
        assert_eq!(keep_checkout(&mut s, 200, 160), 2, "the TTL is over");
    }

    #[test]
    fn an_expired_ttl_gives_no_quota_time() {
        let now = SystemTime::now();
        let a = Assignment {
            rule: "r".into(),
            fixed_rate: 0.5,
            quota: Some(3),
            quota_ttl: Some(now - Duration::from_secs(5)),
            boost: None,
        };
        assert_eq!(a.to_target(7, now).quota, Some((3, 7)));
        let none = Assignment {
            quota: None,
            quota_ttl: None,
            ..a
        };
        assert_eq!(none.to_target(7, now).quota, None);
    }
}
