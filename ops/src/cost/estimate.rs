//! The estimate itself, from plain inputs so every figure can be checked by hand:
//!
//! - custom metrics: each distinct metric × dimension combination `ListMetrics` knows
//!   (outside `AWS/` namespaces) is billed as a metric-month for a 30-day month, so the
//!   period costs `combinations × days / 30` metric-months at the banded price;
//! - logs, per group: ingestion = bytes per day × days, the bytes per day from the group's
//!   `AWS/Logs IncomingBytes` over the last day, or, without that metric, its stored
//!   bytes over the days they cover (its age, capped by its retention, at least a day);
//!   storage = what the group holds at the end of the period (stored bytes plus the
//!   period's ingestion, no more than retention × bytes per day), per month;
//! - X-Ray: the traces the collector recorded per second × the period, and as many
//!   scanned again (× `--scan-factor`: console views, `aurastream traces`).
//!
//! 1 GB is 2^30 bytes, as AWS bills data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::prices::Prices;
use super::prometheus::Shipped;

pub const GB: f64 = 1_073_741_824.0;
const DAY_MS: f64 = 86_400_000.0;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CustomMetric {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogGroup {
    pub name: String,
    pub stored_bytes: f64,
    pub retention_days: Option<i32>,
    pub created_ms: i64,
    /// `AWS/Logs IncomingBytes` of the last 24 hours, if CloudWatch has it.
    pub incoming_bytes_last_day: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Inputs {
    pub days: f64,
    pub now_ms: i64,
    pub metrics: Vec<CustomMetric>,
    pub log_groups: Vec<LogGroup>,
    pub shipped: Option<Shipped>,
    pub scan_factor: f64,
    pub cardinality_warn: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineItem {
    pub service: &'static str,
    pub item: String,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
    /// How the quantity was arrived at.
    pub basis: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CardinalityWarning {
    pub dimension: String,
    pub distinct_values: usize,
    /// Custom metrics that exist only because of this dimension (those that would merge
    /// if it were dropped).
    pub metrics_due: usize,
    pub usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub days: f64,
    pub prices: Prices,
    /// What the collector shipped while it was measured, if it was.
    pub shipped: Option<Shipped>,
    pub lines: Vec<LineItem>,
    pub total_usd: f64,
    pub warnings: Vec<CardinalityWarning>,
    pub notes: Vec<String>,
}

pub fn estimate(inputs: &Inputs, prices: &Prices) -> Estimate {
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let months = inputs.days / 30.0;

    let combos: BTreeSet<&CustomMetric> = inputs.metrics.iter().collect();
    let n = combos.len() as f64;
    let metrics_usd = prices.custom_metrics(n * months);
    if n > 0.0 {
        let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &combos {
            *per_ns.entry(m.namespace.as_str()).or_default() += 1;
        }
        let split: Vec<String> = per_ns.iter().map(|(k, v)| format!("{k} {v}")).collect();
        lines.push(LineItem {
            service: "CloudWatch",
            item: "custom metrics".into(),
            quantity: n * months,
            unit: "metric-months",
            usd: metrics_usd,
            basis: format!(
                "{} metric × dimension combinations ({})",
                n,
                split.join(", ")
            ),
        });
    }

    for g in &inputs.log_groups {
        let age_days = ((inputs.now_ms - g.created_ms) as f64 / DAY_MS).max(0.0);
        let (per_day, basis) = match g.incoming_bytes_last_day {
            Some(b) => (b, "IncomingBytes of the last day".to_string()),
            None => {
                let covered = g
                    .retention_days
                    .map(|r| age_days.min(r as f64))
                    .unwrap_or(age_days)
                    .max(1.0);
                (
                    g.stored_bytes / covered,
                    format!("stored bytes over {covered:.1} days (no IncomingBytes)"),
                )
            }
        };
        let ingested = per_day * inputs.days;
        let mut stored_end = g.stored_bytes + ingested;
        if let Some(r) = g.retention_days {
            stored_end = stored_end.min(per_day * r as f64);
        }
        let ingest_usd = ingested / GB * prices.log_ingestion_per_gb;
        let store_usd = stored_end / GB * prices.log_storage_per_gb_month * months;
        let retention = g
            .retention_days
            .map(|r| format!("{r} d retention"))
            .unwrap_or_else(|| "never expires".into());
        lines.push(LineItem {
            service: "CloudWatch Logs",
            item: g.name.clone(),
            quantity: ingested / GB,
            unit: "GB ingested",
            usd: ingest_usd + store_usd,
            basis: format!(
                "{:.3} GB ingested (${:.2}) from {basis}; {:.3} GB stored, {retention} \
                 (${:.2})",
                ingested / GB,
                ingest_usd,
                stored_end / GB,
                store_usd
            ),
        });
    }

    match &inputs.shipped {
        Some(s) => {
            let seconds = inputs.days * 86_400.0;
            let traces = s.traces() / s.seconds * seconds;
            let how = if s.sampled_traces.is_some() {
                "traces kept by xray_sampling"
            } else {
                "spans sent by awsxray (no xray_sampling: an upper bound on traces)"
            };
            lines.push(LineItem {
                service: "X-Ray",
                item: "traces recorded".into(),
                quantity: traces,
                unit: "traces",
                usd: traces / 1e6 * prices.xray_recorded_per_million,
                basis: format!(
                    "{} {how} in {:.0} s of collector counters, × {} days",
                    s.traces(),
                    s.seconds,
                    inputs.days
                ),
            });
            let scanned = traces * inputs.scan_factor;
            lines.push(LineItem {
                service: "X-Ray",
                item: "traces scanned".into(),
                quantity: scanned,
                unit: "traces",
                usd: scanned / 1e6 * prices.xray_scanned_per_million,
                basis: format!("each recorded trace scanned {} time(s)", inputs.scan_factor),
            });
        }
        None => notes.push(
            "X-Ray not estimated: pass --collector URL (the collector's health endpoint, e.g. \
             http://127.0.0.1:13133) to measure the traces it records"
                .into(),
        ),
    }

    lines.sort_by(|a, b| b.usd.total_cmp(&a.usd).then_with(|| a.item.cmp(&b.item)));
    let total_usd = lines.iter().map(|l| l.usd).sum();
    let per_metric = if n > 0.0 { metrics_usd / n } else { 0.0 };
    Estimate {
        days: inputs.days,
        prices: prices.clone(),
        shipped: inputs.shipped.clone(),
        lines,
        total_usd,
        warnings: cardinality(&combos, inputs.cardinality_warn, per_metric),
        notes,
    }
}

/// Dimensions with at least `threshold` distinct values, with the metrics they multiply.
fn cardinality(
    combos: &BTreeSet<&CustomMetric>,
    threshold: usize,
    usd_per_metric: f64,
) -> Vec<CardinalityWarning> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for m in combos {
        for (k, v) in &m.dimensions {
            values.entry(k).or_default().insert(v);
        }
    }
    let mut out: Vec<CardinalityWarning> = values
        .iter()
        .filter(|(_, v)| v.len() >= threshold)
        .map(|(dim, v)| {
            // Each combination with this dimension removed: those that coincide merge.
            let without: BTreeSet<CustomMetric> = combos
                .iter()
                .map(|m| CustomMetric {
                    namespace: m.namespace.clone(),
                    name: m.name.clone(),
                    dimensions: m
                        .dimensions
                        .iter()
                        .filter(|(k, _)| k.as_str() != *dim)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
                .collect();
            let due = combos.len() - without.len();
            CardinalityWarning {
                dimension: dim.to_string(),
                distinct_values: v.len(),
                metrics_due: due,
                usd: due as f64 * usd_per_metric,
            }
        })
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.metrics_due));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(ns: &str, name: &str, dims: &[(&str, &str)]) -> CustomMetric {
        CustomMetric {
            namespace: ns.into(),
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn inputs() -> Inputs {
        let mut metrics = Vec::new();
        for c in 0..60 {
            let id = format!("c{c}");
            metrics.push(metric(
                "App",
                "APIRequestCount",
                &[("Endpoint", "/a"), ("CustomerId", &id)],
            ));
        }
        metrics.push(metric("App", "APIRequestCount", &[("Endpoint", "/a")]));
        metrics.push(metric("App", "APIRequestCount", &[("Endpoint", "/a")]));
        Inputs {
            days: 30.0,
            now_ms: 10 * 86_400_000,
            metrics,
            log_groups: vec![
                LogGroup {
                    name: "/big".into(),
                    stored_bytes: 2.0 * GB,
                    retention_days: Some(7),
                    created_ms: 0,
                    incoming_bytes_last_day: Some(1.0 * GB),
                },
                LogGroup {
                    name: "/young".into(),
                    stored_bytes: 0.5 * GB,
                    retention_days: None,
                    created_ms: 10 * 86_400_000 - 3_600_000,
                    incoming_bytes_last_day: None,
                },
            ],
            shipped: Some(Shipped {
                seconds: 100.0,
                xray_spans: 500.0,
                sampled_traces: Some(10.0),
                log_records: 0.0,
                emf_points: 0.0,
            }),
            scan_factor: 1.0,
            cardinality_warn: 50,
        }
    }

    fn line<'a>(e: &'a Estimate, item: &str) -> &'a LineItem {
        e.lines.iter().find(|l| l.item == item).expect("line item")
    }

    #[test]
    fn every_line_matches_a_hand_computation() {
        let e = estimate(&inputs(), &Prices::default());
        // 61 distinct combinations (the duplicate listed once) at $0.30.
        assert!((line(&e, "custom metrics").usd - 61.0 * 0.30).abs() < 1e-9);
        // /big: 1 GB/day × 30 = 30 GB at $0.50; stored: min(2 + 30, 1 × 7) = 7 GB at $0.03.
        assert!((line(&e, "/big").usd - (15.0 + 0.21)).abs() < 1e-9);
        // /young: an hour old, counted as one day: 0.5 GB/day × 30 = 15 GB; never
        // expires: 0.5 + 15 GB stored.
        assert!((line(&e, "/young").usd - (7.5 + 15.5 * 0.03)).abs() < 1e-9);
        // 10 traces in 100 s → 259,200 a month: $1.296 recorded, $0.1296 scanned.
        assert!((line(&e, "traces recorded").usd - 1.296).abs() < 1e-9);
        assert!((line(&e, "traces scanned").usd - 0.1296).abs() < 1e-9);
        let order: Vec<&str> = e.lines.iter().map(|l| l.item.as_str()).collect();
        assert_eq!(
            order,
            [
                "custom metrics",
                "/big",
                "/young",
                "traces recorded",
                "traces scanned"
            ]
        );
        let total: f64 = e.lines.iter().map(|l| l.usd).sum();
        assert!((e.total_usd - total).abs() < 1e-9);
    }

    #[test]
    fn the_customer_dimension_is_named_as_the_cost_driver() {
        let e = estimate(&inputs(), &Prices::default());
        assert_eq!(
            e.warnings,
            vec![CardinalityWarning {
                dimension: "CustomerId".into(),
                distinct_values: 60,
                metrics_due: 60,
                usd: 60.0 * 0.30,
            }]
        );
    }

    #[test]
    fn without_the_collector_x_ray_is_left_out_and_said_so() {
        let mut i = inputs();
        i.shipped = None;
        let e = estimate(&i, &Prices::default());
        assert!(e.lines.iter().all(|l| l.service != "X-Ray"));
        assert!(e.notes[0].starts_with("X-Ray not estimated"));
    }
}
