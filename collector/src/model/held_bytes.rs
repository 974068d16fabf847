//! Estimates of what long-lived component state holds, kept in a gauge the memory budget
//! watches ([`super::memory::MemoryLimiter::watch`]).
//!
//! State that outlives batches (a tail buffer, an exporter's per-series state) grows with
//! what it has seen, not with what is in flight, so no batch claim covers it. Its owner
//! adds and removes its share as entries come and go ([`Charge`]): walking the state to
//! measure it on every change would cost more than the work it accounts for. The table
//! estimates below are what the owner charges for its maps' own allocations.

use std::mem::size_of;

use prometheus_client::metrics::gauge::Gauge;

/// Bytes counted in a gauge for as long as this value lives.
#[derive(Debug)]
pub struct Charge {
    bytes: usize,
    held: Gauge,
}

impl Charge {
    pub fn new(held: &Gauge, bytes: usize) -> Charge {
        let mut charge = Charge {
            bytes: 0,
            held: held.clone(),
        };
        charge.add(bytes);
        charge
    }

    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.held.inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn sub(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.held.dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn set(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            self.add(bytes - self.bytes);
        } else {
            self.sub(self.bytes - bytes);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.held
            .dec_by(i64::try_from(self.bytes).unwrap_or(i64::MAX));
    }
}

/// What a hash table with room for `capacity` entries allocates: a power of two of
/// buckets, at most seven eighths full, each with a control byte.
pub fn hash_table_bytes<T>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (size_of::<T>() + 1) + 16
}

/// An estimate for a B-tree of `len` entries: nodes of up to eleven entries, two thirds
/// full on average.
pub fn btree_bytes<K, V>(len: usize) -> usize {
    len * (size_of::<K>() + size_of::<V>()) * 3 / 2
}
