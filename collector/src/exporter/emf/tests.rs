//! EMF translation and document building, end to end without network: OTLP in, parsed EMF
//! documents out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aurastream_proto::emf::{EmfDocument, EmfValue};
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::common::{AnyValue, KeyValue};
use aurastream_proto::otlp::metrics::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use aurastream_proto::otlp::resource::Resource;
use serde_json::Value;

use super::config::{
    DimensionRollup, EmfExporterConfig, InitialValue, LongDimensionValues, MetricDescriptor,
};
use super::*;
use crate::aws::cloudwatch_logs::request_builder::DEFAULT_MAX_EVENT_SIZE;
use crate::component::Reason;

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs.iter().map(|(k, v)| kv(k, v)).collect()
}

fn point(a: &[(&str, &str)], time: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(a),
        start_time_unix_nano: T0,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn sum(name: &str, cumulative: bool, points: Vec<NumberDataPoint>) -> Metric {
    let t = if cumulative {
        AggregationTemporality::Cumulative
    } else {
        AggregationTemporality::Delta
    };
    Metric {
        name: name.into(),
        unit: "{count}".into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: t as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn batch(resource: &[(&str, &str)], metrics: Vec<Metric>) -> Vec<ResourceMetrics> {
    vec![ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs(resource),
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }]
}

fn exporter(config: EmfExporterConfig) -> EmfExporter {
    EmfExporter::new("awsemf", &config, &Arc::new(SelfMetrics::new())).expect("valid config")
}

/// No rollup: most tests check a point's own dimension set exactly; the rollups (and the
/// default, `ZeroAndSingleDimensionRollup`) have tests of their own.
fn app_config() -> EmfExporterConfig {
    EmfExporterConfig {
        namespace: "AuraStream/Application".into(),
        output_destination: OutputDestination::Stdout,
        dimension_rollup_option: DimensionRollup::NoDimensionRollup,
        ..Default::default()
    }
}

fn docs(
    e: &EmfExporter,
    b: &[ResourceMetrics],
) -> (Vec<EmfDocument>, BTreeMap<&'static str, usize>) {
    let (parsed, dropped, withheld) = docs_withheld(e, b);
    assert!(
        withheld.is_empty(),
        "unexpected withheld points: {withheld:?}"
    );
    (parsed, dropped)
}

/// The documents, the points dropped and the points withheld (cumulative baselines).
fn docs_withheld(
    e: &EmfExporter,
    b: &[ResourceMetrics],
) -> (
    Vec<EmfDocument>,
    BTreeMap<&'static str, usize>,
    BTreeMap<&'static str, usize>,
) {
    let (parsed, built) = docs_built(e, b);
    (parsed, built.dropped, built.withheld)
}

/// The documents, parsed, and everything else the exporter reported about them.
fn docs_built(e: &EmfExporter, b: &[ResourceMetrics]) -> (Vec<EmfDocument>, Documents) {
    let built = e.documents(b);
    let parsed = built
        .documents
        .iter()
        .map(|d| {
            assert!(d.json.len() + 26 <= DEFAULT_MAX_EVENT_SIZE);
            serde_json::from_str::<EmfDocument>(&d.json).expect("valid EMF document")
        })
        .collect();
    (parsed, built)
}

fn value(doc: &EmfDocument, name: &str) -> Value {
    doc.fields.get(name).cloned().unwrap_or(Value::Null)
}

#[test]
fn gauge_becomes_a_document_with_dimensions_from_point_attributes() {
    let e = exporter(app_config());
    let b = batch(
        &[
            ("service.name", "sentiment-api"),
            ("host.name", "ip-10-0-0-1"),
        ],
        vec![gauge(
            "ProcessingTime",
            "ms",
            vec![point(&[("Sentiment", "POSITIVE")], T0 + SEC, 120.0)],
        )],
    );
    let (docs, dropped) = docs(&e, &b);
    assert!(dropped.is_empty());
    assert_eq!(docs.len(), 1);
    let json = serde_json::to_value(&docs[0]).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "_aws": {"Timestamp": 1_700_000_001_000i64, "CloudWatchMetrics": [{
                "Namespace": "AuraStream/Application",
                "Dimensions": [["Sentiment"]],
                "Metrics": [{"Name": "ProcessingTime", "Unit": "Milliseconds"}]
            }]},
            "Sentiment": "POSITIVE",
            "ProcessingTime": 120.0,
            // Resource attributes are properties, not dimensions.
            "service.name": "sentiment-api",
            "host.name": "ip-10-0-0-1"
        })
    );
}

#[test]
fn seed_application_metrics_share_one_document_per_label_set() {
    let e = exporter(app_config());
    let labels = [("Sentiment", "NEGATIVE")];
    let b = batch(
        &[],
        vec![
            sum(
                "SentimentAnalysisCount",
                false,
                vec![point(&labels, T0 + SEC, 1.0)],
            ),
            gauge(
                "SentimentConfidence",
                "1",
                vec![point(&labels, T0 + SEC, 0.93)],
            ),
            gauge("ProcessingTime", "ms", vec![point(&labels, T0 + SEC, 85.0)]),
        ],
    );
    let (docs, _) = docs(&e, &b);
    assert_eq!(docs.len(), 1);
    let d = &docs[0];
    assert_eq!(value(d, "SentimentAnalysisCount"), 1.0);
    assert_eq!(value(d, "SentimentConfidence"), 0.93);
    assert_eq!(value(d, "ProcessingTime"), 85.0);
    let metrics = &d.aws.cloudwatch_metrics[0].metrics;
    let units: Vec<(&str, Option<&str>)> = metrics
        .iter()
        .map(|m| (m.name.as_str(), m.unit.as_deref()))
        .collect();
    assert_eq!(
        units,
        vec![
            ("SentimentAnalysisCount", Some("Count")),
            ("SentimentConfidence", None),
            ("ProcessingTime", Some("Milliseconds"))
        ]
    );
}

#[test]
fn cumulative_sum_becomes_deltas_across_resets_and_first_point_is_withheld() {
    let e = exporter(app_config());
    let l = [("Endpoint", "/api/sentiment")];
    let send = |time: u64, start: u64, v: f64| {
        let mut p = point(&l, time, v);
        p.start_time_unix_nano = start;
        docs_withheld(&e, &batch(&[], vec![sum("APIRequestCount", true, vec![p])]))
    };
    // The series started (T0) before the exporter was created: with `initial_value: auto`
    // its first point is the baseline: withheld, not dropped.
    let (d, dropped, withheld) = send(T0 + SEC, T0, 10.0);
    assert!(d.is_empty());
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(withheld, BTreeMap::from([("initial_cumulative_point", 1)]));
    let (d, dropped, withheld) = send(T0 + 2 * SEC, T0, 15.0);
    assert_eq!(value(&d[0], "APIRequestCount"), 5.0);
    assert!(dropped.is_empty() && withheld.is_empty());
    // Counter went down: a reset, the new value is the delta.
    let (d, _, _) = send(T0 + 3 * SEC, T0, 4.0);
    assert_eq!(value(&d[0], "APIRequestCount"), 4.0);
    // Start time changed: a reset.
    let (d, _, _) = send(T0 + 4 * SEC, T0 + 3 * SEC, 7.0);
    assert_eq!(value(&d[0], "APIRequestCount"), 7.0);
    let (d, _, _) = send(T0 + 5 * SEC, T0 + 3 * SEC, 9.0);
    assert_eq!(value(&d[0], "APIRequestCount"), 2.0);
    // Same timestamp again: stale, dropped with its reason (not a baseline).
    let (d, dropped, withheld) = send(T0 + 5 * SEC, T0 + 3 * SEC, 9.0);
    assert!(d.is_empty());
    assert_eq!(dropped, BTreeMap::from([("stale_cumulative_point", 1)]));
    assert!(withheld.is_empty());
}

#[test]
fn initial_value_keep_emits_the_first_cumulative_point() {
    let e = exporter(EmfExporterConfig {
        initial_value: InitialValue::Keep,
        ..app_config()
    });
    let (d, dropped) = docs(
        &e,
        &batch(
            &[],
            vec![sum("CacheHitCount", true, vec![point(&[], T0 + SEC, 3.0)])],
        ),
    );
    assert!(dropped.is_empty());
    assert_eq!(value(&d[0], "CacheHitCount"), 3.0);
    assert_eq!(
        d[0].aws.cloudwatch_metrics[0].dimensions,
        vec![Vec::<String>::new()]
    );
}

/// Unix nanoseconds now: later than the creation of any exporter made before.
fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The first export of four cumulative series (a sum, a histogram, an exponential
/// histogram, a summary) that started at `start`, through a new exporter: the metrics
/// that became values, and the points withheld.
fn first_export(
    initial_value: InitialValue,
    start: impl FnOnce() -> u64,
) -> (Vec<String>, BTreeMap<&'static str, usize>) {
    let e = exporter(EmfExporterConfig {
        initial_value,
        ..app_config()
    });
    let start = start();
    let time = start.max(T0) + SEC;
    let mut counter = point(&[], time, 3.0);
    counter.start_time_unix_nano = start;
    let mut h = histogram_point(time, vec![2, 3, 0, 1], 2100.0, 40.0, 1400.0);
    h.start_time_unix_nano = start;
    let exponential = Metric {
        name: "ProcessingTime".into(),
        unit: "ms".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: 2,
                sum: Some(7.0),
                positive: Some(Buckets {
                    offset: 1,
                    bucket_counts: vec![2],
                }),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    };
    let summary = Metric {
        name: "SentimentConfidence".into(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: time,
                count: 4,
                sum: 3.2,
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let b = batch(
        &[],
        vec![
            sum("SentimentAnalysisCount", true, vec![counter]),
            histogram(true, vec![h]),
            exponential,
            summary,
        ],
    );
    let (d, built) = docs_built(&e, &b);
    assert!(built.dropped.is_empty(), "{:?}", built.dropped);
    let mut names: Vec<String> = d
        .iter()
        .flat_map(|doc| &doc.aws.cloudwatch_metrics)
        .flat_map(|directive| directive.metrics.iter().map(|m| m.name.clone()))
        .collect();
    names.sort();
    (names, built.withheld)
}

/// Issue 18: with the Python SDK's cumulative temporality about a quarter of histogram
/// samples never reached CloudWatch, because the first point of every series was withheld
/// as a baseline although its start time showed the series began while the collector was
/// running. `initial_value: auto` (the default) sends such a first point, for sums,
/// histograms, exponential histograms and summaries alike; a series that started before
/// the exporter, or has no start time, still only sets the baseline; `drop` withholds
/// every first point, `keep` none.
#[test]
fn initial_value_auto_keeps_first_points_of_series_that_started_after_the_exporter() {
    let all = vec![
        "APIResponseTime".to_string(),
        "ProcessingTime".to_string(),
        "SentimentAnalysisCount".to_string(),
        "SentimentConfidence".to_string(),
    ];
    let withheld = BTreeMap::from([("initial_cumulative_point", 4)]);
    assert_eq!(
        first_export(InitialValue::Auto, unix_nanos_now),
        (all.clone(), BTreeMap::new()),
        "started after the exporter was created: sent"
    );
    assert_eq!(
        first_export(InitialValue::Auto, || T0),
        (vec![], withheld.clone()),
        "started before the exporter was created: the baseline"
    );
    assert_eq!(
        first_export(InitialValue::Auto, || 0),
        (vec![], withheld.clone()),
        "no start time: the baseline"
    );
    assert_eq!(
        first_export(InitialValue::Drop, unix_nanos_now),
        (vec![], withheld.clone())
    );
    assert_eq!(
        first_export(InitialValue::Keep, || T0),
        (all, BTreeMap::new())
    );
}

/// A series is forgotten after an hour without points; if it comes back with its old start
/// time, its cumulative value was partly sent already, so `auto` withholds it even though
/// it started after the exporter. Series that start after the forgotten ones' last points
/// are still sent whole.
#[test]
fn a_forgotten_series_coming_back_is_not_sent_whole_again() {
    use super::translate::Translator;
    let t = Translator::new(
        &app_config(),
        T0,
        &prometheus_client::metrics::gauge::Gauge::default(),
    );
    let series = |start: u64, time: u64, v: f64| {
        let mut p = point(&[], time, v);
        p.start_time_unix_nano = start;
        batch(&[], vec![sum("APIRequestCount", true, vec![p])])
    };
    let other = |start: u64, time: u64| {
        let mut p = point(&[], time, 1.0);
        p.start_time_unix_nano = start;
        batch(&[], vec![sum("CacheHitCount", true, vec![p])])
    };
    let now = Instant::now();
    let out = t.translate(&series(T0 + SEC, T0 + 2 * SEC, 5.0), now, 0);
    assert_eq!(out.samples.len(), 1, "started after the exporter: sent");
    // Over an hour later: the idle series is forgotten, a new one starts.
    let later = now + Duration::from_secs(2 * 3600);
    let out = t.translate(&other(T0 + 3 * SEC, T0 + 7200 * SEC), later, 0);
    assert_eq!(
        out.samples.len(),
        1,
        "a new series after the forgotten one: sent"
    );
    let out = t.translate(&series(T0 + SEC, T0 + 7201 * SEC, 9.0), later, 0);
    assert!(out.samples.is_empty());
    assert_eq!(
        out.withheld,
        BTreeMap::from([("initial_cumulative_point", 1)])
    );
}

#[test]
fn cumulative_series_are_keyed_by_attributes() {
    let e = exporter(EmfExporterConfig {
        initial_value: InitialValue::Keep,
        ..app_config()
    });
    let m = |a: f64, b: f64, t: u64| {
        sum(
            "APIRequestCount",
            true,
            vec![
                point(&[("StatusCode", "200")], t, a),
                point(&[("StatusCode", "500")], t, b),
            ],
        )
    };
    docs(&e, &batch(&[], vec![m(100.0, 5.0, T0 + SEC)]));
    let (d, _) = docs(&e, &batch(&[], vec![m(110.0, 6.0, T0 + 2 * SEC)]));
    let mut got: Vec<(String, f64)> = d
        .iter()
        .map(|d| {
            (
                value(d, "StatusCode").as_str().unwrap_or("").to_string(),
                value(d, "APIRequestCount").as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, vec![("200".into(), 10.0), ("500".into(), 1.0)]);
}

fn histogram_point(
    time: u64,
    counts: Vec<u64>,
    sum: f64,
    min: f64,
    max: f64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: attrs(&[("Endpoint", "/api/sentiment")]),
        start_time_unix_nano: T0,
        time_unix_nano: time,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: vec![100.0, 500.0, 1000.0],
        min: Some(min),
        max: Some(max),
        ..Default::default()
    }
}

fn histogram(cumulative: bool, points: Vec<HistogramDataPoint>) -> Metric {
    let t = if cumulative {
        AggregationTemporality::Cumulative
    } else {
        AggregationTemporality::Delta
    };
    Metric {
        name: "APIResponseTime".into(),
        unit: "ms".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: t as i32,
        })),
        ..Default::default()
    }
}

#[test]
fn histogram_is_a_distribution_with_midpoints_and_min_max_edges() {
    let e = exporter(app_config());
    let p = histogram_point(T0 + SEC, vec![2, 3, 0, 1], 2100.0, 40.0, 1400.0);
    let (d, _) = docs(&e, &batch(&[], vec![histogram(false, vec![p])]));
    assert_eq!(
        value(&d[0], "APIResponseTime"),
        serde_json::json!({
            // (40+100)/2, (100+500)/2, (1000+1400)/2; the empty bucket is left out.
            "Values": [70.0, 300.0, 1200.0],
            "Counts": [2.0, 3.0, 1.0],
            "Max": 1400.0, "Min": 40.0, "Count": 6.0, "Sum": 2100.0
        })
    );
}

#[test]
fn cumulative_histogram_is_differenced_per_bucket() {
    let e = exporter(app_config());
    let h = |t, counts, s| histogram(true, vec![histogram_point(t, counts, s, 10.0, 2000.0)]);
    let (d, dropped, withheld) =
        docs_withheld(&e, &batch(&[], vec![h(T0 + SEC, vec![1, 1, 0, 0], 300.0)]));
    assert!(d.is_empty());
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(withheld.get("initial_cumulative_point"), Some(&1));
    let (d, _) = docs(
        &e,
        &batch(&[], vec![h(T0 + 2 * SEC, vec![1, 4, 0, 2], 4000.0)]),
    );
    let v = value(&d[0], "APIResponseTime");
    assert_eq!(v["Values"], serde_json::json!([300.0, 1500.0]));
    assert_eq!(v["Counts"], serde_json::json!([3.0, 2.0]));
    assert_eq!(v["Count"], 5.0);
    assert_eq!(v["Sum"], 3700.0);
    // A bucket count going down is a reset: the whole point is the delta.
    let (d, _) = docs(
        &e,
        &batch(&[], vec![h(T0 + 3 * SEC, vec![0, 1, 0, 0], 200.0)]),
    );
    let v = value(&d[0], "APIResponseTime");
    assert_eq!(v["Counts"], serde_json::json!([1.0]));
    assert_eq!(v["Sum"], 200.0);
    // No new observations: nothing to send, nothing dropped.
    let (d, dropped) = docs(
        &e,
        &batch(&[], vec![h(T0 + 4 * SEC, vec![0, 1, 0, 0], 200.0)]),
    );
    assert!(d.is_empty());
    assert!(dropped.is_empty());
}

#[test]
fn exponential_histogram_is_a_distribution() {
    let e = exporter(app_config());
    let p = ExponentialHistogramDataPoint {
        time_unix_nano: T0 + SEC,
        count: 6,
        sum: Some(20.0),
        scale: 0,
        zero_count: 1,
        positive: Some(Buckets {
            offset: 1,
            bucket_counts: vec![2, 3], // (2,4] and (4,8]
        }),
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![0],
        }),
        min: Some(0.0),
        max: Some(7.0),
        ..Default::default()
    };
    let m = Metric {
        name: "ProcessingTime".into(),
        unit: "ms".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    };
    let (d, _) = docs(&e, &batch(&[], vec![m]));
    assert_eq!(
        value(&d[0], "ProcessingTime"),
        serde_json::json!({"Values": [0.0, 3.0, 6.0], "Counts": [1.0, 2.0, 3.0],
            "Max": 7.0, "Min": 0.0, "Count": 6.0, "Sum": 20.0})
    );
}

#[test]
fn summary_is_a_statistic_set_from_quantiles_0_and_1() {
    let e = exporter(EmfExporterConfig {
        initial_value: InitialValue::Keep,
        ..app_config()
    });
    let s = |t: u64, count: u64, sum: f64| Metric {
        name: "APIResponseTime".into(),
        unit: "ms".into(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                start_time_unix_nano: T0,
                time_unix_nano: t,
                count,
                sum,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.0,
                        value: 12.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 80.0,
                    },
                    ValueAtQuantile {
                        quantile: 1.0,
                        value: 900.0,
                    },
                ],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let (d, _) = docs(&e, &batch(&[], vec![s(T0 + SEC, 10, 1000.0)]));
    assert_eq!(
        value(&d[0], "APIResponseTime"),
        serde_json::json!({"Max": 900.0, "Min": 12.0, "Count": 10.0, "Sum": 1000.0})
    );
    let (d, _) = docs(&e, &batch(&[], vec![s(T0 + 2 * SEC, 14, 1600.0)]));
    assert_eq!(value(&d[0], "APIResponseTime")["Count"], 4.0);
    assert_eq!(value(&d[0], "APIResponseTime")["Sum"], 600.0);
}

#[test]
fn nan_and_infinite_points_are_dropped_and_counted() {
    let e = exporter(app_config());
    let b = batch(
        &[],
        vec![gauge(
            "SentimentConfidence",
            "1",
            vec![
                point(&[], T0 + SEC, f64::NAN),
                point(&[], T0 + SEC, f64::INFINITY),
                point(&[], T0 + SEC, 0.5),
            ],
        )],
    );
    let (d, dropped) = docs(&e, &b);
    assert_eq!(d.len(), 1);
    assert_eq!(value(&d[0], "SentimentConfidence"), 0.5);
    assert_eq!(dropped.get("nan_value"), Some(&1));
    assert_eq!(dropped.get("non_finite_value"), Some(&1));
}

#[test]
fn namespace_attribute_overrides_per_point_and_per_resource() {
    let e = exporter(app_config());
    let mut b = batch(
        &[],
        vec![gauge(
            "Revenue",
            "1",
            vec![point(
                &[
                    ("CustomerId", "c1"),
                    ("aws.emf.namespace", "AuraStream/Revenue"),
                ],
                T0 + SEC,
                9.5,
            )],
        )],
    );
    b.extend(batch(
        &[("aws.emf.namespace", "AuraStream/Business")],
        vec![gauge(
            "CustomerActivity",
            "{count}",
            vec![point(&[("CustomerId", "c1")], T0 + SEC, 2.0)],
        )],
    ));
    b.extend(batch(
        &[],
        vec![gauge("CacheHitRate", "1", vec![point(&[], T0 + SEC, 1.0)])],
    ));
    let (d, _) = docs(&e, &b);
    let mut namespaces: Vec<(String, Vec<Vec<String>>)> = d
        .iter()
        .map(|d| {
            let m = &d.aws.cloudwatch_metrics[0];
            (m.namespace.clone(), m.dimensions.clone())
        })
        .collect();
    namespaces.sort();
    assert_eq!(
        namespaces,
        vec![
            ("AuraStream/Application".into(), vec![vec![]]),
            (
                "AuraStream/Business".into(),
                vec![vec!["CustomerId".to_string()]]
            ),
            (
                "AuraStream/Revenue".into(),
                vec![vec!["CustomerId".to_string()]]
            ),
        ]
    );
    // The namespace attribute is neither a dimension nor a property.
    assert!(
        d.iter()
            .all(|d| !d.fields.contains_key("aws.emf.namespace"))
    );
}

#[test]
fn resource_attributes_can_be_dimensions_or_left_out() {
    let b = batch(
        &[("service.name", "api")],
        vec![gauge(
            "CacheHitRate",
            "1",
            vec![point(&[("Tier", "l1")], T0 + SEC, 1.0)],
        )],
    );
    let e = exporter(EmfExporterConfig {
        resource_to_telemetry_conversion: config::ResourceToTelemetry { enabled: true },
        ..app_config()
    });
    let (d, _) = docs(&e, &b);
    assert_eq!(
        d[0].aws.cloudwatch_metrics[0].dimensions,
        vec![vec!["Tier".to_string(), "service.name".to_string()]]
    );
    let e = exporter(EmfExporterConfig {
        resource_attributes_as_properties: false,
        ..app_config()
    });
    let (d, _) = docs(&e, &b);
    assert!(!d[0].fields.contains_key("service.name"));
}

#[test]
fn metric_descriptors_override_units() {
    let e = exporter(EmfExporterConfig {
        metric_descriptors: vec![
            MetricDescriptor {
                metric_name: "ProcessingTime".into(),
                unit: Some("Seconds".into()),
                storage_resolution: Some(1),
            },
            MetricDescriptor {
                metric_name: "Usage".into(),
                unit: Some("None".into()),
                storage_resolution: None,
            },
        ],
        ..app_config()
    });
    let b = batch(
        &[],
        vec![
            gauge("ProcessingTime", "ms", vec![point(&[], T0 + SEC, 1.0)]),
            gauge("Usage", "{count}", vec![point(&[], T0 + SEC, 1.0)]),
        ],
    );
    let (d, _) = docs(&e, &b);
    let m = &d[0].aws.cloudwatch_metrics[0].metrics;
    assert_eq!(m[0].unit.as_deref(), Some("Seconds"));
    assert_eq!(m[0].storage_resolution, Some(1));
    assert_eq!(m[1].unit, None);
}

#[test]
fn metric_descriptors_match_names_ignoring_case_and_give_their_spelling() {
    // What the Python SDK sends for the seed's instruments: names lower-cased.
    let e = exporter(EmfExporterConfig {
        metric_descriptors: serde_yaml_ng::from_str(
            "[{metric_name: SentimentAnalysisCount}, {metric_name: CacheHitRate, unit: None},\
              {metric_name: APIResponseTime, unit: Milliseconds}]",
        )
        .expect("yaml"),
        metric_declarations: serde_yaml_ng::from_str(
            "- {dimensions: [[Sentiment]], metric_name_selectors: ['^SentimentAnalysisCount$']}",
        )
        .expect("yaml"),
        ..app_config()
    });
    let l = [("Sentiment", "POSITIVE")];
    let b = batch(
        &[],
        vec![
            sum(
                "sentimentanalysiscount",
                false,
                vec![point(&l, T0 + SEC, 4.0)],
            ),
            gauge("cachehitrate", "1", vec![point(&l, T0 + SEC, 0.75)]),
            gauge("APIRESPONSETIME", "", vec![point(&l, T0 + SEC, 120.0)]),
            gauge("processingtime", "ms", vec![point(&l, T0 + SEC, 80.0)]),
        ],
    );
    let (d, dropped) = docs(&e, &b);
    assert!(dropped.is_empty());
    assert_eq!(d.len(), 1);
    // Values are filed under the descriptor's spelling; others keep the received name.
    assert_eq!(value(&d[0], "SentimentAnalysisCount"), 4.0);
    assert_eq!(value(&d[0], "CacheHitRate"), 0.75);
    assert_eq!(value(&d[0], "APIResponseTime"), 120.0);
    assert_eq!(value(&d[0], "processingtime"), 80.0);
    assert_eq!(value(&d[0], "sentimentanalysiscount"), Value::Null);
    // The declaration written in CamelCase selects the renamed metric (and only it).
    let directives = &d[0].aws.cloudwatch_metrics;
    assert_eq!(directives.len(), 1);
    let defined: Vec<(&str, Option<&str>)> = directives[0]
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.unit.as_deref()))
        .collect();
    // No unit in the descriptor: the OTLP unit's mapping (`{count}` -> Count).
    assert_eq!(defined, vec![("SentimentAnalysisCount", Some("Count"))]);
    assert_eq!(
        directives[0].dimensions,
        vec![vec!["Sentiment".to_string()]]
    );

    // Units of the other descriptors, with no declarations to filter them.
    let e = exporter(EmfExporterConfig {
        metric_descriptors: serde_yaml_ng::from_str(
            "[{metric_name: CacheHitRate, unit: None}, {metric_name: APIResponseTime, unit: Milliseconds}]",
        )
        .expect("yaml"),
        ..app_config()
    });
    let (d, _) = docs(&e, &b);
    let mut units: Vec<(String, Option<String>)> = d
        .iter()
        .flat_map(|d| &d.aws.cloudwatch_metrics)
        .flat_map(|c| &c.metrics)
        .map(|m| (m.name.clone(), m.unit.clone()))
        .collect();
    units.sort();
    assert_eq!(
        units,
        vec![
            (
                "APIResponseTime".to_string(),
                Some("Milliseconds".to_string())
            ),
            ("CacheHitRate".to_string(), None),
            (
                "processingtime".to_string(),
                Some("Milliseconds".to_string())
            ),
            (
                "sentimentanalysiscount".to_string(),
                Some("Count".to_string())
            ),
        ]
    );
}

#[tokio::test]
async fn export_reports_baselines_as_withheld_not_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = exporter(EmfExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(dir.path().join("emf.jsonl")),
        ..app_config()
    });
    let b = |t: u64, v: f64| {
        SignalData::Metrics(batch(
            &[],
            vec![
                sum(
                    "APIRequestCount",
                    true,
                    vec![
                        point(&[("StatusCode", "200")], t, v),
                        point(&[("StatusCode", "500")], t, f64::NAN),
                    ],
                ),
                gauge("CacheHitRate", "1", vec![point(&[], t, 0.5)]),
            ],
        ))
    };
    let first = e.export(&b(T0 + SEC, 10.0)).await.expect("exported");
    assert_eq!(
        first.withheld.to_vec(),
        vec![(Reason::Named("initial_cumulative_point"), 1)]
    );
    assert_eq!(first.dropped, vec![(Reason::Named("nan_value"), 1)]);
    let second = e.export(&b(T0 + 2 * SEC, 12.0)).await.expect("exported");
    assert!(second.withheld.is_empty());
    assert_eq!(second.dropped, vec![(Reason::Named("nan_value"), 1)]);
    e.flush().await.expect("flushed");
    let docs: Vec<EmfDocument> = std::fs::read_to_string(dir.path().join("emf.jsonl"))
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("EMF"))
        .collect();
    let counts: Vec<Value> = docs
        .iter()
        .map(|d| value(d, "APIRequestCount"))
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(counts, vec![Value::from(2.0)]);
    let rates = docs
        .iter()
        .filter(|d| value(d, "CacheHitRate") == 0.5)
        .count();
    assert_eq!(rates, 2);
}

/// Through the pipeline's driver: baselines are `exporter_withheld_items`, not failures,
/// and every point is sent, withheld or failed with a reason.
#[tokio::test]
async fn the_driver_counts_withheld_points_apart_from_sent_and_failed() {
    use crate::component::{RetryConfig, SendingQueueConfig};
    use crate::model::Batch;
    use crate::model::ItemBudget;
    use crate::topology::driver::{Driver, ExporterState};
    use prometheus_client::metrics::gauge::Gauge;

    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(SelfMetrics::new());
    let e = EmfExporter::new(
        "awsemf",
        &EmfExporterConfig {
            output_destination: OutputDestination::File,
            path: Some(dir.path().join("emf.jsonl")),
            ..app_config()
        },
        &metrics,
    )
    .expect("valid config");
    let driver = Driver::new(
        "awsemf",
        "metrics",
        Arc::new(e),
        RetryConfig::default(),
        &SendingQueueConfig::default(),
        Arc::new(std::sync::Mutex::new(ExporterState::default())),
        metrics.clone(),
        Signal::Metrics,
    );
    let budget = ItemBudget::new(1000, Gauge::default(), Gauge::default());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    // Two rounds of 3 cumulative series + 1 gauge, one NaN gauge point per round.
    for round in 1..=2u64 {
        let t = T0 + round * SEC;
        let series = ["200", "404", "500"]
            .iter()
            .map(|code| point(&[("StatusCode", code)], t, 10.0 * round as f64))
            .collect();
        let data = SignalData::Metrics(batch(
            &[],
            vec![
                sum("APIRequestCount", true, series),
                gauge(
                    "CacheHitRate",
                    "1",
                    vec![point(&[], t, 0.5), point(&[("a", "b")], t, f64::NAN)],
                ),
            ],
        ));
        let ticket = budget.try_admit(data.item_count()).expect("budget");
        tx.send(Arc::new(Batch { data, ticket }))
            .await
            .expect("driver takes the batch");
    }
    drop(tx);
    driver.run(rx).await;

    let text = metrics.encode();
    let sample = |name: &str, reason: Option<&str>| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("exporter=\"awsemf\""))
            .filter(|l| reason.is_none_or(|r| l.contains(&format!("reason=\"{r}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let withheld = sample("aurastream_exporter_withheld_items_total", None);
    let sent = sample("aurastream_exporter_sent_items_total", None);
    let failed = sample("aurastream_exporter_failed_items_total", None);
    assert_eq!(
        sample(
            "aurastream_exporter_withheld_items_total",
            Some("initial_cumulative_point")
        ),
        3,
        "{text}"
    );
    assert_eq!(withheld, 3, "{text}");
    assert_eq!(
        sample("aurastream_exporter_failed_items_total", Some("nan_value")),
        2
    );
    assert_eq!(failed, 2, "only the NaN points failed: {text}");
    // Round 1: one gauge; round 2: three deltas and one gauge.
    assert_eq!(sent, 5, "{text}");
    assert_eq!(sent + withheld + failed, 2 * 5, "every point accounted for");
}

#[test]
fn declarations_select_metrics_and_dimension_sets_with_rollup() {
    let e = exporter(EmfExporterConfig {
        metric_declarations: serde_yaml_ng::from_str(
            "- {dimensions: [[Endpoint, CustomerId], [Endpoint]], metric_name_selectors: ['^API']}",
        )
        .expect("yaml"),
        dimension_rollup_option: DimensionRollup::ZeroAndSingleDimensionRollup,
        ..app_config()
    });
    let l = [
        ("Endpoint", "/api/sentiment"),
        ("CustomerId", "c1"),
        ("StatusCode", "200"),
    ];
    let b = batch(
        &[],
        vec![
            gauge("APIResponseTime", "ms", vec![point(&l, T0 + SEC, 250.0)]),
            gauge("CacheHitRate", "1", vec![point(&l, T0 + SEC, 1.0)]),
        ],
    );
    let (d, _) = docs(&e, &b);
    assert_eq!(d.len(), 1);
    let directives = &d[0].aws.cloudwatch_metrics;
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0].metrics.len(), 1);
    assert_eq!(directives[0].metrics[0].name, "APIResponseTime");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        directives[0].dimensions,
        vec![
            s(&["CustomerId", "Endpoint"]),
            s(&["Endpoint"]),
            s(&[]),
            s(&["CustomerId"]),
            s(&["StatusCode"]),
        ]
    );
    // The unselected metric is still in the document, just not a CloudWatch metric.
    assert_eq!(value(&d[0], "CacheHitRate"), 1.0);
}

#[test]
fn more_than_100_metrics_are_split_across_documents() {
    let e = exporter(app_config());
    let metrics: Vec<Metric> = (0..250)
        .map(|i| {
            gauge(
                &format!("m{i:03}"),
                "1",
                vec![point(&[("k", "v")], T0 + SEC, i as f64)],
            )
        })
        .collect();
    let (d, built) = docs_built(&e, &batch(&[], metrics));
    assert!(built.dropped.is_empty());
    assert_eq!(
        built.events,
        BTreeMap::from([("split_metrics_over_100", 1)])
    );
    let sizes: Vec<usize> = d
        .iter()
        .map(|d| d.aws.cloudwatch_metrics[0].metrics.len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    // Each value in exactly one document, at its metric's name.
    let values: Vec<f64> = d
        .iter()
        .flat_map(|doc| {
            doc.aws.cloudwatch_metrics[0]
                .metrics
                .iter()
                .map(|m| value(doc, &m.name).as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    assert_eq!(values, (0..250).map(f64::from).collect::<Vec<_>>());
    // Every point present exactly once.
    let mut names: Vec<String> = d
        .iter()
        .flat_map(|d| {
            d.aws.cloudwatch_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.clone())
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 250);
}

#[test]
fn more_than_30_dimensions_are_cut_into_sets_of_30() {
    let e = exporter(app_config());
    let labels: Vec<(String, String)> = (0..65).map(|i| (format!("d{i:02}"), "x".into())).collect();
    let l: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (d, built) = docs_built(
        &e,
        &batch(&[], vec![gauge("m", "1", vec![point(&l, T0 + SEC, 1.0)])]),
    );
    assert!(built.dropped.is_empty());
    assert_eq!(
        built.events,
        BTreeMap::from([("split_dimensions_over_30", 1)])
    );
    assert_eq!(d.len(), 1);
    let sets = &d[0].aws.cloudwatch_metrics[0].dimensions;
    let keys = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("d{i:02}")).collect()
    };
    assert_eq!(sets, &vec![keys(0..30), keys(30..60), keys(60..65)]);
    assert_eq!(value(&d[0], "m"), 1.0);
}

/// 251 buckets hit once each: three documents of 100, 100 and 51 values. The first
/// carries the original Sum, Min and Max; the others Sum 0 and their own range, so
/// CloudWatch's combination (sums and counts added, lowest Min, highest Max) is exactly
/// the original.
#[test]
fn distributions_with_more_than_100_values_are_split_keeping_totals() {
    let e = exporter(app_config());
    let bounds: Vec<f64> = (1..=250).map(f64::from).collect();
    let p = HistogramDataPoint {
        attributes: attrs(&[("Endpoint", "/api/sentiment")]),
        time_unix_nano: T0 + SEC,
        count: 251,
        sum: Some(31_500.0),
        bucket_counts: vec![1; 251],
        explicit_bounds: bounds,
        min: Some(0.5),
        max: Some(260.0),
        ..Default::default()
    };
    let (d, built) = docs_built(&e, &batch(&[], vec![histogram(false, vec![p])]));
    assert!(built.dropped.is_empty());
    assert_eq!(built.events, BTreeMap::from([("split_values_over_100", 1)]));
    assert_eq!(d.len(), 3);
    // Bucket 0 is (min, 1] => 0.75; bucket i is (i, i+1] => i + 0.5; bucket 250 is
    // (250, max] => 255.
    let mids =
        |range: std::ops::Range<u32>| -> Vec<f64> { range.map(|i| f64::from(i) + 0.5).collect() };
    let mut first = vec![0.75];
    first.extend(mids(1..100));
    let mut last = mids(200..250);
    last.push(255.0);
    let dist = |values: Vec<f64>, min: f64, max: f64, sum: f64| {
        let n = values.len();
        serde_json::json!({"Values": values, "Counts": vec![1.0; n],
            "Min": min, "Max": max, "Count": n as f64, "Sum": sum})
    };
    assert_eq!(
        value(&d[0], "APIResponseTime"),
        dist(first, 0.5, 260.0, 31_500.0)
    );
    assert_eq!(
        value(&d[1], "APIResponseTime"),
        dist(mids(100..200), 100.5, 199.5, 0.0)
    );
    assert_eq!(
        value(&d[2], "APIResponseTime"),
        dist(last, 200.5, 255.0, 0.0)
    );
    // All parts share timestamp and dimensions, so CloudWatch combines them; the data
    // point counts once, in the first document.
    for doc in &d {
        assert_eq!(doc.aws.timestamp, d[0].aws.timestamp);
        assert_eq!(
            doc.aws.cloudwatch_metrics[0].dimensions,
            vec![vec!["Endpoint".to_string()]]
        );
        assert_eq!(value(doc, "Endpoint"), "/api/sentiment");
    }
    let points: Vec<usize> = built.documents.iter().map(|b| b.points).collect();
    assert_eq!(points, vec![1, 0, 0]);
}

/// Other metrics of the same point group travel in the first document only; a split
/// exponential histogram keeps its counts, negative values first.
#[test]
fn exponential_histograms_with_more_than_100_buckets_are_split_too() {
    let e = exporter(app_config());
    let p = ExponentialHistogramDataPoint {
        time_unix_nano: T0 + SEC,
        count: 150 + 30 + 5,
        sum: Some(1234.5),
        scale: 3,
        zero_count: 5,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1; 150],
        }),
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1; 30],
        }),
        min: Some(-20.0),
        max: Some(500_000.0),
        ..Default::default()
    };
    let m = Metric {
        name: "ProcessingTime".into(),
        unit: "ms".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    };
    let (d, built) = docs_built(
        &e,
        &batch(
            &[],
            vec![
                m,
                gauge("CacheHitRate", "1", vec![point(&[], T0 + SEC, 0.5)]),
            ],
        ),
    );
    assert_eq!(built.events, BTreeMap::from([("split_values_over_100", 1)]));
    assert_eq!(d.len(), 2);
    let parts: Vec<Value> = d.iter().map(|doc| value(doc, "ProcessingTime")).collect();
    let lens: Vec<usize> = parts
        .iter()
        .map(|p| p["Values"].as_array().map_or(0, Vec::len))
        .collect();
    // 30 negative buckets, the zero bucket, 150 positive buckets.
    assert_eq!(lens, vec![100, 81]);
    let counts: Vec<f64> = parts
        .iter()
        .map(|p| p["Count"].as_f64().unwrap_or(0.0))
        .collect();
    // The first part: 30 negative buckets, the zero bucket (5) and 69 positive ones.
    assert_eq!(counts, vec![104.0, 81.0]);
    let sums: Vec<f64> = parts
        .iter()
        .map(|p| p["Sum"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(sums, vec![1234.5, 0.0]);
    assert_eq!(
        (parts[0]["Min"].clone(), parts[0]["Max"].clone()),
        (Value::from(-20.0), Value::from(500_000.0))
    );
    let values = |p: &Value| -> Vec<f64> {
        p["Values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    assert!(values(&parts[0])[..30].iter().all(|v| *v < 0.0));
    assert_eq!(values(&parts[0])[30], 0.0);
    // The second part's range is its own values', within the original's.
    let second = values(&parts[1]);
    assert_eq!(parts[1]["Min"].as_f64(), second.first().copied());
    assert_eq!(parts[1]["Max"].as_f64(), second.last().copied());
    // The gauge sharing the (empty) label set is sent once, with the first part.
    assert_eq!(value(&d[0], "CacheHitRate"), 0.5);
    assert_eq!(value(&d[1], "CacheHitRate"), Value::Null);
}

#[test]
fn documents_over_the_event_size_are_halved() {
    let e = exporter(app_config());
    // 100 metrics with 2,000-character names: about 400 KB in one document, so it is
    // halved into two of about 200 KB.
    let metrics: Vec<Metric> = (0..100)
        .map(|i| {
            gauge(
                &format!("m{i:03}{}", "n".repeat(1996)),
                "1",
                vec![point(&[("k", "v")], T0 + SEC, f64::from(i))],
            )
        })
        .collect();
    let (d, built) = docs_built(&e, &batch(&[], metrics));
    assert!(built.dropped.is_empty());
    assert_eq!(built.events, BTreeMap::from([("split_event_size", 1)]));
    let sizes: Vec<usize> = d
        .iter()
        .map(|d| d.aws.cloudwatch_metrics[0].metrics.len())
        .collect();
    assert_eq!(sizes, vec![50, 50]);
    // A single metric whose document alone exceeds 256 KB cannot be split: dropped,
    // counted. (A resource attribute: a plain property, which has no length limit of its
    // own; a dimension value that long would be truncated.)
    let huge = "x".repeat(300 * 1024);
    let (d, dropped) = docs(
        &e,
        &batch(
            &[("blob", huge.as_str())],
            vec![gauge("big", "1", vec![point(&[], T0 + SEC, 1.0)])],
        ),
    );
    assert!(d.is_empty());
    assert_eq!(dropped.get("document_too_large"), Some(&1));
}

/// A dimension value over 1,024 characters is cut to exactly 1,024 (the first 1,010 and
/// the marker), counted once per value; values of 1,024 characters are left alone, and
/// characters, not bytes, are counted.
#[test]
fn long_dimension_values_are_truncated_with_a_marker_and_counted() {
    let e = exporter(app_config());
    let long = format!("{}{}", "a".repeat(1500), "b".repeat(500));
    let accented = "é".repeat(1100);
    let exact = "c".repeat(1024);
    let wide_bytes = "ü".repeat(1000);
    let p = point(
        &[
            ("Payload", long.as_str()),
            ("Name", accented.as_str()),
            ("Exact", exact.as_str()),
            ("Wide", wide_bytes.as_str()),
            ("Route", "/x"),
        ],
        T0 + SEC,
        3.0,
    );
    let (d, built) = docs_built(&e, &batch(&[], vec![gauge("LongCount", "1", vec![p])]));
    assert!(built.dropped.is_empty());
    assert_eq!(
        built.events,
        BTreeMap::from([("dimension_value_truncated", 2)])
    );
    assert_eq!(d.len(), 1);
    assert_eq!(
        value(&d[0], "Payload"),
        format!("{}...[truncated]", "a".repeat(1010))
    );
    assert_eq!(
        value(&d[0], "Name"),
        format!("{}...[truncated]", "é".repeat(1010))
    );
    assert_eq!(value(&d[0], "Exact"), exact.as_str());
    assert_eq!(value(&d[0], "Wide"), wide_bytes.as_str());
    for k in ["Payload", "Name"] {
        assert_eq!(
            value(&d[0], k).as_str().map(|v| v.chars().count()),
            Some(1024)
        );
    }
    assert_eq!(value(&d[0], "LongCount"), 3.0);
    assert_eq!(
        d[0].aws.cloudwatch_metrics[0].dimensions,
        vec![
            ["Exact", "Name", "Payload", "Route", "Wide"]
                .map(String::from)
                .to_vec()
        ]
    );
}

/// With `long_dimension_values: property` the value stays whole as a plain property and
/// the dimension leaves every set (sets that become equal are kept once).
#[test]
fn long_dimension_values_can_be_kept_as_properties_instead() {
    let e = exporter(EmfExporterConfig {
        long_dimension_values: LongDimensionValues::Property,
        dimension_rollup_option: DimensionRollup::ZeroAndSingleDimensionRollup,
        ..app_config()
    });
    let long = "p".repeat(2000);
    let p = point(
        &[("Payload", long.as_str()), ("Route", "/x")],
        T0 + SEC,
        1.0,
    );
    let (d, built) = docs_built(&e, &batch(&[], vec![gauge("LongCount", "1", vec![p])]));
    assert!(built.dropped.is_empty());
    assert_eq!(
        built.events,
        BTreeMap::from([("dimension_value_as_property", 1)])
    );
    assert_eq!(value(&d[0], "Payload"), long.as_str());
    assert_eq!(
        d[0].aws.cloudwatch_metrics[0].dimensions,
        vec![vec!["Route".to_string()], vec![]]
    );
}

/// A long value that is in no dimension set (declarations leave it out) is a plain
/// property already: left whole, nothing counted.
#[test]
fn long_values_outside_the_dimension_sets_are_left_alone() {
    let e = exporter(EmfExporterConfig {
        metric_declarations: serde_yaml_ng::from_str(
            "- {dimensions: [[Route]], metric_name_selectors: ['^LongCount$']}",
        )
        .expect("yaml"),
        ..app_config()
    });
    let long = "p".repeat(2000);
    let p = point(
        &[("Payload", long.as_str()), ("Route", "/x")],
        T0 + SEC,
        1.0,
    );
    let (d, built) = docs_built(&e, &batch(&[], vec![gauge("LongCount", "1", vec![p])]));
    assert!(built.events.is_empty(), "{:?}", built.events);
    assert_eq!(value(&d[0], "Payload"), long.as_str());
}

/// The default rollup, per number of labels N: N = 0 gives 1 set, N = 1 gives 2 (the label
/// and none), N = 3 gives 5 (all three, none, each alone): the counts the README states.
#[test]
fn the_default_rollup_adds_the_metric_without_dimensions_and_one_set_per_label() {
    let e = exporter(EmfExporterConfig {
        dimension_rollup_option: EmfExporterConfig::default().dimension_rollup_option,
        ..app_config()
    });
    let sets_for = |labels: &[(&str, &str)]| {
        let (d, _) = docs(
            &e,
            &batch(
                &[],
                vec![gauge("m", "1", vec![point(labels, T0 + SEC, 1.0)])],
            ),
        );
        d[0].aws.cloudwatch_metrics[0].dimensions.clone()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(sets_for(&[]), vec![s(&[])]);
    assert_eq!(
        sets_for(&[("Sentiment", "POSITIVE")]),
        vec![s(&["Sentiment"]), s(&[])]
    );
    assert_eq!(
        sets_for(&[
            ("Endpoint", "/a"),
            ("CustomerId", "c1"),
            ("StatusCode", "200")
        ]),
        vec![
            s(&["CustomerId", "Endpoint", "StatusCode"]),
            s(&[]),
            s(&["CustomerId"]),
            s(&["Endpoint"]),
            s(&["StatusCode"]),
        ]
    );
}

#[test]
fn cardinality_guard_folds_into_other() {
    let e = exporter(EmfExporterConfig {
        max_dimension_sets_per_metric: 2,
        ..app_config()
    });
    let points: Vec<NumberDataPoint> = (0..5)
        .map(|i| point(&[("CustomerId", &format!("c{i}"))], T0 + SEC, 1.0))
        .collect();
    let (d, dropped) = docs(
        &e,
        &batch(&[], vec![gauge("APIRequestCount", "{count}", points)]),
    );
    assert!(dropped.is_empty());
    let mut customers: Vec<String> = d
        .iter()
        .map(|d| value(d, "CustomerId").as_str().unwrap_or("").to_string())
        .collect();
    customers.sort();
    // Three folded points: same metric, same labels, so three documents with `_other`.
    assert_eq!(customers, vec!["_other", "_other", "_other", "c0", "c1"]);
    let total: f64 = d
        .iter()
        .map(|d| value(d, "APIRequestCount").as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(total, 5.0);
}

#[test]
fn every_document_parses_as_emf_with_values_for_declared_metrics() {
    let e = exporter(app_config());
    let b = batch(
        &[],
        vec![
            gauge("CacheHitRate", "1", vec![point(&[], T0 + SEC, 0.0)]),
            sum("CacheMissCount", false, vec![point(&[], T0 + SEC, 1.0)]),
        ],
    );
    let (d, _) = docs(&e, &b);
    for doc in &d {
        for directive in &doc.aws.cloudwatch_metrics {
            for m in &directive.metrics {
                assert!(
                    matches!(
                        serde_json::from_value::<EmfValue>(value(doc, &m.name)),
                        Ok(EmfValue::Single(_))
                    ),
                    "{}",
                    m.name
                );
            }
        }
    }
}

#[tokio::test]
async fn file_output_writes_one_document_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("emf.jsonl");
    let e = exporter(EmfExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(path.clone()),
        ..app_config()
    });
    let b = batch(
        &[],
        vec![gauge(
            "CacheHitRate",
            "1",
            vec![
                point(&[("a", "1")], T0 + SEC, 1.0),
                point(&[("a", "2")], T0 + SEC, f64::NAN),
            ],
        )],
    );
    let report = e.export(&SignalData::Metrics(b)).await.expect("exported");
    assert_eq!(report.dropped, vec![(Reason::Named("nan_value"), 1)]);
    e.flush().await.expect("flushed");
    let text = std::fs::read_to_string(&path).expect("file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let doc: EmfDocument = serde_json::from_str(lines[0]).expect("EMF");
    assert_eq!(value(&doc, "a"), "1");
}

/// `series` cumulative histograms of 50 buckets, each on its own series.
fn wide_histograms(round: usize, series: usize) -> SignalData {
    let bounds: Vec<f64> = (1..50).map(f64::from).collect();
    let points = (0..series)
        .map(|i| HistogramDataPoint {
            attributes: attrs(&[("Customer", &format!("c{round}-{i}"))]),
            start_time_unix_nano: T0,
            time_unix_nano: T0 + SEC,
            count: 50,
            sum: Some(1.0),
            bucket_counts: vec![1; 50],
            explicit_bounds: bounds.clone(),
            ..Default::default()
        })
        .collect();
    SignalData::Metrics(batch(&[], vec![histogram(true, points)]))
}

/// Built from a configuration as the collector builds it: the exporter's per-series state
/// is part of the one memory budget, so once that state alone is over the soft limit (no
/// request or batch held), receivers refuse and `/health` says why.
#[tokio::test]
async fn series_state_counts_against_the_memory_limit_and_receivers_refuse_over_it() {
    use crate::component::ConsumeError;
    use crate::model::memory::MIB;

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: }} }} }}
exporters: {{ awsemf: {{ output_destination: file, path: "{}" }} }}
service:
  memory_limiter: {{ limit_mib: 2, spike_limit_mib: 1 }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [awsemf] }}
"#,
        dir.path().join("emf.jsonl").display()
    );
    let config = crate::config::load_sources(
        &[crate::config::ConfigSource {
            name: "test.yaml".into(),
            text: yaml,
        }],
        |_| None,
    )
    .expect("valid configuration");
    let metrics = Arc::new(SelfMetrics::new());
    let health = crate::telemetry::health::HealthRegistry::default();
    let mut pipelines = crate::topology::build::build(
        &config,
        &metrics,
        &health,
        &crate::component::auth::Authenticators::default(),
    )
    .expect("built");
    let consumer = pipelines
        .consumers
        .remove(&("otlp".to_string(), Signal::Metrics))
        .expect("the receiver's consumer");
    let state = metrics.exporter_held_bytes("awsemf");
    // What requests and batches hold (the account without the watched gauges).
    let claims = || {
        metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("aurastream_memory_limiter_held_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let settled = || async {
        for _ in 0..3000 {
            if claims() == Some(0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the batch was never exported");
    };
    let mut round = 0;
    while (state.get() as usize) < MIB {
        let before = state.get();
        consumer
            .try_consume(wide_histograms(round, 100))
            .expect("under the soft limit: admitted");
        settled().await;
        assert!(state.get() > before, "100 new series are charged");
        round += 1;
    }
    assert!(
        round > 1,
        "a few rounds of series, not one batch, fill the budget"
    );

    // Nothing in flight: what is held is the exporter's state alone.
    let report = serde_json::to_value(health.report()).expect("json");
    let limiter = &report["checks"]["memory_limiter"];
    assert_eq!(limiter["held_bytes"], state.get(), "{report}");
    assert_eq!(limiter["status"], "degraded", "{report}");
    let refused = consumer.try_consume(wide_histograms(round, 1));
    assert!(
        matches!(refused, Err(ConsumeError::MemoryLimit(_))),
        "{refused:?}"
    );
    let text = metrics.encode();
    assert!(
        text.contains(&format!(
            "aurastream_exporter_held_bytes{{component=\"awsemf\"}} {}",
            state.get()
        )),
        "{text}"
    );

    drop(consumer);
    drop(pipelines.consumers);
    while pipelines.tasks.join_next().await.is_some() {}
}
