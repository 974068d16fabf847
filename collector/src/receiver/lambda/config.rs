//! Options of the `lambda` receiver: the extension's Telemetry API subscription.

use std::time::Duration;

use serde::Deserialize;

use crate::component::factory::LambdaFlush;
use crate::component::validate::Invalid;

/// ```yaml
/// receivers:
///   lambda:
///     endpoint: 0.0.0.0:4325                 # where the Telemetry API listener binds
///     destination_host: sandbox.localdomain  # the host Lambda is told to send to
///     namespace: AuraStream/Lambda           # aws.emf.namespace of the platform metrics
///     flush: adaptive                        # end-of-invocation | periodic | adaptive
///     flush_interval: 10s                    # background exports (periodic, adaptive)
///     flush_timeout: 1s                      # per-invocation flush budget
///     buffering: { max_items: 1000, max_bytes: 262144, timeout: 25ms }
/// ```
///
/// Only runs in extension mode (inside Lambda, or with `--lambda-extension`). List it in a
/// `traces` pipeline to get one span per invocation, in a `metrics` pipeline for the
/// `platform.report` metrics, and in a `logs` pipeline to collect the function's own
/// log lines (which also subscribes to them: off unless a logs pipeline lists it).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaReceiverConfig {
    /// Address the listener binds. In Lambda it must be reachable as
    /// `sandbox.localdomain`, which loopback is not: hence `0.0.0.0` (the sandbox has no
    /// inbound network, so this exposes nothing). Port 0 picks a free port.
    pub endpoint: String,
    /// Host name put in the subscription's destination URI, with the listener's port.
    pub destination_host: String,
    /// `aws.emf.namespace` attribute of the `Duration`, `BilledDuration`, ... metrics.
    pub namespace: String,
    /// When the extension exports: `end-of-invocation` (before each next event, which
    /// Lambda bills), `periodic` (in the background) or `adaptive` (the first while
    /// invocations are rare, the second once they come more often than `flush_interval`).
    pub flush: LambdaFlush,
    /// How often `periodic` (and `adaptive`, when frequent) exports in the background; also
    /// the gap between invocations under which `adaptive` counts them as frequent.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// After an invocation's `platform.runtimeDone` (when flushed at its end), how long the
    /// extension may spend exporting before it asks Lambda for the next event (which lets
    /// the sandbox freeze); also how long a background export waits for the exporters.
    /// What is not exported by then stays queued for the next flush or SHUTDOWN.
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
    pub buffering: BufferingConfig,
}

impl Default for LambdaReceiverConfig {
    fn default() -> Self {
        LambdaReceiverConfig {
            endpoint: "0.0.0.0:4325".into(),
            destination_host: "sandbox.localdomain".into(),
            namespace: "AuraStream/Lambda".into(),
            flush: LambdaFlush::default(),
            flush_interval: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(1),
            buffering: BufferingConfig::default(),
        }
    }
}

/// How Lambda batches telemetry before delivering it. A short `timeout` matters: the
/// extension learns that an invocation ended from `platform.runtimeDone`, which arrives at
/// most `timeout` after it happened, and only then flushes and lets the sandbox freeze.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BufferingConfig {
    pub max_items: u32,
    pub max_bytes: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for BufferingConfig {
    fn default() -> Self {
        BufferingConfig {
            max_items: 1000,
            max_bytes: 262_144,
            timeout: Duration::from_millis(25),
        }
    }
}

impl LambdaReceiverConfig {
    /// The ranges the Telemetry API accepts, checked here so a bad value fails at start-up
    /// with its option name rather than as a 400 from Lambda during init.
    pub fn validate(&self) -> Result<(), Invalid> {
        let b = &self.buffering;
        if !(1000..=10_000).contains(&b.max_items) {
            return Err(Invalid::out_of_range(
                "buffering.max_items",
                1000.0,
                10000.0,
                b.max_items.into(),
            ));
        }
        if !(262_144..=1_048_576).contains(&b.max_bytes) {
            return Err(Invalid::out_of_range(
                "buffering.max_bytes",
                262_144.0,
                1_048_576.0,
                b.max_bytes.into(),
            ));
        }
        if !(25..=30_000).contains(&b.timeout.as_millis()) {
            return Err("buffering.timeout must be between 25ms and 30s".into());
        }
        if self.flush_timeout.is_zero() {
            return Err("flush_timeout must be greater than 0".into());
        }
        crate::component::validate::check_duration("flush_timeout", self.flush_timeout)?;
        if self.flush_interval.is_zero() {
            return Err("flush_interval must be greater than 0".into());
        }
        crate::component::validate::check_duration("flush_interval", self.flush_interval)?;
        if self.destination_host.is_empty() {
            return Err("destination_host must not be empty".into());
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for LambdaReceiverConfig {
    const TYPE: &'static str = "lambda";
}
