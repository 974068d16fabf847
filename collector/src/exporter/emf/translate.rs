//! OTLP metrics into samples: one metric value, with its namespace, labels, unit and time.
//!
//! Every OTLP metric type has a CloudWatch form:
//!
//! - gauge, delta sum, non-monotonic cumulative sum (an up-down counter is a level, not a
//!   rate): the value as is;
//! - monotonic cumulative sum: the delta since the previous point of the series;
//! - histogram and exponential histogram: a distribution (`Values`/`Counts`, `Min`, `Max`,
//!   `Count`, `Sum`), cumulative ones differenced bucket by bucket, so CloudWatch can
//!   compute percentiles (p99 alarms) from them;
//! - summary: a statistic set (count and sum differenced, min and max from the 0 and 1
//!   quantiles).
//!
//! Points that cannot be represented are dropped and counted by reason: NaN (`nan_value`),
//! ±Inf (`non_finite_value`), points flagged as having no recorded value, and
//! repeated/out-of-order cumulative points (`stale_cumulative_point`).
//!
//! The first point of a cumulative series (sum, histogram or summary) is sent as is when
//! it holds only what the series counted since it began while the exporter existed
//! (`initial_value: auto`, the default: its start time is after the exporter was created;
//! or `keep`). Otherwise (`auto` with an earlier or no start time, or `drop`) its value may
//! span days, partly sent before by an earlier collector, so it is not dropped but
//! *withheld* ([`INITIAL_CUMULATIVE_POINT`]): it becomes the baseline its successors are
//! differenced against, and it is reported apart from failures.
//!
//! Metric names are written as received, except where a `metric_descriptors` entry matches
//! the name ignoring case: then the descriptor's spelling is the CloudWatch name. OTLP
//! clients that lower-case instrument names (the Python SDK does) keep the CamelCase names
//! that dashboards and alarms are written against.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use aurastream_proto::emf::{Distribution, EmfValue, StatisticSet};
use aurastream_proto::otlp::common::KeyValue;
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::metrics::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, SummaryDataPoint, metric::Data, number_data_point,
};
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Map, Value};

use super::cardinality::{CardinalityGuard, fold};
use super::config::{EmfExporterConfig, InitialValue};
use super::delta::{Cumulative, Delta, DeltaState};
use super::units::cloudwatch_unit;
use crate::model::json::any_to_json;

/// The attribute (on a data point or its resource) that sets a point's namespace.
pub const NAMESPACE_ATTRIBUTE: &str = "aws.emf.namespace";

/// OTLP data point flag: the point carries no value (a staleness marker).
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// The reason a cumulative series' first point is withheld: it is the baseline of the
/// deltas that follow, not a failure.
pub const INITIAL_CUMULATIVE_POINT: &str = "initial_cumulative_point";

/// One metric value ready to be placed in a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the `ResourceMetrics` it came from.
    pub resource: usize,
    pub namespace: String,
    pub timestamp_ms: i64,
    pub labels: BTreeMap<String, String>,
    pub name: String,
    pub unit: Option<String>,
    pub storage_resolution: Option<u32>,
    pub value: EmfValue,
}

/// The result of translating one batch.
#[derive(Debug, Default)]
pub struct Translation {
    pub samples: Vec<Sample>,
    /// Per resource: its attributes as top-level document properties (may be empty).
    pub properties: Vec<Map<String, Value>>,
    /// Points not sent and lost, by reason.
    pub dropped: BTreeMap<&'static str, usize>,
    /// Points not sent with nothing lost (cumulative baselines), by reason.
    pub withheld: BTreeMap<&'static str, usize>,
    /// Points whose labels were folded into `_other`.
    pub folded: usize,
}

/// Stateful: remembers cumulative series and dimension combinations across batches.
pub struct Translator {
    namespace: String,
    initial_value: InitialValue,
    /// When the exporter was created (Unix nanoseconds): `initial_value: auto` keeps the
    /// first point of series that started later.
    started_unix_nano: u64,
    resource_to_telemetry: bool,
    resource_properties: bool,
    /// `metric_descriptors` by lower-cased name.
    descriptors: HashMap<String, Descriptor>,
    delta: Mutex<DeltaState>,
    guard: Mutex<CardinalityGuard>,
}

impl Translator {
    /// `held` (bytes) is kept current with what the series and dimension state hold.
    pub fn new(config: &EmfExporterConfig, started_unix_nano: u64, held: &Gauge) -> Translator {
        Translator {
            namespace: config.namespace.clone(),
            initial_value: config.initial_value,
            started_unix_nano,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled,
            resource_properties: config.resource_attributes_as_properties,
            descriptors: config
                .metric_descriptors
                .iter()
                .map(|d| {
                    (
                        d.metric_name.to_lowercase(),
                        Descriptor {
                            name: d.metric_name.clone(),
                            unit: d.unit.clone(),
                            storage_resolution: d.storage_resolution,
                        },
                    )
                })
                .collect(),
            delta: Mutex::new(DeltaState::new(held)),
            guard: Mutex::new(CardinalityGuard::new(
                config.max_dimension_sets_per_metric,
                config.cardinality_interval,
                held,
            )),
        }
    }

    /// Forgets idle series and a dimension-set interval that is over (see
    /// [`crate::component::Exporter::expire_idle`]).
    pub fn expire_idle(&self, now: Instant) {
        self.delta
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sweep(now);
        self.guard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire(now);
    }

    pub fn translate(&self, batch: &[ResourceMetrics], now: Instant, now_ms: i64) -> Translation {
        let mut out = Translation::default();
        let mut delta = self.delta.lock().unwrap_or_else(|p| p.into_inner());
        let mut guard = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        for (resource_index, rm) in batch.iter().enumerate() {
            let resource_attrs: &[KeyValue] = rm
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let resource_labels = labels_of(resource_attrs);
            let resource_key = series_part(&resource_labels);
            let namespace = resource_labels
                .get(NAMESPACE_ATTRIBUTE)
                .cloned()
                .unwrap_or_else(|| self.default_namespace(&resource_labels));
            out.properties
                .push(if self.resource_properties && !self.resource_to_telemetry {
                    resource_attrs
                        .iter()
                        .filter(|kv| kv.key != NAMESPACE_ATTRIBUTE)
                        .map(|kv| {
                            let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                            (kv.key.clone(), v.map(any_to_json).unwrap_or(Value::Null))
                        })
                        .collect()
                } else {
                    Map::new()
                });
            for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let ctx = MetricContext {
                    resource: resource_index,
                    resource_key: &resource_key,
                    resource_labels: &resource_labels,
                    namespace: &namespace,
                    now,
                    now_ms,
                };
                self.translate_metric(metric, &ctx, &mut delta, &mut out);
            }
        }
        for sample in &mut out.samples {
            if !guard.admit(&sample.namespace, &sample.name, &sample.labels, now) {
                sample.labels = fold(&sample.labels);
                out.folded += 1;
            }
        }
        out
    }

    /// `namespace` from the config, else `service.namespace/service.name` (as the
    /// Collector's awsemf does), else `default`.
    fn default_namespace(&self, resource: &BTreeMap<String, String>) -> String {
        if !self.namespace.is_empty() {
            return self.namespace.clone();
        }
        match (
            resource.get("service.namespace"),
            resource.get("service.name"),
        ) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name.clone(),
            (Some(ns), None) => ns.clone(),
            (None, None) => "default".into(),
        }
    }

    fn translate_metric(
        &self,
        metric: &Metric,
        ctx: &MetricContext<'_>,
        delta: &mut DeltaState,
        out: &mut Translation,
    ) {
        let descriptor = self.descriptor(&metric.name);
        let name = descriptor.map_or(&metric.name, |d| &d.name);
        let ucum_unit = || cloudwatch_unit(&metric.unit).map(str::to_string);
        let (unit, storage_resolution) = match descriptor {
            // `None` is CloudWatch's explicit "no unit".
            Some(d) => (
                match &d.unit {
                    Some(u) => (u != "None").then(|| u.clone()),
                    None => ucum_unit(),
                },
                d.storage_resolution,
            ),
            None => (ucum_unit(), None),
        };
        let mut emit = |attrs: &[KeyValue], time: u64, value: Result<EmfValue, &'static str>| {
            let value = match value {
                Ok(v) => v,
                Err(INITIAL_CUMULATIVE_POINT) => {
                    *out.withheld.entry(INITIAL_CUMULATIVE_POINT).or_default() += 1;
                    return;
                }
                Err(reason) => {
                    *out.dropped.entry(reason).or_default() += 1;
                    return;
                }
            };
            let (namespace, labels) = self.point_labels(attrs, ctx);
            out.samples.push(Sample {
                resource: ctx.resource,
                namespace,
                timestamp_ms: if time == 0 {
                    ctx.now_ms
                } else {
                    i64::try_from(time / 1_000_000).unwrap_or(ctx.now_ms)
                },
                labels,
                name: name.clone(),
                unit: unit.clone(),
                storage_resolution,
                value,
            });
        };
        match &metric.data {
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    emit(
                        &p.attributes,
                        p.time_unix_nano,
                        number(p).map(EmfValue::Single),
                    );
                }
            }
            Some(Data::Sum(s)) => {
                let cumulative = s.aggregation_temporality
                    == AggregationTemporality::Cumulative as i32
                    && s.is_monotonic;
                for p in &s.data_points {
                    let v = match number(p) {
                        Ok(v) if cumulative => {
                            let key = self.series_key(ctx, metric, &p.attributes);
                            let current =
                                Cumulative::number(p.start_time_unix_nano, p.time_unix_nano, v);
                            self.accept(delta, key, current, ctx.now)
                                .map(|c| EmfValue::Single(c.sum))
                        }
                        other => other.map(EmfValue::Single),
                    };
                    emit(&p.attributes, p.time_unix_nano, v);
                }
            }
            Some(Data::Histogram(h)) => {
                let cumulative =
                    h.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                for p in &h.data_points {
                    let r = self.histogram(p, cumulative, ctx, metric, delta);
                    // `Ok(None)`: nothing was observed since the last point; nothing to send.
                    if let Some(v) = r.transpose() {
                        emit(&p.attributes, p.time_unix_nano, v);
                    }
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                let cumulative =
                    h.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                for p in &h.data_points {
                    let r = self.exponential(p, cumulative, ctx, metric, delta);
                    // `Ok(None)`: nothing was observed since the last point; nothing to send.
                    if let Some(v) = r.transpose() {
                        emit(&p.attributes, p.time_unix_nano, v);
                    }
                }
            }
            Some(Data::Summary(s)) => {
                for p in &s.data_points {
                    let r = self.summary(p, ctx, metric, delta);
                    // `Ok(None)`: nothing was observed since the last point; nothing to send.
                    if let Some(v) = r.transpose() {
                        emit(&p.attributes, p.time_unix_nano, v);
                    }
                }
            }
            None => {}
        }
    }

    /// The `metric_descriptors` entry for a metric name, matched ignoring case.
    fn descriptor(&self, name: &str) -> Option<&Descriptor> {
        if self.descriptors.is_empty() {
            return None;
        }
        self.descriptors.get(&name.to_lowercase())
    }

    /// What a cumulative point of series `key` contributes, per `initial_value`.
    fn accept(
        &self,
        delta: &mut DeltaState,
        key: String,
        current: Cumulative,
        now: Instant,
    ) -> Result<Cumulative, &'static str> {
        match delta.delta(key, current, now) {
            Delta::Change(c) | Delta::Reset(c) => Ok(c),
            Delta::First(c) => match self.initial_value {
                InitialValue::Keep => Ok(c),
                // Also after everything the exporter forgot: a series idle for an hour and
                // then back with its old start time was partly sent before.
                InitialValue::Auto
                    if c.start_time > self.started_unix_nano
                        && c.start_time > delta.forgotten_until() =>
                {
                    Ok(c)
                }
                InitialValue::Auto | InitialValue::Drop => Err(INITIAL_CUMULATIVE_POINT),
            },
            Delta::Stale => Err("stale_cumulative_point"),
        }
    }

    fn histogram(
        &self,
        p: &HistogramDataPoint,
        cumulative: bool,
        ctx: &MetricContext<'_>,
        metric: &Metric,
        delta: &mut DeltaState,
    ) -> Result<Option<EmfValue>, &'static str> {
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            return Err("no_recorded_value");
        }
        for v in p
            .explicit_bounds
            .iter()
            .chain(&p.sum)
            .chain(&p.min)
            .chain(&p.max)
        {
            check_finite(*v)?;
        }
        let current = Cumulative {
            start_time: p.start_time_unix_nano,
            time: p.time_unix_nano,
            layout: p.explicit_bounds.iter().map(|b| b.to_bits()).collect(),
            buckets: p
                .bucket_counts
                .iter()
                .enumerate()
                .map(|(i, c)| ((0i8, i as i64), *c))
                .collect(),
            count: p.count,
            sum: p.sum.unwrap_or(f64::NAN),
            sum_is_monotonic: false,
        };
        let c = if cumulative {
            let key = self.series_key(ctx, metric, &p.attributes);
            self.accept(delta, key, current, ctx.now)?
        } else {
            current
        };
        let bounds = &p.explicit_bounds;
        let values = c
            .buckets
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&(_, i), n)| {
                let i = i as usize;
                let lo = if i == 0 {
                    p.min.or(bounds.first().copied())
                } else {
                    bounds.get(i - 1).copied()
                };
                let hi = if i >= bounds.len() {
                    p.max.or(bounds.last().copied())
                } else {
                    bounds.get(i).copied()
                };
                let rep = match (lo, hi) {
                    (Some(lo), Some(hi)) => (lo + hi) / 2.0,
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => c.sum / c.count.max(1) as f64,
                };
                (rep, *n)
            });
        distribution(values.collect(), c.count, c.sum, p.min, p.max)
    }

    fn exponential(
        &self,
        p: &ExponentialHistogramDataPoint,
        cumulative: bool,
        ctx: &MetricContext<'_>,
        metric: &Metric,
        delta: &mut DeltaState,
    ) -> Result<Option<EmfValue>, &'static str> {
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            return Err("no_recorded_value");
        }
        for v in [p.sum, p.min, p.max].into_iter().flatten() {
            check_finite(v)?;
        }
        let mut buckets = BTreeMap::new();
        if p.zero_count > 0 {
            buckets.insert((0i8, 0i64), p.zero_count);
        }
        for (sign, b) in [(1i8, &p.positive), (-1i8, &p.negative)] {
            if let Some(b) = b {
                for (k, n) in b.bucket_counts.iter().enumerate() {
                    if *n > 0 {
                        buckets.insert((sign, i64::from(b.offset) + k as i64), *n);
                    }
                }
            }
        }
        let current = Cumulative {
            start_time: p.start_time_unix_nano,
            time: p.time_unix_nano,
            layout: vec![p.scale as u64, p.zero_threshold.to_bits()],
            buckets,
            count: p.count,
            sum: p.sum.unwrap_or(f64::NAN),
            sum_is_monotonic: false,
        };
        let c = if cumulative {
            let key = self.series_key(ctx, metric, &p.attributes);
            self.accept(delta, key, current, ctx.now)?
        } else {
            current
        };
        // Bucket `i` covers (base^i, base^(i+1)] with base = 2^(2^-scale).
        let step = 2f64.powi(-p.scale);
        let mut values: Vec<(f64, u64)> = c
            .buckets
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&(sign, i), n)| {
                if sign == 0 {
                    return (0.0, *n);
                }
                let lower = 2f64.powf(i as f64 * step);
                let upper = 2f64.powf((i + 1) as f64 * step);
                (f64::from(sign) * (lower + upper) / 2.0, *n)
            })
            .collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        distribution(values, c.count, c.sum, p.min, p.max)
    }

    fn summary(
        &self,
        p: &SummaryDataPoint,
        ctx: &MetricContext<'_>,
        metric: &Metric,
        delta: &mut DeltaState,
    ) -> Result<Option<EmfValue>, &'static str> {
        if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
            return Err("no_recorded_value");
        }
        check_finite(p.sum)?;
        let quantile = |q: f64| {
            p.quantile_values
                .iter()
                .find(|v| v.quantile == q)
                .map(|v| v.value)
        };
        let (min, max) = (quantile(0.0), quantile(1.0));
        for v in [min, max].into_iter().flatten() {
            check_finite(v)?;
        }
        // OTLP summaries are cumulative by definition.
        let current = Cumulative {
            start_time: p.start_time_unix_nano,
            time: p.time_unix_nano,
            layout: Vec::new(),
            buckets: BTreeMap::new(),
            count: p.count,
            sum: p.sum,
            sum_is_monotonic: false,
        };
        let key = self.series_key(ctx, metric, &p.attributes);
        let c = self.accept(delta, key, current, ctx.now)?;
        if c.count == 0 {
            return Ok(None);
        }
        let mean = c.sum / c.count as f64;
        Ok(Some(EmfValue::StatisticSet(StatisticSet {
            min: min.unwrap_or(mean),
            max: max.unwrap_or(mean),
            count: c.count as f64,
            sum: c.sum,
        })))
    }

    /// Namespace and labels of a data point: its attributes (plus the resource's with
    /// `resource_to_telemetry_conversion`), without the namespace attribute.
    fn point_labels(
        &self,
        attrs: &[KeyValue],
        ctx: &MetricContext<'_>,
    ) -> (String, BTreeMap<String, String>) {
        let mut labels = labels_of(attrs);
        if self.resource_to_telemetry {
            for (k, v) in ctx.resource_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let namespace = labels
            .remove(NAMESPACE_ATTRIBUTE)
            .unwrap_or_else(|| ctx.namespace.to_string());
        (namespace, labels)
    }

    fn series_key(&self, ctx: &MetricContext<'_>, metric: &Metric, attrs: &[KeyValue]) -> String {
        format!(
            "{}\u{1e}{}\u{1e}{}",
            ctx.resource_key,
            metric.name,
            series_part(&labels_of(attrs))
        )
    }
}

/// A `metric_descriptors` entry: the CloudWatch spelling of the name, and overrides.
struct Descriptor {
    name: String,
    unit: Option<String>,
    storage_resolution: Option<u32>,
}

struct MetricContext<'a> {
    resource: usize,
    resource_key: &'a str,
    resource_labels: &'a BTreeMap<String, String>,
    namespace: &'a str,
    now: Instant,
    now_ms: i64,
}

/// A number point's value, or why it has none CloudWatch can take.
fn number(p: &NumberDataPoint) -> Result<f64, &'static str> {
    if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
        return Err("no_recorded_value");
    }
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => return Err("no_recorded_value"),
    };
    check_finite(v)?;
    Ok(v)
}

fn check_finite(v: f64) -> Result<(), &'static str> {
    if v.is_nan() {
        Err("nan_value")
    } else if v.is_infinite() {
        Err("non_finite_value")
    } else {
        Ok(())
    }
}

/// A distribution from (representative, count) pairs; `None` when nothing was observed
/// (a cumulative series that did not move). Representatives are kept within [min, max]
/// when those are known, so percentiles never leave the observed range.
fn distribution(
    pairs: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Option<EmfValue>, &'static str> {
    if count == 0 || pairs.is_empty() {
        return Ok(None);
    }
    let clamp = |v: f64| {
        let v = min.map_or(v, |m| v.max(m));
        max.map_or(v, |m| v.min(m))
    };
    let mut values = Vec::with_capacity(pairs.len());
    let mut counts = Vec::with_capacity(pairs.len());
    for (v, n) in pairs {
        let v = clamp(v);
        check_finite(v)?;
        values.push(v);
        counts.push(n as f64);
    }
    let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum = if sum.is_finite() {
        sum
    } else {
        values.iter().zip(&counts).map(|(v, n)| v * n).sum()
    };
    Ok(Some(EmfValue::Distribution(Distribution {
        values,
        counts,
        max: max.unwrap_or(highest),
        min: min.unwrap_or(lowest),
        count: count as f64,
        sum,
    })))
}

/// Attributes as label strings (non-string values in their JSON form).
pub fn labels_of(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValueKind::StringValue(s)) => s.clone(),
                Some(other) => any_to_json(other).to_string(),
                None => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn series_part(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        s.push_str(k);
        s.push('\u{1f}');
        s.push_str(v);
        s.push('\u{1d}');
    }
    s
}
