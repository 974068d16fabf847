//! The three OTLP signals as one value the pipeline can count, split and merge.
//!
//! The pipeline never looks inside spans, data points or log records; it only needs to know
//! how many "items" a batch holds (for accounting and queue budgets) and to cut a batch at
//! an item boundary (for `send_batch_max_size`). Items are spans, metric data points and log
//! records: the units OTLP's partial-success fields and our `/metrics` counters speak in.

use std::fmt;

use aurastream_proto::otlp::logs::ResourceLogs;
use aurastream_proto::otlp::metrics::{ResourceMetrics, ScopeMetrics, metric::Data};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans};
use aurastream_proto::otlp::{logs::ScopeLogs, metrics::Metric};

/// Which of the three OTLP signals a pipeline, receiver or exporter handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The noun for one item of this signal, used in messages to senders.
    pub fn item_noun(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }

    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|sig| sig.as_str() == s)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch of telemetry of one signal, in the OTLP protobuf model.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalData {
    Traces(Vec<ResourceSpans>),
    Metrics(Vec<ResourceMetrics>),
    Logs(Vec<ResourceLogs>),
}

impl SignalData {
    pub fn empty(signal: Signal) -> SignalData {
        match signal {
            Signal::Traces => SignalData::Traces(Vec::new()),
            Signal::Metrics => SignalData::Metrics(Vec::new()),
            Signal::Logs => SignalData::Logs(Vec::new()),
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            SignalData::Traces(_) => Signal::Traces,
            SignalData::Metrics(_) => Signal::Metrics,
            SignalData::Logs(_) => Signal::Logs,
        }
    }

    /// Spans, data points or log records in this batch.
    pub fn item_count(&self) -> usize {
        match self {
            SignalData::Traces(rs) => rs
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            SignalData::Metrics(rm) => rm
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(metric_point_count)
                .sum(),
            SignalData::Logs(rl) => rl
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.item_count() == 0
    }

    /// Appends `other` (which must be the same signal) to this batch.
    ///
    /// Resources are not merged: the exporters group by resource themselves, and comparing
    /// attribute lists on the hot path would cost more than the duplicated resource saves.
    pub fn append(&mut self, other: SignalData) {
        match (self, other) {
            (SignalData::Traces(a), SignalData::Traces(b)) => a.extend(b),
            (SignalData::Metrics(a), SignalData::Metrics(b)) => a.extend(b),
            (SignalData::Logs(a), SignalData::Logs(b)) => a.extend(b),
            (this, other) => {
                debug_assert!(false, "append {} to {}", other.signal(), this.signal());
            }
        }
    }

    /// Removes and returns the first `n` items (or all, if there are fewer), keeping their
    /// resource and scope. `self` keeps the rest.
    pub fn split_front(&mut self, n: usize) -> SignalData {
        match self {
            SignalData::Traces(rs) => SignalData::Traces(split_nested(
                rs,
                n,
                |r| &mut r.scope_spans,
                |s| &mut s.spans,
                |r| ResourceSpans {
                    resource: r.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: r.schema_url.clone(),
                },
                |s| ScopeSpans {
                    scope: s.scope.clone(),
                    spans: Vec::new(),
                    schema_url: s.schema_url.clone(),
                },
            )),
            SignalData::Logs(rl) => SignalData::Logs(split_nested(
                rl,
                n,
                |r| &mut r.scope_logs,
                |s| &mut s.log_records,
                |r| ResourceLogs {
                    resource: r.resource.clone(),
                    scope_logs: Vec::new(),
                    schema_url: r.schema_url.clone(),
                },
                |s| ScopeLogs {
                    scope: s.scope.clone(),
                    log_records: Vec::new(),
                    schema_url: s.schema_url.clone(),
                },
            )),
            SignalData::Metrics(rm) => SignalData::Metrics(split_metrics(rm, n)),
        }
    }
}

/// Number of data points a metric carries, whatever its type.
pub fn metric_point_count(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// Moves the first `n` leaf items of a resource → scope → items tree into a new tree.
fn split_nested<R, S, I>(
    resources: &mut Vec<R>,
    mut n: usize,
    scopes_of: impl Fn(&mut R) -> &mut Vec<S>,
    items_of: impl Fn(&mut S) -> &mut Vec<I>,
    resource_shell: impl Fn(&R) -> R,
    scope_shell: impl Fn(&S) -> S,
) -> Vec<R> {
    let mut whole_resources = 0;
    let mut cut_resource = None;
    for r in resources.iter_mut() {
        if n == 0 {
            break;
        }
        let scopes = scopes_of(r);
        let mut whole_scopes = 0;
        let mut cut_scope = None;
        for s in scopes.iter_mut() {
            if n == 0 {
                break;
            }
            let items = items_of(s);
            if items.len() <= n {
                n -= items.len();
                whole_scopes += 1;
            } else {
                let mut part = scope_shell(s);
                *items_of(&mut part) = items_of(s).drain(..n).collect();
                n = 0;
                cut_scope = Some(part);
            }
        }
        if cut_scope.is_none() && whole_scopes == scopes.len() {
            whole_resources += 1;
            continue;
        }
        let mut moved: Vec<S> = scopes.drain(..whole_scopes).collect();
        moved.extend(cut_scope);
        let mut shell = resource_shell(r);
        *scopes_of(&mut shell) = moved;
        cut_resource = Some(shell);
        break;
    }
    // Whole resources form a prefix; the one resource cut in two (if any) comes right after.
    let mut out: Vec<R> = resources.drain(..whole_resources).collect();
    out.extend(cut_resource);
    out
}

fn split_metrics(resources: &mut Vec<ResourceMetrics>, mut n: usize) -> Vec<ResourceMetrics> {
    let mut out = Vec::new();
    while n > 0 && !resources.is_empty() {
        let total: usize = resources[0]
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(metric_point_count)
            .sum();
        if total <= n {
            n -= total;
            out.push(resources.remove(0));
            continue;
        }
        let r = &mut resources[0];
        let mut shell = ResourceMetrics {
            resource: r.resource.clone(),
            scope_metrics: Vec::new(),
            schema_url: r.schema_url.clone(),
        };
        while n > 0 {
            let scope = &mut r.scope_metrics[0];
            let scope_total: usize = scope.metrics.iter().map(metric_point_count).sum();
            if scope_total <= n {
                n -= scope_total;
                shell.scope_metrics.push(r.scope_metrics.remove(0));
                continue;
            }
            let mut part = ScopeMetrics {
                scope: scope.scope.clone(),
                metrics: Vec::new(),
                schema_url: scope.schema_url.clone(),
            };
            while n > 0 {
                let points = metric_point_count(&scope.metrics[0]);
                if points <= n {
                    n -= points;
                    part.metrics.push(scope.metrics.remove(0));
                } else {
                    part.metrics
                        .push(split_metric_points(&mut scope.metrics[0], n));
                    n = 0;
                }
            }
            shell.scope_metrics.push(part);
        }
        out.push(shell);
    }
    out
}

/// Moves the first `n` data points of `m` into a copy of `m` (same name, unit, type).
fn split_metric_points(m: &mut Metric, n: usize) -> Metric {
    use aurastream_proto::otlp::metrics::{ExponentialHistogram, Gauge, Histogram, Sum, Summary};
    let data = match &mut m.data {
        Some(Data::Gauge(g)) => Some(Data::Gauge(Gauge {
            data_points: g.data_points.drain(..n).collect(),
        })),
        Some(Data::Sum(s)) => Some(Data::Sum(Sum {
            data_points: s.data_points.drain(..n).collect(),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        })),
        Some(Data::Histogram(h)) => Some(Data::Histogram(Histogram {
            data_points: h.data_points.drain(..n).collect(),
            aggregation_temporality: h.aggregation_temporality,
        })),
        Some(Data::ExponentialHistogram(h)) => {
            Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: h.data_points.drain(..n).collect(),
                aggregation_temporality: h.aggregation_temporality,
            }))
        }
        Some(Data::Summary(s)) => Some(Data::Summary(Summary {
            data_points: s.data_points.drain(..n).collect(),
        })),
        None => None,
    };
    Metric {
        name: m.name.clone(),
        description: m.description.clone(),
        unit: m.unit.clone(),
        metadata: m.metadata.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use aurastream_proto::otlp::metrics::{Gauge, NumberDataPoint};
    use aurastream_proto::otlp::resource::Resource;
    use aurastream_proto::otlp::trace::Span;

    fn resource(name: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn spans(resource_name: &str, scopes: &[usize]) -> ResourceSpans {
        ResourceSpans {
            resource: resource(resource_name),
            scope_spans: scopes
                .iter()
                .enumerate()
                .map(|(si, &count)| ScopeSpans {
                    spans: (0..count)
                        .map(|i| Span {
                            name: format!("{resource_name}/{si}/{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            schema_url: String::new(),
        }
    }

    fn span_names(d: &SignalData) -> Vec<String> {
        match d {
            SignalData::Traces(rs) => rs
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn split_front_keeps_order_and_counts_at_every_cut() {
        let original = SignalData::Traces(vec![spans("a", &[2, 3]), spans("b", &[1, 4])]);
        let all = span_names(&original);
        for cut in 0..=all.len() + 1 {
            let mut rest = original.clone();
            let front = rest.split_front(cut);
            let took = cut.min(all.len());
            assert_eq!(front.item_count(), took, "cut {cut}");
            assert_eq!(rest.item_count(), all.len() - took, "cut {cut}");
            let mut joined = span_names(&front);
            joined.extend(span_names(&rest));
            assert_eq!(joined, all, "cut {cut}");
        }
    }

    #[test]
    fn split_keeps_resource_on_both_halves() {
        let mut rest = SignalData::Traces(vec![spans("a", &[4])]);
        let front = rest.split_front(1);
        for part in [&front, &rest] {
            let SignalData::Traces(rs) = part else {
                unreachable!()
            };
            assert_eq!(rs.len(), 1);
            assert_eq!(rs[0].resource, resource("a"));
        }
    }

    #[test]
    fn metrics_split_inside_a_metric() {
        let metric = Metric {
            name: "ProcessingTime".into(),
            unit: "ms".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: (0..5)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: i,
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        };
        let mut rest = SignalData::Metrics(vec![ResourceMetrics {
            resource: resource("a"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![metric.clone(), metric],
                ..Default::default()
            }],
            schema_url: String::new(),
        }]);
        let front = rest.split_front(7);
        assert_eq!(front.item_count(), 7);
        assert_eq!(rest.item_count(), 3);
        let SignalData::Metrics(rm) = &rest else {
            unreachable!()
        };
        assert_eq!(rm[0].scope_metrics[0].metrics[0].name, "ProcessingTime");
        assert_eq!(rm[0].scope_metrics[0].metrics[0].unit, "ms");
    }
}
