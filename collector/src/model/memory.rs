//! The process-wide memory budget: bytes of telemetry the collector holds, in one account
//! with a soft and a hard limit (`service.memory_limiter`, see `config::memory_limiter`).
//!
//! `queue_size` bounds items, but items vary from a few bytes to megabytes, and a request
//! costs memory before it is an item at all (its body, then its decoded structs), so one
//! account in bytes sees every place that holds telemetry:
//!
//! - a receiver reserves a request's bounded decoded size ([`super::decoded_size`]) before
//!   decoding it and keeps the reservation until the data is handed to the pipelines;
//! - each pipeline's tickets then hold a claim for the batch (its decoded size,
//!   [`super::decoded_size::held`]) until
//!   the last exporter is done with it, through the batch processor, the tail buffer and
//!   the exporter drivers' retries;
//! - processors and exporters that hold more than their batches (the tail sampler's shared
//!   resources and bookkeeping, the EMF exporter's per-series state) publish it in a gauge
//!   the limiter adds in ([`MemoryLimiter::watch`], estimates kept with
//!   [`super::held_bytes`]).
//!
//! Above the soft limit (limit − spike) receivers refuse new requests with a retryable
//! error (HTTP 503 + `Retry-After` / gRPC `UNAVAILABLE`), before reading their bodies. The
//! spike room above it is for requests already admitted; above the hard limit the exporter
//! drivers shed failed batches (counted with reason `memory_limit`) instead of retrying
//! them, so what is held goes down even while a destination is struggling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::gauge::Gauge;

pub const MIB: usize = 1024 * 1024;

/// The two limits, in bytes, resolved from the configuration at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Above this, new requests are refused.
    pub soft: usize,
    /// Never planned past: a request whose bound exceeds it can never be admitted, and
    /// above it failed batches are shed.
    pub hard: usize,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Held bytes are over the soft limit (or would be): retry later.
    #[error(
        "the collector is over its memory limit ({held_mib} MiB held, {soft_mib} MiB allowed \
         before refusing); retry later"
    )]
    Busy { held_mib: usize, soft_mib: usize },
    /// The request alone could decode to more than the whole limit.
    #[error(
        "the request could decode to up to {bound_mib} MiB, more than the collector's memory \
         limit ({hard_mib} MiB); send smaller requests"
    )]
    TooLarge { bound_mib: usize, hard_mib: usize },
}

/// The one account, shared by receivers, pipelines' tickets and exporter drivers.
#[derive(Debug)]
pub struct MemoryLimiter {
    held: AtomicUsize,
    limits: MemoryLimits,
    /// Bytes held by processors and exporters beyond their batches, each kept current by
    /// its owner.
    watched: RwLock<Vec<Gauge>>,
    gauge: Gauge,
}

impl MemoryLimiter {
    /// `gauge` shows what [`ByteClaim`]s hold on `/metrics`.
    pub fn new(limits: MemoryLimits, gauge: Gauge) -> Arc<MemoryLimiter> {
        Arc::new(MemoryLimiter {
            held: AtomicUsize::new(0),
            limits,
            watched: RwLock::new(Vec::new()),
            gauge,
        })
    }

    pub fn limits(&self) -> MemoryLimits {
        self.limits
    }

    /// Adds what `gauge` says (bytes) to the account, for as long as the limiter lives.
    pub fn watch(&self, gauge: Gauge) {
        self.watched
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(gauge);
    }

    fn watched(&self) -> usize {
        self.watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|g| usize::try_from(g.get()).unwrap_or(0))
            .sum()
    }

    /// Bytes held now: claims and watched processors and exporters.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed) + self.watched()
    }

    /// New requests are refused.
    pub fn over_soft(&self) -> bool {
        self.held() >= self.limits.soft
    }

    /// Failed batches are shed instead of retried.
    pub fn over_hard(&self) -> bool {
        self.held() >= self.limits.hard
    }

    /// Reserves `bytes` if they fit under the soft limit, or if nothing else is held and
    /// they fit under the hard limit (the spike room lets one large request through alone).
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Result<ByteClaim, Refusal> {
        let mib = |b: usize| b.div_ceil(MIB);
        if bytes > self.limits.hard {
            return Err(Refusal::TooLarge {
                bound_mib: mib(bytes),
                hard_mib: mib(self.limits.hard),
            });
        }
        let watched = self.watched();
        let fits = |held: usize| {
            let total = held + watched;
            if total + bytes <= self.limits.soft || total == 0 {
                Some(held + bytes)
            } else {
                None
            }
        };
        match self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, fits)
        {
            Ok(before) => {
                self.show(before + bytes);
                Ok(ByteClaim {
                    bytes,
                    limiter: self.clone(),
                })
            }
            Err(held) => Err(Refusal::Busy {
                held_mib: mib(held + watched),
                soft_mib: mib(self.limits.soft),
            }),
        }
    }

    fn show(&self, held: usize) {
        self.gauge.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    fn add(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.show(now);
    }

    fn release(&self, bytes: usize) {
        let before = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(bytes))
            })
            .unwrap_or(0);
        self.show(before.saturating_sub(bytes));
    }
}

/// Bytes counted against the limiter until dropped.
#[derive(Debug)]
pub struct ByteClaim {
    bytes: usize,
    limiter: Arc<MemoryLimiter>,
}

impl ByteClaim {
    /// Charges `bytes` whatever the limits say: for data already admitted that moves on
    /// (a reservation becomes the batch's claim), never for new requests.
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
        let l = MemoryLimiter::new(MemoryLimits { soft, hard }, gauge.clone());
        (l, gauge)
    }

    #[test]
    fn soft_then_hard_as_bytes_are_held() {
        let (l, gauge) = limiter(MIB, 2 * MIB);
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
    fn reservations_stop_at_the_soft_limit_and_come_back_on_drop() {
        let (l, _) = limiter(100, 150);
        let a = l.try_reserve(60).unwrap();
        let b = l.try_reserve(40).unwrap();
        assert_eq!(
            l.try_reserve(1).unwrap_err(),
            Refusal::Busy {
                held_mib: 1,
                soft_mib: 1
            }
        );
        drop(a);
        let c = l.try_reserve(60).unwrap();
        assert_eq!(l.held(), 100);
        drop((b, c));
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn one_request_may_use_the_spike_room_alone_never_past_the_hard_limit() {
        let (l, _) = limiter(100, 150);
        let big = l
            .try_reserve(140)
            .expect("nothing else held: the spike room is its");
        assert!(matches!(l.try_reserve(1), Err(Refusal::Busy { .. })));
        drop(big);
        assert_eq!(
            l.try_reserve(151).unwrap_err(),
            Refusal::TooLarge {
                bound_mib: 1,
                hard_mib: 1
            }
        );
    }

    #[test]
    fn watched_processor_bytes_count_against_the_same_limit() {
        let (l, _) = limiter(100, 150);
        let tail_buffer = Gauge::default();
        l.watch(tail_buffer.clone());
        tail_buffer.set(90);
        assert_eq!(l.held(), 90);
        assert!(matches!(l.try_reserve(20), Err(Refusal::Busy { .. })));
        let ok = l.try_reserve(10).unwrap();
        assert!(l.over_soft());
        tail_buffer.set(0);
        assert!(!l.over_soft());
        drop(ok);
    }

    #[test]
    fn split_and_merge_keep_the_total() {
        let (l, _) = limiter(MIB, usize::MAX);
        let mut a = ByteClaim::new(l.clone(), 100);
        let b = a.split(30);
        assert_eq!((a.bytes(), b.bytes(), l.held()), (70, 30, 100));
        let mut c = ByteClaim::new(l.clone(), 5);
        c.merge(b);
        assert_eq!((c.bytes(), l.held()), (35, 105));
        drop(a);
        drop(c);
        assert_eq!(l.held(), 0);
    }
}
