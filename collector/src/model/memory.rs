//! A pipeline's memory limit: bytes of telemetry it holds, with a soft and a hard limit.
//!
//! `queue_size` bounds items, but items vary from a few bytes to megabytes (a log record
//! with a large body, a span with hundreds of attributes), so it cannot bound memory alone.
//! This counts the OTLP-encoded size of what a pipeline holds, from acceptance until the
//! last exporter is done with it (or has written it to its queue on disk):
//!
//! - above `soft_limit_mib`, receivers refuse new requests with a retryable error
//!   (HTTP 503 / gRPC `UNAVAILABLE`), like a full queue;
//! - above `hard_limit_mib`, which a pipeline only reaches when requests already admitted
//!   grow it (several large ones at once), the exporter driver sheds load: a batch that
//!   fails is not retried but counted as failed with reason `memory_limit`, so memory goes
//!   down even while the destination is struggling.
//!
//! ```yaml
//! service:
//!   pipelines:
//!     logs:
//!       memory_limit: { soft_limit_mib: 256, hard_limit_mib: 384 }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use prost::Message;
use serde::Deserialize;

use super::signal::SignalData;

const MIB: usize = 1024 * 1024;

/// `memory_limit` of a pipeline; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimitConfig {
    pub soft_limit_mib: usize,
    pub hard_limit_mib: usize,
}

impl MemoryLimitConfig {
    pub fn is_enabled(&self) -> bool {
        self.soft_limit_mib > 0 || self.hard_limit_mib > 0
    }

    /// Checked at start-up, with the option's path in the message.
    pub fn validate(&self) -> Result<(), String> {
        for (name, mib) in [
            ("soft_limit_mib", self.soft_limit_mib),
            ("hard_limit_mib", self.hard_limit_mib),
        ] {
            if mib.checked_mul(MIB).is_none() {
                return Err(format!("{name} ({mib}) is too large"));
            }
        }
        if self.soft_limit_mib > 0
            && self.hard_limit_mib > 0
            && self.hard_limit_mib < self.soft_limit_mib
        {
            return Err(format!(
                "hard_limit_mib ({}) must be at least soft_limit_mib ({})",
                self.hard_limit_mib, self.soft_limit_mib
            ));
        }
        Ok(())
    }
}

/// Bytes held by one pipeline, shared by its receivers' consumer, its tickets and its
/// exporters' drivers.
#[derive(Debug)]
pub struct MemoryLimiter {
    held: AtomicUsize,
    soft: usize,
    hard: usize,
    gauge: Gauge,
}

impl MemoryLimiter {
    pub fn new(config: MemoryLimitConfig, gauge: Gauge) -> Arc<MemoryLimiter> {
        let limit = |mib: usize| {
            if mib == 0 {
                usize::MAX
            } else {
                mib.saturating_mul(MIB)
            }
        };
        Arc::new(MemoryLimiter {
            held: AtomicUsize::new(0),
            soft: limit(config.soft_limit_mib),
            hard: limit(config.hard_limit_mib),
            gauge,
        })
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// New requests are refused.
    pub fn over_soft(&self) -> bool {
        self.held() >= self.soft
    }

    /// Failed batches are shed instead of retried.
    pub fn over_hard(&self) -> bool {
        self.held() >= self.hard
    }

    pub(crate) fn add(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.gauge.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    pub(crate) fn release(&self, bytes: usize) {
        let before = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(bytes))
            })
            .unwrap_or(0);
        self.gauge
            .set(i64::try_from(before.saturating_sub(bytes)).unwrap_or(i64::MAX));
    }
}

/// The OTLP protobuf size of a batch: what it costs to hold, to within the overhead of the
/// decoded structs, and cheap to compute (no encoding happens).
pub fn encoded_len(data: &SignalData) -> usize {
    match data {
        SignalData::Traces(r) => r.iter().map(Message::encoded_len).sum(),
        SignalData::Metrics(r) => r.iter().map(Message::encoded_len).sum(),
        SignalData::Logs(r) => r.iter().map(Message::encoded_len).sum(),
    }
}

/// Bytes of one batch, counted against its pipeline's limiter until dropped.
#[derive(Debug)]
pub struct ByteClaim {
    bytes: usize,
    limiter: Arc<MemoryLimiter>,
}

impl ByteClaim {
    pub fn new(limiter: Arc<MemoryLimiter>, bytes: usize) -> ByteClaim {
        limiter.add(bytes);
        ByteClaim { bytes, limiter }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `bytes` (at most all) of this claim into a new one.
    pub fn split(&mut self, bytes: usize) -> ByteClaim {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        ByteClaim {
            bytes,
            limiter: self.limiter.clone(),
        }
    }

    pub fn merge(&mut self, mut other: ByteClaim) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for ByteClaim {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.limiter.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(soft: usize, hard: usize) -> (Arc<MemoryLimiter>, Gauge) {
        let gauge = Gauge::default();
        let l = MemoryLimiter::new(
            MemoryLimitConfig {
                soft_limit_mib: soft,
                hard_limit_mib: hard,
            },
            gauge.clone(),
        );
        (l, gauge)
    }

    #[test]
    fn soft_then_hard_as_bytes_are_held() {
        let (l, gauge) = limiter(1, 2);
        let a = ByteClaim::new(l.clone(), MIB / 2);
        assert!(!l.over_soft());
        let b = ByteClaim::new(l.clone(), MIB / 2);
        assert!(l.over_soft() && !l.over_hard());
        let c = ByteClaim::new(l.clone(), MIB);
        assert!(l.over_hard());
        assert_eq!(gauge.get(), 2 * MIB as i64);
        drop((a, c));
        assert!(!l.over_soft());
        drop(b);
        assert_eq!((l.held(), gauge.get()), (0, 0));
    }

    #[test]
    fn split_and_merge_keep_the_total() {
        let (l, _) = limiter(1, 0);
        let mut a = ByteClaim::new(l.clone(), 100);
        let b = a.split(30);
        assert_eq!((a.bytes(), b.bytes(), l.held()), (70, 30, 100));
        let mut c = ByteClaim::new(l.clone(), 5);
        c.merge(b);
        assert_eq!((c.bytes(), l.held()), (35, 105));
        drop(a);
        drop(c);
        assert_eq!(l.held(), 0);
        assert!(!l.over_hard(), "0 = no hard limit");
    }

    #[test]
    fn hard_below_soft_is_refused() {
        let bad = MemoryLimitConfig {
            soft_limit_mib: 10,
            hard_limit_mib: 5,
        };
        assert!(bad.validate().is_err());
        assert!(MemoryLimitConfig::default().validate().is_ok());
        assert!(!MemoryLimitConfig::default().is_enabled());
    }
}
