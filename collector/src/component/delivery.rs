//! What every exporter's options share: `retry_on_failure` and `sending_queue`, as in the
//! OpenTelemetry Collector's exporter helper. The types live here, below both the
//! exporters (whose options embed them) and the topology (whose driver and queue on disk
//! carry them out).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::validate::Invalid;
use super::validate::check_duration;

/// `retry_on_failure`, as in the OpenTelemetry Collector's exporter helper.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Wait before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Give up on a batch (counting it as failed) after retrying this long; 0 = never.
    #[serde(with = "humantime_serde")]
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
}

impl RetryConfig {
    /// Refuses values the backoff arithmetic cannot hold (a wait of centuries, an infinite
    /// multiplier): they would panic in the middle of a retry, not at start-up.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_duration("initial_interval", self.initial_interval)?;
        check_duration("max_interval", self.max_interval)?;
        check_duration("max_elapsed_time", self.max_elapsed_time)?;
        if !(1.0..=MAX_MULTIPLIER).contains(&self.multiplier) {
            return Err(Invalid::out_of_range(
                "multiplier",
                1.0,
                MAX_MULTIPLIER,
                self.multiplier,
            ));
        }
        Ok(())
    }
}

/// Largest `retry_on_failure.multiplier`: a year times this still fits a `Duration`.
const MAX_MULTIPLIER: f64 = 1000.0;

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 2.0,
        }
    }
}

/// `sending_queue`: how many batches an exporter works on at once, and optionally a queue
/// on disk that survives restarts (see [`crate::topology::persistent_queue`]).
///
/// ```yaml
/// sending_queue:
///   num_consumers: 4
///   storage: /var/lib/aurastream/queue   # omit: batches wait in memory only
///   fsync: batch                         # always | batch (<= 100 ms) | never
///   max_bytes: 268435456                 # bytes on disk per exporter and pipeline
///   when_full: block                     # block (push back on senders) | drop_oldest
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueueConfig {
    /// Concurrent exports. 1 keeps batches in order (files, stdout); AWS destinations
    /// usually take several.
    pub num_consumers: usize,
    /// Directory of the queue on disk; each exporter and pipeline gets a subdirectory.
    pub storage: Option<PathBuf>,
    pub fsync: Fsync,
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

impl Default for SendingQueueConfig {
    fn default() -> Self {
        SendingQueueConfig {
            num_consumers: 1,
            storage: None,
            fsync: Fsync::Batch,
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::Block,
        }
    }
}

/// When written data is forced to disk.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// After every append and acknowledgement: survives power loss, slowest.
    Always,
    /// At most every 100 ms and when a segment is closed: a power loss may lose the last
    /// moments; a killed process loses nothing (the OS has the data).
    #[default]
    Batch,
    /// Left to the operating system.
    Never,
}

/// What to do when the queue on disk reaches `max_bytes`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking batches: the pipeline fills and receivers push back on senders.
    #[default]
    Block,
    /// Discard the oldest waiting batch, counting its items as dropped (`queue_full`).
    DropOldest,
}
