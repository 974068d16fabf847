//! A guard against dimension explosions.
//!
//! Every distinct dimension-value combination is a separate CloudWatch metric, billed per
//! month. An attribute such as `request_id` used as a dimension would create one metric per
//! request. So each metric may have at most `max_dimension_sets_per_metric` distinct label
//! combinations per interval; further combinations are folded into one whose values are
//! all `_other` (the data still counts toward totals), and a warning names the metric once
//! per interval.
//!
//! What it remembers (at most `max_dimension_sets_per_metric` fingerprints per metric,
//! forgotten each interval) is charged to the memory budget through the exporter's
//! `held_bytes` gauge: the number of metrics is not bounded.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use crate::model::held_bytes::{Charge, hash_table_bytes};

/// The value folded series get for every label.
pub const OTHER: &str = "_other";

pub struct CardinalityGuard {
    max: usize,
    interval: Duration,
    window_start: Option<Instant>,
    /// (namespace, metric) -> fingerprints of the label sets admitted this interval.
    seen: HashMap<MetricKey, HashSet<u64>>,
    warned: HashSet<MetricKey>,
    /// The names and fingerprint sets in `seen` and `warned`.
    entries: Charge,
    /// The two maps' own allocations.
    tables: Charge,
}

type MetricKey = (String, String);

impl CardinalityGuard {
    /// Keeps `held` (bytes) current with what the guard remembers.
    pub fn new(max: usize, interval: Duration, held: &Gauge) -> CardinalityGuard {
        CardinalityGuard {
            max: max.max(1),
            interval,
            window_start: None,
            seen: HashMap::new(),
            warned: HashSet::new(),
            entries: Charge::new(held, 0),
            tables: Charge::new(held, 0),
        }
    }

    /// Whether a point with these labels keeps them (`true`) or must be folded (`false`).
    pub fn admit(
        &mut self,
        namespace: &str,
        metric: &str,
        labels: &BTreeMap<String, String>,
        now: Instant,
    ) -> bool {
        if labels.is_empty() {
            return true;
        }
        self.expire(now);
        if self.window_start.is_none() {
            self.window_start = Some(now);
        }
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        let fingerprint = h.finish();
        let key = (namespace.to_string(), metric.to_string());
        let set = match self.seen.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.entries.add(key_bytes(e.key()));
                e.insert(HashSet::new())
            }
        };
        if set.contains(&fingerprint) {
            return true;
        }
        if set.len() < self.max {
            let before = hash_table_bytes::<u64>(set.capacity());
            set.insert(fingerprint);
            self.entries
                .add(hash_table_bytes::<u64>(set.capacity()) - before);
            self.charge_tables();
            return true;
        }
        let key_size = key_bytes(&key);
        if self.warned.insert(key) {
            self.entries.add(key_size);
            self.charge_tables();
            tracing::warn!(
                namespace,
                metric,
                limit = self.max,
                "metric has more dimension combinations than max_dimension_sets_per_metric; \
                 further combinations are folded into `_other` for this interval \
                 (is a high-cardinality attribute such as a request id used as a dimension?)"
            );
        }
        false
    }

    /// Ends the interval once it is over, forgetting what it admitted. Runs before every
    /// point and from the exporter's housekeeping, so the memory goes back to the budget
    /// even when no more metrics arrive.
    pub fn expire(&mut self, now: Instant) {
        if self
            .window_start
            .is_some_and(|t| now.saturating_duration_since(t) >= self.interval)
        {
            // New maps rather than cleared ones: a burst of metrics would otherwise keep
            // its room for good.
            self.seen = HashMap::new();
            self.warned = HashSet::new();
            self.entries.set(0);
            self.charge_tables();
            self.window_start = None;
        }
    }

    fn charge_tables(&mut self) {
        self.tables.set(
            hash_table_bytes::<(MetricKey, HashSet<u64>)>(self.seen.capacity())
                + hash_table_bytes::<MetricKey>(self.warned.capacity()),
        );
    }
}

/// Heap data of a (namespace, metric) key.
fn key_bytes((namespace, metric): &MetricKey) -> usize {
    namespace.capacity() + metric.capacity()
}

/// The labels of a folded series: same keys, every value `_other`.
pub fn fold(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .keys()
        .map(|k| (k.clone(), OTHER.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(id: usize) -> BTreeMap<String, String> {
        [("CustomerId".to_string(), format!("c{id}"))]
            .into_iter()
            .collect()
    }

    #[test]
    fn folds_beyond_the_limit_per_metric_and_resets_each_interval() {
        let mut g = CardinalityGuard::new(3, Duration::from_secs(60), &Gauge::default());
        let t = Instant::now();
        let admitted: Vec<bool> = (0..5).map(|i| g.admit("ns", "m", &labels(i), t)).collect();
        assert_eq!(admitted, vec![true, true, true, false, false]);
        // Known combinations stay admitted; other metrics have their own budget.
        assert!(g.admit("ns", "m", &labels(1), t));
        assert!(g.admit("ns", "other", &labels(4), t));
        assert!(g.admit("ns2", "m", &labels(4), t));
        // Empty label sets are never folded.
        assert!(g.admit("ns", "m", &BTreeMap::new(), t));
        // A new interval starts over.
        assert!(g.admit("ns", "m", &labels(4), t + Duration::from_secs(61)));
    }

    #[test]
    fn folded_labels_keep_keys() {
        let f = fold(&labels(7));
        assert_eq!(f.get("CustomerId").map(String::as_str), Some(OTHER));
    }

    #[test]
    fn what_it_remembers_is_charged_until_the_interval_ends() {
        let held = Gauge::default();
        let mut g = CardinalityGuard::new(100, Duration::from_secs(60), &held);
        let t = Instant::now();
        let mut before = 0;
        for metric in 0..50 {
            g.admit("ns", &format!("metric-{metric}"), &labels(0), t);
            let now = held.get();
            assert!(
                now > before,
                "metric {metric} is charged: {now} after {before}"
            );
            before = now;
        }
        for id in 1..100 {
            g.admit("ns", "metric-0", &labels(id), t);
        }
        assert!(held.get() > before, "the label sets are charged");
        let full = held.get();
        assert!(g.admit("ns", "metric-0", &labels(5), t));
        assert_eq!(held.get(), full, "a known label set costs nothing more");
        // The next interval starts over with one metric.
        g.admit("ns", "metric-0", &labels(0), t + Duration::from_secs(61));
        let after = held.get();
        assert!(after < full / 2, "{after} of {full}");
        drop(g);
        assert_eq!(held.get(), 0);
    }

    #[test]
    fn an_interval_that_is_over_is_forgotten_without_a_new_point() {
        let held = Gauge::default();
        let mut g = CardinalityGuard::new(100, Duration::from_secs(60), &held);
        let t = Instant::now();
        for id in 0..20 {
            g.admit("ns", "m", &labels(id), t);
        }
        let full = held.get();
        g.expire(t + Duration::from_secs(59));
        assert_eq!(held.get(), full, "the interval is not over yet");
        g.expire(t + Duration::from_secs(60));
        assert_eq!(held.get(), 0);
        // The next point opens a new interval with a fresh budget.
        assert!(g.admit("ns", "m", &labels(99), t + Duration::from_secs(3600)));
    }
}
