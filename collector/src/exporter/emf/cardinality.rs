//! A guard against dimension explosions.
//!
//! Every distinct dimension-value combination is a separate CloudWatch metric, billed per
//! month. An attribute such as `request_id` used as a dimension would create one metric per
//! request. So each metric may have at most `max_dimension_sets_per_metric` distinct label
//! combinations per interval; further combinations are folded into one whose values are
//! all `_other` (the data still counts toward totals), and a warning names the metric once
//! per interval.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// The value folded series get for every label.
pub const OTHER: &str = "_other";

pub struct CardinalityGuard {
    max: usize,
    interval: Duration,
    window_start: Option<Instant>,
    /// (namespace, metric) -> fingerprints of the label sets admitted this interval.
    seen: HashMap<(String, String), HashSet<u64>>,
    warned: HashSet<(String, String)>,
}

impl CardinalityGuard {
    pub fn new(max: usize, interval: Duration) -> CardinalityGuard {
        CardinalityGuard {
            max: max.max(1),
            interval,
            window_start: None,
            seen: HashMap::new(),
            warned: HashSet::new(),
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
        if self
            .window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval)
        {
            self.seen.clear();
            self.warned.clear();
            self.window_start = Some(now);
        }
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        let fingerprint = h.finish();
        let key = (namespace.to_string(), metric.to_string());
        let set = self.seen.entry(key.clone()).or_default();
        if set.contains(&fingerprint) {
            return true;
        }
        if set.len() < self.max {
            set.insert(fingerprint);
            return true;
        }
        if self.warned.insert(key) {
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
        let mut g = CardinalityGuard::new(3, Duration::from_secs(60));
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
}
