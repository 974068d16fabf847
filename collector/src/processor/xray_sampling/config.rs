//! Options of the `xray_sampling` processor.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::rules::load_rules_file;
use crate::component::validate::{Invalid, check_duration, check_http_url};

/// ```yaml
/// processors:
///   xray_sampling:
///     rules_file: /etc/aurastream/sampling-rules.json  # absent: the guide's rules
///     decision_wait: 5s          # after the root span arrives, wait this long for children
///     max_wait: 30s              # decide anyway this long after a trace's first span
///     num_traces: 50000          # traces waiting at once; the oldest is decided early
///     decision_cache_size: 100000  # decided trace ids remembered for late spans
///     honor_upstream_sampled: false  # keep traces whose root span has the W3C sampled flag
///     rules_poll_interval: 5s    # how often `rules_file` is checked for changes
///     max_spans_per_trace: 10000 # a trace holding this many spans is decided at once
///     max_bytes_per_trace: 8388608  # likewise for its encoded bytes (8 MiB)
///     centralized:               # absent: local rules only
///       endpoint: http://127.0.0.1:2000  # X-Ray API; absent: the region's endpoint
///       region: eu-west-1        # absent: the standard AWS region chain
///       rules_interval: 5m       # GetSamplingRules, as the X-Ray SDKs poll
///       targets_interval: 10s    # GetSamplingTargets (statistics out, quotas back)
///       timeout: 5s
/// ```
///
/// With `centralized`, the rules come from X-Ray's sampling API; until they arrive, and
/// whenever X-Ray cannot be reached before they have, the local rules (`rules_file` or
/// the guide's) decide. Once X-Ray's rules are in force they stay until X-Ray sends new
/// ones, and the local file is no longer applied.
///
/// `rules_file` may hold AuraStream's rule document (the monitoring guide's
/// `SAMPLING_RULES`), an X-Ray SDK local rules file, or X-Ray centralized rules (the output
/// of `aws xray get-sampling-rules`, or a JSON list of `SamplingRule`). It is re-read when
/// it changes and on SIGHUP; a file that does not parse is refused and the rules in force
/// stay.
///
/// `max_spans_per_trace` and `max_bytes_per_trace` keep one trace from holding the
/// pipeline: without them a trace whose root never arrives holds its spans (and their share
/// of the pipeline's `queue_size`) until `max_wait`, and a big enough one makes every
/// sender retry meanwhile. A trace that reaches either limit is decided at once with what
/// has arrived, and its later spans follow that decision without waiting. The defaults
/// leave room for ten such traces in the default `queue_size` of 100,000 and are far
/// above what request traces hold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct XRaySamplingConfig {
    pub rules_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub decision_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    pub num_traces: usize,
    pub decision_cache_size: usize,
    pub honor_upstream_sampled: bool,
    #[serde(with = "humantime_serde")]
    pub rules_poll_interval: Duration,
    pub max_spans_per_trace: usize,
    pub max_bytes_per_trace: usize,
    pub centralized: Option<CentralizedConfig>,
}

/// Where and how often to ask X-Ray's sampling API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CentralizedConfig {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    #[serde(with = "humantime_serde")]
    pub rules_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub targets_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for CentralizedConfig {
    fn default() -> Self {
        CentralizedConfig {
            endpoint: None,
            region: None,
            rules_interval: Duration::from_secs(300),
            targets_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Default for XRaySamplingConfig {
    fn default() -> Self {
        XRaySamplingConfig {
            rules_file: None,
            decision_wait: Duration::from_secs(5),
            max_wait: Duration::from_secs(30),
            num_traces: 50_000,
            decision_cache_size: 100_000,
            honor_upstream_sampled: false,
            rules_poll_interval: Duration::from_secs(5),
            max_spans_per_trace: 10_000,
            max_bytes_per_trace: 8 * 1024 * 1024,
            centralized: None,
        }
    }
}

impl XRaySamplingConfig {
    /// Checks the limits and reads the rules file, so that `validate` reports a bad rule
    /// before anything starts.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.num_traces == 0 {
            return Err("num_traces must be at least 1".into());
        }
        if self.max_wait.is_zero() {
            return Err("max_wait must be greater than 0".into());
        }
        if self.max_wait < self.decision_wait {
            return Err(Invalid::Order {
                option: "max_wait",
                value: humantime::format_duration(self.max_wait).to_string(),
                relation: "at least",
                other: "decision_wait",
                other_value: humantime::format_duration(self.decision_wait).to_string(),
            });
        }
        if self.max_spans_per_trace == 0 || self.max_bytes_per_trace == 0 {
            return Err("max_spans_per_trace and max_bytes_per_trace must be at least 1".into());
        }
        if self.rules_poll_interval.is_zero() {
            return Err("rules_poll_interval must be greater than 0".into());
        }
        // Added to the clock: a value past its range would panic while running.
        check_duration("decision_wait", self.decision_wait)?;
        check_duration("max_wait", self.max_wait)?;
        check_duration("rules_poll_interval", self.rules_poll_interval)?;
        #[cfg(not(feature = "xray-api"))]
        if self.centralized.is_some() {
            return Err(
                "centralized: X-Ray centralized sampling is not in this build (lean \
                 Lambda layer, built without the `xray-api` feature); use local rules, or the \
                 full layer"
                    .into(),
            );
        }
        if let Some(c) = &self.centralized {
            check_duration("centralized.rules_interval", c.rules_interval)?;
            check_duration("centralized.targets_interval", c.targets_interval)?;
            check_duration("centralized.timeout", c.timeout)?;
        }
        if let Some(c) = &self.centralized {
            if c.rules_interval.is_zero() || c.targets_interval.is_zero() || c.timeout.is_zero() {
                return Err(
                    "centralized: rules_interval, targets_interval and timeout must be \
                            greater than 0"
                        .into(),
                );
            }
            if let Some(e) = &c.endpoint {
                check_http_url("centralized.endpoint", e)?;
            }
        }
        if let Some(path) = &self.rules_file {
            load_rules_file(path).map_err(|e| Invalid::cause("rules_file", e))?;
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for XRaySamplingConfig {
    const TYPE: &'static str = "xray_sampling";
}
