//! The seed's metric vocabulary as typed calls.
//!
//! Every call emits exactly the names, units and dimensions of the monitoring guide, so the
//! CloudWatch dashboards and alarms written against it keep working. Two things differ from
//! the guide's boto3 code, on purpose:
//!
//! * **Namespace per data point.** OpenTelemetry has no CloudWatch namespace, so each data
//!   point carries the attribute [`NAMESPACE_ATTRIBUTE`] (`aws.emf.namespace`). The
//!   collector's EMF exporter files the metric under that namespace and does not turn the
//!   attribute into a dimension.
//! * **Units in UCUM** (`{count}`, `ms`, `1`): the OpenTelemetry convention. The EMF exporter
//!   maps them back to CloudWatch's `Count`, `Milliseconds` and `None`.
//!
//! Latencies and per-event values are histograms, so CloudWatch can answer p99 (the guide's
//! SLO is "P99 latency < 1000ms"); counts are monotonic counters.
//!
//! # The cost of `CustomerId`
//!
//! CloudWatch bills every distinct combination of metric name, namespace and dimension values
//! as one custom metric (about $0.30 per metric-month at the first tier). `APIRequestCount`
//! with `Endpoint × CustomerId × StatusCode` becomes *endpoints × customers × status codes*
//! metrics: 10 endpoints, 5 000 customers and 4 status codes are 200 000 metrics, about
//! $60 000 a month for one metric name. In EMF the dimension also multiplies the
//! series the collector keeps in memory. Turn it off with
//! [`crate::TelemetryBuilder::customer_id_dimension`]`(false)` and keep per-customer detail in
//! the structured logs (which carry `customer_id`) queried with CloudWatch Logs Insights.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// The data point attribute that names the CloudWatch namespace for the EMF exporter.
pub const NAMESPACE_ATTRIBUTE: &str = "aws.emf.namespace";

/// CloudWatch namespaces used by the guide.
pub mod namespace {
    /// Sentiment analysis, cache and API usage metrics.
    pub const APPLICATION: &str = "AuraStream/Application";
    /// Customer activity, revenue and usage for the business dashboard.
    pub const BUSINESS: &str = "AuraStream/Business";
    /// Per-customer usage by type.
    pub const CUSTOMER: &str = "AuraStream/Customer";
    /// Revenue analytics (MRR is computed from `Revenue` here).
    pub const REVENUE: &str = "AuraStream/Revenue";
}

/// UCUM units for the guide's CloudWatch units.
pub mod unit {
    /// CloudWatch `Count`.
    pub const COUNT: &str = "{count}";
    /// CloudWatch `Milliseconds`.
    pub const MILLISECONDS: &str = "ms";
    /// CloudWatch `None` (a dimensionless number).
    pub const NONE: &str = "1";
}

/// Metric names, exactly as in the guide.
pub mod name {
    pub const SENTIMENT_ANALYSIS_COUNT: &str = "SentimentAnalysisCount";
    pub const SENTIMENT_CONFIDENCE: &str = "SentimentConfidence";
    pub const PROCESSING_TIME: &str = "ProcessingTime";
    pub const CACHE_HIT_COUNT: &str = "CacheHitCount";
    pub const CACHE_MISS_COUNT: &str = "CacheMissCount";
    pub const CACHE_HIT_RATE: &str = "CacheHitRate";
    pub const API_REQUEST_COUNT: &str = "APIRequestCount";
    pub const API_RESPONSE_TIME: &str = "APIResponseTime";
    pub const CUSTOMER_ACTIVITY: &str = "CustomerActivity";
    pub const REVENUE: &str = "Revenue";
    pub const USAGE: &str = "Usage";
    pub const CUSTOMER_USAGE: &str = "CustomerUsage";
}

/// Dimension names, exactly as in the guide.
pub mod dimension {
    pub const SENTIMENT: &str = "Sentiment";
    pub const ENDPOINT: &str = "Endpoint";
    pub const CUSTOMER_ID: &str = "CustomerId";
    pub const STATUS_CODE: &str = "StatusCode";
    pub const ACTIVITY_TYPE: &str = "ActivityType";
    pub const USAGE_TYPE: &str = "UsageType";
}

/// The result of a sentiment analysis; the `Sentiment` dimension value is the guide's
/// upper-case spelling (Amazon Comprehend's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sentiment {
    Positive,
    Negative,
    Neutral,
    Mixed,
}

impl Sentiment {
    /// The dimension value: `POSITIVE`, `NEGATIVE`, `NEUTRAL` or `MIXED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "POSITIVE",
            Sentiment::Negative => "NEGATIVE",
            Sentiment::Neutral => "NEUTRAL",
            Sentiment::Mixed => "MIXED",
        }
    }
}

impl std::fmt::Display for Sentiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bucket bounds for values between 0 and 1 (confidence scores, hit rates): the SDK's
/// default bounds are tuned for milliseconds and would put every value in one bucket.
const RATIO_BOUNDS: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Bucket bounds for latencies in milliseconds, dense around the guide's 1000 ms / 2000 ms
/// thresholds so p99 estimates are useful there.
const LATENCY_BOUNDS_MS: [f64; 16] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0,
    10000.0, 30000.0,
];

struct Instruments {
    sentiment_analysis_count: Counter<u64>,
    sentiment_confidence: Histogram<f64>,
    processing_time: Histogram<f64>,
    cache_hit_count: Counter<u64>,
    cache_miss_count: Counter<u64>,
    cache_hit_rate: Histogram<f64>,
    api_request_count: Counter<u64>,
    api_response_time: Histogram<f64>,
    customer_activity: Counter<f64>,
    revenue: Counter<f64>,
    usage: Counter<u64>,
    customer_usage: Counter<f64>,
}

/// Records the guide's application and business metrics. Cheap to clone; share one.
#[derive(Clone)]
pub struct SeedMetrics {
    instruments: Arc<Instruments>,
    customer_id_dimension: bool,
}

impl SeedMetrics {
    /// Creates the instruments on `meter`. With `customer_id_dimension == false` the
    /// `CustomerId` dimension is left off every metric (see the module docs for why).
    pub fn new(meter: &Meter, customer_id_dimension: bool) -> SeedMetrics {
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let f64_counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .f64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let histogram =
            |name: &'static str, unit: &'static str, description: &'static str, bounds: &[f64]| {
                meter
                    .f64_histogram(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_boundaries(bounds.to_vec())
                    .build()
            };
        let instruments = Instruments {
            sentiment_analysis_count: counter(
                name::SENTIMENT_ANALYSIS_COUNT,
                unit::COUNT,
                "Sentiment analyses performed",
            ),
            sentiment_confidence: histogram(
                name::SENTIMENT_CONFIDENCE,
                unit::NONE,
                "Confidence score (0.0-1.0) of each analysis",
                &RATIO_BOUNDS,
            ),
            processing_time: histogram(
                name::PROCESSING_TIME,
                unit::MILLISECONDS,
                "Time spent analysing one text",
                &LATENCY_BOUNDS_MS,
            ),
            cache_hit_count: counter(name::CACHE_HIT_COUNT, unit::COUNT, "Cache hits"),
            cache_miss_count: counter(name::CACHE_MISS_COUNT, unit::COUNT, "Cache misses"),
            cache_hit_rate: histogram(
                name::CACHE_HIT_RATE,
                unit::NONE,
                "1 per hit, 0 per miss: the average is the hit rate",
                &RATIO_BOUNDS,
            ),
            api_request_count: counter(name::API_REQUEST_COUNT, unit::COUNT, "API requests"),
            api_response_time: histogram(
                name::API_RESPONSE_TIME,
                unit::MILLISECONDS,
                "API response time",
                &LATENCY_BOUNDS_MS,
            ),
            customer_activity: f64_counter(
                name::CUSTOMER_ACTIVITY,
                unit::COUNT,
                "Customer activity by type",
            ),
            revenue: f64_counter(name::REVENUE, unit::NONE, "Revenue amount"),
            usage: counter(name::USAGE, unit::COUNT, "Usage quantity"),
            customer_usage: f64_counter(
                name::CUSTOMER_USAGE,
                unit::COUNT,
                "Customer usage by type",
            ),
        };
        SeedMetrics {
            instruments: Arc::new(instruments),
            customer_id_dimension,
        }
    }

    /// Whether `CustomerId` is recorded as a dimension.
    pub fn customer_id_dimension(&self) -> bool {
        self.customer_id_dimension
    }

    /// `SentimentAnalysisCount`, `SentimentConfidence` and `ProcessingTime` in
    /// `AuraStream/Application`, each with the `Sentiment` dimension.
    pub fn record_sentiment_analysis(
        &self,
        sentiment: Sentiment,
        confidence: f64,
        processing_time: Duration,
    ) {
        let attrs = [
            ns(namespace::APPLICATION),
            KeyValue::new(dimension::SENTIMENT, sentiment.as_str()),
        ];
        let i = &self.instruments;
        i.sentiment_analysis_count.add(1, &attrs);
        i.sentiment_confidence.record(confidence, &attrs);
        i.processing_time.record(millis(processing_time), &attrs);
    }

    /// `CacheHitCount` or `CacheMissCount`, and `CacheHitRate` (1 or 0), in
    /// `AuraStream/Application` with no dimension.
    ///
    /// The guide's `cache_key` argument is not taken: it was never a dimension, and a
    /// per-key series would be unbounded.
    pub fn record_cache_performance(&self, hit: bool) {
        let attrs = [ns(namespace::APPLICATION)];
        let i = &self.instruments;
        if hit {
            i.cache_hit_count.add(1, &attrs);
        } else {
            i.cache_miss_count.add(1, &attrs);
        }
        i.cache_hit_rate.record(if hit { 1.0 } else { 0.0 }, &attrs);
    }

    /// `APIRequestCount` (dimensions `Endpoint`, `CustomerId`, `StatusCode`) and
    /// `APIResponseTime` (dimensions `Endpoint`, `CustomerId`) in `AuraStream/Application`.
    ///
    /// Pass a route template (`/analyze`, `/users/{id}`) as `endpoint`, not a raw path: each
    /// distinct value is a separately billed CloudWatch metric.
    pub fn record_api_usage(
        &self,
        endpoint: &str,
        customer_id: &str,
        response_time: Duration,
        status_code: u16,
    ) {
        let mut attrs = Vec::with_capacity(4);
        attrs.push(ns(namespace::APPLICATION));
        attrs.push(KeyValue::new(dimension::ENDPOINT, endpoint.to_owned()));
        self.push_customer(&mut attrs, customer_id);
        self.instruments
            .api_response_time
            .record(millis(response_time), &attrs);
        attrs.push(KeyValue::new(
            dimension::STATUS_CODE,
            status_code.to_string(),
        ));
        self.instruments.api_request_count.add(1, &attrs);
    }

    /// `CustomerActivity` in `AuraStream/Business` with `CustomerId` and `ActivityType`.
    pub fn record_customer_activity(&self, customer_id: &str, activity_type: &str, value: f64) {
        let mut attrs = Vec::with_capacity(3);
        attrs.push(ns(namespace::BUSINESS));
        self.push_customer(&mut attrs, customer_id);
        attrs.push(KeyValue::new(
            dimension::ACTIVITY_TYPE,
            activity_type.to_owned(),
        ));
        self.instruments.customer_activity.add(value, &attrs);
    }

    /// `Revenue` (unit None) and `Usage` (unit Count) in `AuraStream/Business`, dimension
    /// `CustomerId`. Revenue is a monotonic sum: record refunds as their own metric.
    pub fn record_revenue_metrics(&self, customer_id: &str, revenue: f64, usage: u64) {
        self.revenue_and_usage(namespace::BUSINESS, customer_id, revenue, usage);
    }

    /// `CustomerUsage` in `AuraStream/Customer` with `CustomerId` and `UsageType`.
    pub fn track_customer_usage(&self, customer_id: &str, usage_type: &str, value: f64) {
        let mut attrs = Vec::with_capacity(3);
        attrs.push(ns(namespace::CUSTOMER));
        self.push_customer(&mut attrs, customer_id);
        attrs.push(KeyValue::new(dimension::USAGE_TYPE, usage_type.to_owned()));
        self.instruments.customer_usage.add(value, &attrs);
    }

    /// `Revenue` and `Usage` in `AuraStream/Revenue` (the namespace MRR is computed from),
    /// dimension `CustomerId`.
    pub fn track_revenue(&self, customer_id: &str, revenue: f64, usage: u64) {
        self.revenue_and_usage(namespace::REVENUE, customer_id, revenue, usage);
    }

    fn revenue_and_usage(
        &self,
        namespace: &'static str,
        customer_id: &str,
        revenue: f64,
        usage: u64,
    ) {
        let mut attrs = Vec::with_capacity(2);
        attrs.push(ns(namespace));
        self.push_customer(&mut attrs, customer_id);
        self.instruments.revenue.add(revenue, &attrs);
        self.instruments.usage.add(usage, &attrs);
    }

    fn push_customer(&self, attrs: &mut Vec<KeyValue>, customer_id: &str) {
        if self.customer_id_dimension {
            attrs.push(KeyValue::new(
                dimension::CUSTOMER_ID,
                customer_id.to_owned(),
            ));
        }
    }
}

fn ns(namespace: &'static str) -> KeyValue {
    KeyValue::new(NAMESPACE_ATTRIBUTE, namespace)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
    use std::collections::BTreeMap;

    /// One recorded data point, flattened for assertions.
    #[derive(Debug, Clone, PartialEq)]
    struct Point {
        unit: String,
        kind: &'static str,
        attrs: BTreeMap<String, String>,
        value: f64,
    }

    fn record(customer_id_dimension: bool, f: impl FnOnce(&SeedMetrics)) -> Vec<(String, Point)> {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(exporter.clone())
            .build();
        let metrics = SeedMetrics::new(&provider.meter("test"), customer_id_dimension);
        f(&metrics);
        provider.force_flush().expect("flush");
        let mut out = Vec::new();
        for rm in exporter.get_finished_metrics().expect("metrics") {
            for sm in rm.scope_metrics() {
                for m in sm.metrics() {
                    collect(m, &mut out);
                }
            }
        }
        out
    }

    fn collect(m: &opentelemetry_sdk::metrics::data::Metric, out: &mut Vec<(String, Point)>) {
        let attrs = |it: &mut dyn Iterator<Item = &KeyValue>| -> BTreeMap<String, String> {
            it.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        };
        let mut push = |kind, attrs, value| {
            out.push((
                m.name().to_owned(),
                Point {
                    unit: m.unit().to_owned(),
                    kind,
                    attrs,
                    value,
                },
            ))
        };
        match m.data() {
            AggregatedMetrics::U64(MetricData::Sum(s)) => {
                assert!(s.is_monotonic(), "{} must be monotonic", m.name());
                for dp in s.data_points() {
                    push("counter", attrs(&mut dp.attributes()), dp.value() as f64);
                }
            }
            AggregatedMetrics::F64(MetricData::Sum(s)) => {
                assert!(s.is_monotonic(), "{} must be monotonic", m.name());
                for dp in s.data_points() {
                    push("counter", attrs(&mut dp.attributes()), dp.value());
                }
            }
            AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                for dp in h.data_points() {
                    push("histogram", attrs(&mut dp.attributes()), dp.sum());
                }
            }
            other => panic!("unexpected aggregation for {}: {other:?}", m.name()),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn find<'a>(points: &'a [(String, Point)], name: &str) -> Vec<&'a Point> {
        points
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, p)| p)
            .collect()
    }

    fn only<'a>(points: &'a [(String, Point)], name: &str) -> &'a Point {
        let found = find(points, name);
        assert_eq!(found.len(), 1, "{name}: {points:#?}");
        found[0]
    }

    #[test]
    fn sentiment_analysis_uses_the_seed_names_units_and_dimension() {
        let points = record(true, |m| {
            m.record_sentiment_analysis(Sentiment::Positive, 0.93, Duration::from_millis(42))
        });
        let dims = attrs(&[
            ("aws.emf.namespace", "AuraStream/Application"),
            ("Sentiment", "POSITIVE"),
        ]);
        let count = only(&points, "SentimentAnalysisCount");
        assert_eq!(
            (count.kind, count.unit.as_str(), count.value),
            ("counter", "{count}", 1.0)
        );
        assert_eq!(count.attrs, dims);
        let confidence = only(&points, "SentimentConfidence");
        assert_eq!(
            (confidence.kind, confidence.unit.as_str()),
            ("histogram", "1")
        );
        assert!((confidence.value - 0.93).abs() < 1e-9);
        assert_eq!(confidence.attrs, dims);
        let time = only(&points, "ProcessingTime");
        assert_eq!((time.kind, time.unit.as_str()), ("histogram", "ms"));
        assert!((time.value - 42.0).abs() < 1e-9);
        assert_eq!(time.attrs, dims);
        assert_eq!(points.len(), 3);
    }

    #[test]
    fn cache_performance_counts_hits_and_misses_and_rate() {
        let points = record(true, |m| {
            m.record_cache_performance(true);
            m.record_cache_performance(true);
            m.record_cache_performance(false);
        });
        let dims = attrs(&[("aws.emf.namespace", "AuraStream/Application")]);
        let hits = only(&points, "CacheHitCount");
        assert_eq!(
            (hits.kind, hits.unit.as_str(), hits.value),
            ("counter", "{count}", 2.0)
        );
        assert_eq!(hits.attrs, dims);
        let misses = only(&points, "CacheMissCount");
        assert_eq!((misses.unit.as_str(), misses.value), ("{count}", 1.0));
        let rate = only(&points, "CacheHitRate");
        assert_eq!(
            (rate.kind, rate.unit.as_str(), rate.value),
            ("histogram", "1", 2.0)
        );
        assert_eq!(rate.attrs, dims);
    }

    #[test]
    fn api_usage_has_endpoint_customer_and_status_dimensions() {
        let points = record(true, |m| {
            m.record_api_usage("/analyze", "customer_123", Duration::from_millis(120), 200)
        });
        let count = only(&points, "APIRequestCount");
        assert_eq!((count.kind, count.unit.as_str()), ("counter", "{count}"));
        assert_eq!(
            count.attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Application"),
                ("Endpoint", "/analyze"),
                ("CustomerId", "customer_123"),
                ("StatusCode", "200"),
            ])
        );
        let time = only(&points, "APIResponseTime");
        assert_eq!((time.kind, time.unit.as_str()), ("histogram", "ms"));
        assert!((time.value - 120.0).abs() < 1e-9);
        assert_eq!(
            time.attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Application"),
                ("Endpoint", "/analyze"),
                ("CustomerId", "customer_123"),
            ])
        );
    }

    #[test]
    fn customer_id_dimension_can_be_switched_off() {
        let points = record(false, |m| {
            m.record_api_usage("/analyze", "customer_123", Duration::from_millis(5), 500);
            m.record_revenue_metrics("customer_123", 9.5, 3);
            m.track_customer_usage("customer_123", "characters", 120.0);
        });
        assert!(
            points
                .iter()
                .all(|(_, p)| !p.attrs.contains_key("CustomerId")),
            "{points:#?}"
        );
        assert_eq!(
            only(&points, "APIRequestCount").attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Application"),
                ("Endpoint", "/analyze"),
                ("StatusCode", "500"),
            ])
        );
        assert_eq!(
            only(&points, "CustomerUsage").attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Customer"),
                ("UsageType", "characters"),
            ])
        );
    }

    #[test]
    fn business_customer_and_revenue_namespaces() {
        let points = record(true, |m| {
            m.record_customer_activity("c1", "analysis", 2.0);
            m.record_revenue_metrics("c1", 10.0, 4);
            m.track_customer_usage("c1", "api_calls", 7.0);
            m.track_revenue("c1", 3.5, 1);
        });
        let activity = only(&points, "CustomerActivity");
        assert_eq!(
            (activity.kind, activity.unit.as_str(), activity.value),
            ("counter", "{count}", 2.0)
        );
        assert_eq!(
            activity.attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Business"),
                ("CustomerId", "c1"),
                ("ActivityType", "analysis"),
            ])
        );
        let usage = only(&points, "CustomerUsage");
        assert_eq!((usage.unit.as_str(), usage.value), ("{count}", 7.0));
        assert_eq!(
            usage.attrs,
            attrs(&[
                ("aws.emf.namespace", "AuraStream/Customer"),
                ("CustomerId", "c1"),
                ("UsageType", "api_calls"),
            ])
        );
        let revenue = find(&points, "Revenue");
        assert_eq!(revenue.len(), 2);
        for (namespace, value) in [("AuraStream/Business", 10.0), ("AuraStream/Revenue", 3.5)] {
            let p = revenue
                .iter()
                .find(|p| p.attrs.get("aws.emf.namespace").map(String::as_str) == Some(namespace))
                .expect("revenue point per namespace");
            assert_eq!((p.unit.as_str(), p.value), ("1", value));
            assert_eq!(p.attrs.get("CustomerId").map(String::as_str), Some("c1"));
            assert_eq!(p.attrs.len(), 2);
        }
        let usage = find(&points, "Usage");
        assert_eq!(usage.len(), 2);
        assert!(
            usage
                .iter()
                .all(|p| p.unit == "{count}" && p.kind == "counter")
        );
    }
}
