//! Samples into EMF documents, within CloudWatch's limits.
//!
//! Samples that share resource, namespace, timestamp and labels go into one document (one
//! log event carries many metrics). The limits are met without losing a data point, and
//! every action taken is counted by its event name ([`Built::events`], exported as
//! `component_events{component="<exporter id>",event="..."}` on `/metrics`):
//!
//! - more than 100 metrics: several documents ([`SPLIT_METRICS`]);
//! - a distribution with more than 100 values: spread over several documents, which
//!   CloudWatch combines since they share metric, dimensions and timestamp
//!   ([`SPLIT_VALUES`]; [`split_distribution`] says which part carries Sum, Min and Max);
//! - a dimension set with more than 30 keys: cut into sets of at most 30
//!   ([`SPLIT_DIMENSIONS`]);
//! - a dimension value over 1,024 characters, which CloudWatch refuses: cut to 1,024
//!   characters ending in [`TRUNCATION_MARKER`] ([`VALUE_TRUNCATED`]), or with
//!   `long_dimension_values: property` kept whole as a plain property and taken out of the
//!   dimension sets ([`VALUE_AS_PROPERTY`]);
//! - a document over the event size limit: halved until it fits ([`SPLIT_EVENT_SIZE`]).

use std::collections::{BTreeMap, BTreeSet};

use aurastream_proto::emf::{
    Distribution, EmfDocument, EmfMetadata, EmfValue, MAX_DIMENSION_VALUE_CHARS,
    MAX_DIMENSIONS_PER_SET, MAX_METRICS_PER_DIRECTIVE, MAX_VALUES_PER_METRIC, MetricDefinition,
    MetricDirective,
};
use serde_json::{Map, Value};

use super::config::{DimensionRollup, LongDimensionValues, MetricDeclaration};
use super::translate::Sample;
use crate::aws::cloudwatch_logs::request_builder::EVENT_OVERHEAD_BYTES;

/// A group of more than 100 metrics was sent as several documents.
pub const SPLIT_METRICS: &str = "split_metrics_over_100";
/// A distribution with more than 100 values was spread over several documents.
pub const SPLIT_VALUES: &str = "split_values_over_100";
/// A data point's dimension set with more than 30 keys was cut into sets of at most 30.
pub const SPLIT_DIMENSIONS: &str = "split_dimensions_over_30";
/// A document over the event size limit was halved.
pub const SPLIT_EVENT_SIZE: &str = "split_event_size";
/// A dimension value over 1,024 characters was cut (one count per value).
pub const VALUE_TRUNCATED: &str = "dimension_value_truncated";
/// A dimension value over 1,024 characters was left out of the dimension sets and kept as a
/// plain property (one count per value).
pub const VALUE_AS_PROPERTY: &str = "dimension_value_as_property";
/// Every event [`build_documents`] counts.
pub const EVENTS: [&str; 6] = [
    SPLIT_METRICS,
    SPLIT_VALUES,
    SPLIT_DIMENSIONS,
    SPLIT_EVENT_SIZE,
    VALUE_TRUNCATED,
    VALUE_AS_PROPERTY,
];

/// The end of a cut dimension value: what was kept is the value's first
/// 1,024 − 14 characters, so the cut value is exactly 1,024 characters long.
pub const TRUNCATION_MARKER: &str = "...[truncated]";

/// Which dimension sets a metric gets, and what becomes of dimension values that are too
/// long.
pub struct DimensionPolicy {
    pub rollup: DimensionRollup,
    pub declarations: Vec<MetricDeclaration>,
    pub long_values: LongDimensionValues,
}

impl DimensionPolicy {
    /// The dimension sets for a metric with these labels (duplicates removed, not yet cut
    /// to CloudWatch's sizes); `None` when `metric_declarations` are configured and none
    /// applies (the value is still in the document, just not turned into a CloudWatch
    /// metric).
    pub fn dimension_sets(
        &self,
        metric: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<Vec<Vec<String>>> {
        let mut sets: Vec<Vec<String>> = Vec::new();
        if self.declarations.is_empty() {
            sets.push(labels.keys().cloned().collect());
        } else {
            for d in self
                .declarations
                .iter()
                .filter(|d| d.matches(metric, labels))
            {
                sets.extend(d.dimension_sets(labels));
            }
            if sets.is_empty() {
                return None;
            }
        }
        match self.rollup {
            DimensionRollup::NoDimensionRollup => {}
            DimensionRollup::SingleDimensionRollup => {
                sets.extend(labels.keys().map(|k| vec![k.clone()]));
            }
            DimensionRollup::ZeroAndSingleDimensionRollup => {
                sets.push(Vec::new());
                sets.extend(labels.keys().map(|k| vec![k.clone()]));
            }
        }
        let mut out: Vec<Vec<String>> = Vec::new();
        for set in sets {
            if !out.contains(&set) {
                out.push(set);
            }
        }
        Some(out)
    }

    /// Deals with the dimension values of `sets` that CloudWatch would refuse (over 1,024
    /// characters), per `long_values`: cut in `labels`, or left whole in `labels` (where
    /// they stay a plain property of the document) and taken out of every set.
    fn fit_long_values(
        &self,
        sets: Vec<Vec<String>>,
        labels: &mut BTreeMap<String, String>,
        events: &mut BTreeMap<&'static str, usize>,
    ) -> Vec<Vec<String>> {
        let long: BTreeSet<String> = sets
            .iter()
            .flatten()
            .filter(|k| labels.get(*k).is_some_and(|v| is_too_long(v)))
            .cloned()
            .collect();
        if long.is_empty() {
            return sets;
        }
        match self.long_values {
            LongDimensionValues::Truncate => {
                for k in &long {
                    if let Some(v) = labels.get_mut(k) {
                        *v = truncate(v);
                    }
                }
                *events.entry(VALUE_TRUNCATED).or_default() += long.len();
                sets
            }
            LongDimensionValues::Property => {
                *events.entry(VALUE_AS_PROPERTY).or_default() += long.len();
                let mut out: Vec<Vec<String>> = Vec::new();
                for set in sets {
                    let set: Vec<String> = set.into_iter().filter(|k| !long.contains(k)).collect();
                    if !out.contains(&set) {
                        out.push(set);
                    }
                }
                out
            }
        }
    }
}

fn is_too_long(value: &str) -> bool {
    // Bytes are never fewer than characters: most values are decided without counting.
    value.len() > MAX_DIMENSION_VALUE_CHARS && value.chars().count() > MAX_DIMENSION_VALUE_CHARS
}

/// The value's first characters and [`TRUNCATION_MARKER`], 1,024 characters in all.
fn truncate(value: &str) -> String {
    let keep = MAX_DIMENSION_VALUE_CHARS - TRUNCATION_MARKER.chars().count();
    let end = value
        .char_indices()
        .nth(keep)
        .map_or(value.len(), |(i, _)| i);
    format!("{}{TRUNCATION_MARKER}", &value[..end])
}

/// Sets of at most 30 keys: a longer set is cut into consecutive sets of 30 (CloudWatch
/// refuses longer ones), and the metric is recorded under each of them.
fn cap_set_sizes(
    sets: Vec<Vec<String>>,
    events: &mut BTreeMap<&'static str, usize>,
) -> Vec<Vec<String>> {
    if sets.iter().all(|s| s.len() <= MAX_DIMENSIONS_PER_SET) {
        return sets;
    }
    *events.entry(SPLIT_DIMENSIONS).or_default() += 1;
    let mut out: Vec<Vec<String>> = Vec::new();
    for set in sets {
        let parts: Vec<Vec<String>> = if set.len() > MAX_DIMENSIONS_PER_SET {
            set.chunks(MAX_DIMENSIONS_PER_SET)
                .map(<[String]>::to_vec)
                .collect()
        } else {
            vec![set]
        };
        for p in parts {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// One log event's worth of EMF.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltDocument {
    pub resource: usize,
    pub timestamp_ms: i64,
    pub json: String,
    /// Data points this document accounts for (a point split over several documents is
    /// counted in the first).
    pub points: usize,
}

#[derive(Debug, Default)]
pub struct Built {
    pub documents: Vec<BuiltDocument>,
    pub dropped: BTreeMap<&'static str, usize>,
    /// What was done to stay within CloudWatch's limits ([`EVENTS`]), and how often.
    pub events: BTreeMap<&'static str, usize>,
}

/// One metric in a document.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    definition: MetricDefinition,
    value: EmfValue,
    dimensions: Option<Vec<Vec<String>>>,
    points: usize,
}

type GroupKey = (usize, String, i64, BTreeMap<String, String>);

/// Builds the documents for a batch of samples. `max_event_size` counts the message plus
/// CloudWatch's 26-byte per-event overhead.
pub fn build_documents(
    samples: Vec<Sample>,
    properties: &[Map<String, Value>],
    policy: &DimensionPolicy,
    max_event_size: usize,
) -> Built {
    let mut built = Built::default();
    let mut groups: BTreeMap<GroupKey, Vec<Vec<Entry>>> = BTreeMap::new();
    for s in samples {
        let mut labels = s.labels;
        let dimensions = policy.dimension_sets(&s.name, &labels).map(|sets| {
            let sets = policy.fit_long_values(sets, &mut labels, &mut built.events);
            cap_set_sizes(sets, &mut built.events)
        });
        let entry = Entry {
            dimensions,
            definition: MetricDefinition {
                name: s.name.clone(),
                unit: s.unit,
                storage_resolution: s.storage_resolution,
            },
            name: s.name,
            value: s.value,
            points: 1,
        };
        let slots = groups
            .entry((s.resource, s.namespace, s.timestamp_ms, labels))
            .or_default();
        // The same metric twice at the same time and labels (e.g. series folded into
        // `_other`) cannot share a document: each goes to the first one without it.
        match slots
            .iter_mut()
            .find(|g| g.iter().all(|e| e.name != entry.name))
        {
            Some(g) => g.push(entry),
            None => slots.push(vec![entry]),
        }
    }
    for ((resource, namespace, timestamp_ms, labels), slots) in groups {
        let context = DocContext {
            resource,
            namespace: &namespace,
            timestamp_ms,
            labels: &labels,
            properties: properties.get(resource),
            max_event_size,
        };
        for entries in slots {
            for layer in layers(entries, &mut built.events) {
                if layer.len() > MAX_METRICS_PER_DIRECTIVE {
                    *built.events.entry(SPLIT_METRICS).or_default() += 1;
                }
                for chunk in layer.chunks(MAX_METRICS_PER_DIRECTIVE) {
                    emit(chunk, &context, &mut built);
                }
            }
        }
    }
    built
}

struct DocContext<'a> {
    resource: usize,
    namespace: &'a str,
    timestamp_ms: i64,
    labels: &'a BTreeMap<String, String>,
    properties: Option<&'a Map<String, Value>>,
    max_event_size: usize,
}

/// Spreads distributions with more than 100 values over layers: layer `k` holds the `k`th
/// part of every metric that has one. Layer 0 holds every metric.
fn layers(entries: Vec<Entry>, events: &mut BTreeMap<&'static str, usize>) -> Vec<Vec<Entry>> {
    let mut layers: Vec<Vec<Entry>> = Vec::new();
    for e in entries {
        let parts = match &e.value {
            EmfValue::Distribution(d) if d.values.len() > MAX_VALUES_PER_METRIC => {
                *events.entry(SPLIT_VALUES).or_default() += 1;
                split_distribution(d)
            }
            _ => vec![e.value.clone()],
        };
        for (k, value) in parts.into_iter().enumerate() {
            if layers.len() <= k {
                layers.push(Vec::new());
            }
            layers[k].push(Entry {
                value,
                points: if k == 0 { e.points } else { 0 },
                ..e.clone()
            });
        }
    }
    layers
}

/// Cuts a distribution into parts of at most 100 values, in the order of its values
/// (ascending, as the translation makes them). CloudWatch combines the parts, which share
/// metric, dimensions and timestamp, by adding `Count`s and `Sum`s and taking the lowest
/// `Min` and the highest `Max`. So:
///
/// - each part's `Count` is the sum of its `Counts`: the parts' counts add up to the
///   original's, bucket by bucket;
/// - the **first** part carries the original `Sum`, `Min` and `Max`, whole; every other
///   part has `Sum` 0 and the range of its own values (within the original's) as `Min` and
///   `Max`. Combined, the statistics are exactly the original's: no share of the sum is
///   estimated or rounded, and no part widens the range. The first part is the one sent
///   in the document that also holds every other metric of the data point's group and
///   accounts for the point, so that document alone (read with Logs Insights) shows the
///   point's true sum and range.
pub fn split_distribution(d: &Distribution) -> Vec<EmfValue> {
    d.values
        .chunks(MAX_VALUES_PER_METRIC)
        .zip(d.counts.chunks(MAX_VALUES_PER_METRIC))
        .enumerate()
        .map(|(i, (values, counts))| {
            let (min, max, sum) = if i == 0 {
                (d.min, d.max, d.sum)
            } else {
                let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
                let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (lowest.max(d.min), highest.min(d.max), 0.0)
            };
            EmfValue::Distribution(Distribution {
                values: values.to_vec(),
                counts: counts.to_vec(),
                min,
                max,
                count: counts.iter().sum(),
                sum,
            })
        })
        .collect()
}

/// Serializes one document; halves it while it is too big, drops a single metric that
/// alone is too big (counted as `document_too_large`).
fn emit(entries: &[Entry], ctx: &DocContext<'_>, built: &mut Built) {
    let doc = document(entries, ctx);
    let json = match serde_json::to_string(&doc) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "EMF document could not be serialized");
            *built.dropped.entry("serialize").or_default() +=
                entries.iter().map(|e| e.points).sum::<usize>();
            return;
        }
    };
    if json.len() + EVENT_OVERHEAD_BYTES <= ctx.max_event_size {
        built.documents.push(BuiltDocument {
            resource: ctx.resource,
            timestamp_ms: ctx.timestamp_ms,
            json,
            points: entries.iter().map(|e| e.points).sum(),
        });
        return;
    }
    if entries.len() > 1 {
        *built.events.entry(SPLIT_EVENT_SIZE).or_default() += 1;
        let (a, b) = entries.split_at(entries.len() / 2);
        emit(a, ctx, built);
        emit(b, ctx, built);
        return;
    }
    tracing::warn!(metric = %entries[0].name, bytes = json.len(),
        "EMF document with a single metric exceeds the event size limit; dropped (labels too large?)");
    *built.dropped.entry("document_too_large").or_default() += entries[0].points;
}

fn document(entries: &[Entry], ctx: &DocContext<'_>) -> EmfDocument {
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(props) = ctx.properties {
        for (k, v) in props {
            fields.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in ctx.labels {
        fields.insert(k.clone(), Value::String(v.clone()));
    }
    let mut directives: Vec<MetricDirective> = Vec::new();
    for e in entries {
        fields.insert(
            e.name.clone(),
            serde_json::to_value(&e.value).unwrap_or(Value::Null),
        );
        let Some(dimensions) = &e.dimensions else {
            continue;
        };
        match directives.iter_mut().find(|d| &d.dimensions == dimensions) {
            Some(d) => d.metrics.push(e.definition.clone()),
            None => directives.push(MetricDirective {
                namespace: ctx.namespace.to_string(),
                dimensions: dimensions.clone(),
                metrics: vec![e.definition.clone()],
            }),
        }
    }
    EmfDocument {
        aws: EmfMetadata {
            timestamp: ctx.timestamp_ms,
            cloudwatch_metrics: directives,
        },
        fields,
    }
}
