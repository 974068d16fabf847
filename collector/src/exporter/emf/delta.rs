//! Cumulative series into deltas.
//!
//! CloudWatch adds up what it is sent per period, so a cumulative counter sent as is would
//! be counted again and again. Each series (resource + metric + attributes) keeps its last
//! cumulative snapshot; the next point becomes the difference. A restart of the source
//! (the value goes down, a bucket count goes down, the bucket layout or the start time
//! changes) is a reset: the new point's value is what accumulated since the new start, so
//! it is sent as the delta.
//!
//! The snapshots grow with the number of series, not with what is in flight, so their
//! size is charged to the memory budget (the exporter's `held_bytes` gauge), kept current
//! as series are added, updated and swept out.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use crate::model::held_bytes::{Charge, btree_bytes, hash_table_bytes};

/// Series not seen for this long are forgotten (their next point counts as a first one).
const SERIES_TTL: Duration = Duration::from_secs(3600);
/// How often forgotten series are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// A cumulative value of any kind: a number (`sum` only), a histogram (bucket counts keyed
/// by `(sign, index)`, `count`, `sum`) or a summary (`count`, `sum`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cumulative {
    pub start_time: u64,
    pub time: u64,
    /// What the bucket keys mean (explicit bounds or exponential scale); a change is a reset.
    pub layout: Vec<u64>,
    pub buckets: BTreeMap<(i8, i64), u64>,
    pub count: u64,
    pub sum: f64,
    /// The sum can only grow (monotonic counters): a decrease is a reset.
    pub sum_is_monotonic: bool,
}

impl Cumulative {
    pub fn number(start_time: u64, time: u64, value: f64) -> Cumulative {
        Cumulative {
            start_time,
            time,
            layout: Vec::new(),
            buckets: BTreeMap::new(),
            count: 0,
            sum: value,
            sum_is_monotonic: true,
        }
    }

    fn is_reset_of(&self, prev: &Cumulative) -> bool {
        (self.start_time != 0 && prev.start_time != 0 && self.start_time != prev.start_time)
            || self.layout != prev.layout
            || self.count < prev.count
            || (self.sum_is_monotonic && self.sum < prev.sum)
            || prev
                .buckets
                .iter()
                .any(|(k, n)| self.buckets.get(k).copied().unwrap_or(0) < *n)
    }

    /// Heap data of the snapshot: its layout and buckets.
    fn heap_bytes(&self) -> usize {
        self.layout.capacity() * size_of::<u64>()
            + btree_bytes::<(i8, i64), u64>(self.buckets.len())
    }

    fn minus(&self, prev: &Cumulative) -> Cumulative {
        let buckets = self
            .buckets
            .iter()
            .map(|(k, n)| (*k, n - prev.buckets.get(k).copied().unwrap_or(0)))
            .collect();
        Cumulative {
            buckets,
            count: self.count - prev.count,
            sum: self.sum - prev.sum,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// No earlier point: this is the cumulative value itself.
    First(Cumulative),
    /// The change since the previous point.
    Change(Cumulative),
    /// The source restarted; this is what accumulated since the restart.
    Reset(Cumulative),
    /// Not newer than the previous point (a duplicate or out of order): nothing to send.
    Stale,
}

struct Entry {
    last: Cumulative,
    seen: Instant,
}

pub struct DeltaState {
    series: HashMap<String, Entry>,
    last_sweep: Option<Instant>,
    /// The latest point time (Unix nanoseconds) of any series forgotten so far: a series
    /// that started before it may be a forgotten one coming back.
    forgotten_until: u64,
    /// The series' keys and snapshots.
    entries: Charge,
    /// The map's own allocation.
    table: Charge,
}

impl DeltaState {
    /// Keeps `held` (bytes) current with what the series hold.
    pub fn new(held: &Gauge) -> DeltaState {
        DeltaState {
            series: HashMap::new(),
            last_sweep: None,
            forgotten_until: 0,
            entries: Charge::new(held, 0),
            table: Charge::new(held, 0),
        }
    }

    /// Turns `current` (a cumulative point of series `key`) into a delta and remembers it.
    pub fn delta(&mut self, key: String, current: Cumulative, now: Instant) -> Delta {
        self.sweep(now);
        match self.series.get_mut(&key) {
            None => {
                self.entries.add(key.capacity() + current.heap_bytes());
                self.series.insert(
                    key,
                    Entry {
                        last: current.clone(),
                        seen: now,
                    },
                );
                self.charge_table();
                Delta::First(current)
            }
            Some(entry) => {
                if current.time <= entry.last.time {
                    return Delta::Stale;
                }
                let out = if current.is_reset_of(&entry.last) {
                    Delta::Reset(current.clone())
                } else {
                    Delta::Change(current.minus(&entry.last))
                };
                self.entries.sub(entry.last.heap_bytes());
                self.entries.add(current.heap_bytes());
                entry.last = current;
                entry.seen = now;
                out
            }
        }
    }

    /// The latest point time of any forgotten series (0: none forgotten).
    pub fn forgotten_until(&self) -> u64 {
        self.forgotten_until
    }

    /// Forgets series not seen for [`SERIES_TTL`], at most once per [`SWEEP_EVERY`]. Runs
    /// before every point and from the exporter's housekeeping, so an exporter that stops
    /// receiving metrics gives the memory of its series back too.
    pub fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY);
        if due {
            let mut forgotten_until = self.forgotten_until;
            let mut freed = 0;
            self.series.retain(|key, e| {
                let keep = now.saturating_duration_since(e.seen) < SERIES_TTL;
                if !keep {
                    forgotten_until = forgotten_until.max(e.last.time);
                    freed += key.capacity() + e.last.heap_bytes();
                }
                keep
            });
            self.entries.sub(freed);
            self.forgotten_until = forgotten_until;
            self.last_sweep = Some(now);
            // After a burst of series the table would keep their room for good.
            if self.series.len() * 4 < self.series.capacity() {
                self.series.shrink_to(self.series.len() * 2);
            }
            self.charge_table();
        }
    }

    fn charge_table(&mut self) {
        self.table
            .set(hash_table_bytes::<(String, Entry)>(self.series.capacity()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(start: u64, time: u64, v: f64) -> Cumulative {
        Cumulative::number(start, time, v)
    }

    fn value(d: &Delta) -> Option<f64> {
        match d {
            Delta::First(c) | Delta::Change(c) | Delta::Reset(c) => Some(c.sum),
            Delta::Stale => None,
        }
    }

    #[test]
    fn counter_becomes_deltas_across_resets() {
        let mut s = DeltaState::new(&Gauge::default());
        let t = Instant::now();
        let k = || "series".to_string();
        assert_eq!(s.delta(k(), n(1, 10, 5.0), t), Delta::First(n(1, 10, 5.0)));
        assert_eq!(value(&s.delta(k(), n(1, 20, 8.0), t)), Some(3.0));
        assert!(matches!(s.delta(k(), n(1, 30, 8.0), t), Delta::Change(_)));
        // Value went down: the process restarted without a new start time.
        let d = s.delta(k(), n(1, 40, 2.0), t);
        assert_eq!(d, Delta::Reset(n(1, 40, 2.0)));
        assert_eq!(value(&s.delta(k(), n(1, 50, 6.0), t)), Some(4.0));
        // Start time changed: a reset even though the value is higher.
        let d = s.delta(k(), n(45, 60, 100.0), t);
        assert!(matches!(d, Delta::Reset(_)));
        assert_eq!(value(&d), Some(100.0));
        // Duplicates and out-of-order points are stale.
        assert_eq!(s.delta(k(), n(45, 60, 100.0), t), Delta::Stale);
        assert_eq!(s.delta(k(), n(45, 55, 90.0), t), Delta::Stale);
    }

    #[test]
    fn histogram_buckets_are_differenced_and_bucket_decrease_is_a_reset() {
        let h = |time, counts: &[u64], sum| Cumulative {
            start_time: 1,
            time,
            layout: vec![10f64.to_bits(), 20f64.to_bits()],
            buckets: counts
                .iter()
                .enumerate()
                .map(|(i, c)| ((0, i as i64), *c))
                .collect(),
            count: counts.iter().sum(),
            sum,
            sum_is_monotonic: false,
        };
        let mut s = DeltaState::new(&Gauge::default());
        let t = Instant::now();
        s.delta("h".into(), h(10, &[1, 2, 3], 60.0), t);
        match s.delta("h".into(), h(20, &[2, 2, 5], 100.0), t) {
            Delta::Change(d) => {
                assert_eq!(
                    d.buckets.values().copied().collect::<Vec<_>>(),
                    vec![1, 0, 2]
                );
                assert_eq!(d.count, 3);
                assert_eq!(d.sum, 40.0);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.delta("h".into(), h(30, &[2, 1, 9], 120.0), t),
            Delta::Reset(_)
        ));
        let mut other_layout = h(40, &[3, 3, 9], 150.0);
        other_layout.layout = vec![5f64.to_bits()];
        assert!(matches!(
            s.delta("h".into(), other_layout, t),
            Delta::Reset(_)
        ));
    }

    #[test]
    fn idle_series_are_forgotten() {
        let mut s = DeltaState::new(&Gauge::default());
        let t = Instant::now();
        s.delta("a".into(), n(1, 10, 1.0), t);
        let later = t + SERIES_TTL + SWEEP_EVERY;
        assert!(matches!(
            s.delta("b".into(), n(1, 10, 1.0), later),
            Delta::First(_)
        ));
        assert_eq!(s.series.len(), 1);
        assert_eq!(s.forgotten_until(), 10, "the last point time of `a`");
        assert!(matches!(
            s.delta("a".into(), n(1, 20, 2.0), later),
            Delta::First(_)
        ));
    }

    #[test]
    fn held_bytes_grow_with_series_and_fall_when_they_are_swept_out() {
        let held = Gauge::default();
        let mut s = DeltaState::new(&held);
        let t = Instant::now();
        let histogram = |time| Cumulative {
            layout: vec![0; 16],
            buckets: (0..16).map(|i| ((0, i), 1)).collect(),
            count: 16,
            ..n(1, time, 1.0)
        };
        let mut before = 0;
        for i in 0..100 {
            s.delta(format!("series-{i}"), histogram(10), t);
            let now = held.get();
            assert!(now > before, "series {i} is charged: {now} after {before}");
            before = now;
        }
        // The 100 keys (9 or 10 bytes) and snapshots (16 layout words, 16 buckets) alone.
        let snapshots = 100 * (16 * 8 + btree_bytes::<(i8, i64), u64>(16));
        assert!(held.get() as usize > snapshots + 900, "{}", held.get());
        // A new point of a known series replaces its snapshot: nothing more is held.
        let full = held.get();
        s.delta("series-0".into(), histogram(20), t);
        assert_eq!(held.get(), full);

        // An hour later one new series arrives and the sweep forgets the other 100.
        s.delta("new".into(), n(1, 10, 1.0), t + SERIES_TTL + SWEEP_EVERY);
        assert_eq!(s.series.len(), 1);
        let one = "new".len() + hash_table_bytes::<(String, Entry)>(s.series.capacity());
        assert_eq!(held.get() as usize, one);
        drop(s);
        assert_eq!(held.get(), 0, "everything charged is given back");
    }

    #[test]
    fn idle_series_are_swept_out_without_a_new_point() {
        let held = Gauge::default();
        let mut s = DeltaState::new(&held);
        let t = Instant::now();
        for i in 0..10 {
            s.delta(format!("series-{i}"), n(1, 10, 1.0), t);
        }
        assert!(held.get() > 0);
        s.sweep(t + SWEEP_EVERY);
        assert_eq!(s.series.len(), 10, "not idle for long enough yet");
        s.sweep(t + SERIES_TTL + 2 * SWEEP_EVERY);
        assert_eq!(s.series.len(), 0);
        assert_eq!(held.get(), 0, "the memory is back in the budget");
        assert_eq!(s.forgotten_until(), 10);
    }
}
