//! Samples into EMF documents, within CloudWatch's limits.
//!
//! Samples that share resource, namespace, timestamp and labels go into one document (one
//! log event carries many metrics). The limits are met by splitting, never by cutting
//! data: more than 100 metrics become several documents; a distribution with more than
//! 100 values is spread over several documents (CloudWatch merges them, since they share
//! timestamp and dimensions); a dimension set with more than 30 keys is cut into sets of at
//! most 30; a document over the event size limit is halved until it fits.

use std::collections::BTreeMap;

use aurastream_proto::emf::{
    Distribution, EmfDocument, EmfMetadata, EmfValue, MAX_DIMENSIONS_PER_SET,
    MAX_METRICS_PER_DIRECTIVE, MAX_VALUES_PER_METRIC, MetricDefinition, MetricDirective,
};
use serde_json::{Map, Value};

use super::config::{DimensionRollup, MetricDeclaration};
use super::translate::Sample;
use crate::aws::cloudwatch_logs::request_builder::EVENT_OVERHEAD_BYTES;

/// Which dimension sets a metric gets.
pub struct DimensionPolicy {
    pub rollup: DimensionRollup,
    pub declarations: Vec<MetricDeclaration>,
}

impl DimensionPolicy {
    /// The dimension sets for a metric with these labels; `None` when `metric_declarations`
    /// are configured and none applies (the value is still in the document, just not
    /// turned into a CloudWatch metric).
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
            let chunks: Vec<Vec<String>> = if set.len() > MAX_DIMENSIONS_PER_SET {
                set.chunks(MAX_DIMENSIONS_PER_SET)
                    .map(<[String]>::to_vec)
                    .collect()
            } else {
                vec![set]
            };
            for c in chunks {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Some(out)
    }
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
    /// How many times a limit forced a split (metrics, values, size).
    pub splits: usize,
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
    let mut groups: BTreeMap<GroupKey, Vec<Vec<Entry>>> = BTreeMap::new();
    for s in samples {
        let entry = Entry {
            dimensions: policy.dimension_sets(&s.name, &s.labels),
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
            .entry((s.resource, s.namespace, s.timestamp_ms, s.labels))
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
    let mut built = Built::default();
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
            for layer in layers(entries, &mut built.splits) {
                for chunk in layer.chunks(MAX_METRICS_PER_DIRECTIVE) {
                    if layer.len() > MAX_METRICS_PER_DIRECTIVE {
                        built.splits += 1;
                    }
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
fn layers(entries: Vec<Entry>, splits: &mut usize) -> Vec<Vec<Entry>> {
    let mut layers: Vec<Vec<Entry>> = Vec::new();
    for e in entries {
        let parts = match &e.value {
            EmfValue::Distribution(d) if d.values.len() > MAX_VALUES_PER_METRIC => {
                *splits += 1;
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

/// Cuts a distribution into parts of at most 100 values. Counts add up to the original
/// count, sums to the original sum (shared in proportion to value × count), and each
/// part's min/max are its own range within the original's.
pub fn split_distribution(d: &Distribution) -> Vec<EmfValue> {
    let weight: f64 = d.values.iter().zip(&d.counts).map(|(v, n)| v * n).sum();
    let chunks: Vec<(&[f64], &[f64])> = d
        .values
        .chunks(MAX_VALUES_PER_METRIC)
        .zip(d.counts.chunks(MAX_VALUES_PER_METRIC))
        .collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, (values, counts))| {
            let count: f64 = counts.iter().sum();
            let part_weight: f64 = values.iter().zip(counts.iter()).map(|(v, n)| v * n).sum();
            let share = if weight != 0.0 {
                part_weight / weight
            } else if d.count > 0.0 {
                count / d.count
            } else {
                0.0
            };
            let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            EmfValue::Distribution(Distribution {
                values: values.to_vec(),
                counts: counts.to_vec(),
                min: if i == 0 { d.min } else { lowest.max(d.min) },
                max: if i == last { d.max } else { highest.min(d.max) },
                count,
                sum: d.sum * share,
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
        built.splits += 1;
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
