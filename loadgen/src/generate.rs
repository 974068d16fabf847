//! Realistic OTLP requests in the seed's vocabulary.
//!
//! Traces look like the seed's sentiment API: a SERVER span per request (old and new HTTP
//! semantic conventions mixed), a DynamoDB cache lookup through the AWS SDK and a Comprehend
//! call; about 10 % of requests end in 4xx (some 429), 5 % in 5xx with an exception and a
//! Python stack trace. Metrics cover every OTLP type; logs are the seed's StructuredLogger
//! JSON events.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
pub use rand::SeedableRng;
pub use rand::rngs::SmallRng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

pub enum Request {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Request {
    /// The protobuf body of this request.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        match self {
            Request::Traces(r) => r.encode_to_vec(),
            Request::Metrics(r) => r.encode_to_vec(),
            Request::Logs(r) => r.encode_to_vec(),
        }
    }
}

struct Entry {
    request: Request,
    items: usize,
}

/// Distinct requests generated once and reused round-robin.
pub struct Pool {
    entries: Vec<Entry>,
}

impl Pool {
    pub fn new(signal: Signal, size: usize, items: usize, seed: u64) -> Pool {
        let mut rng = SmallRng::seed_from_u64(seed);
        let entries = (0..size)
            .map(|_| match signal {
                Signal::Traces => {
                    let r = traces(&mut rng, items);
                    Entry {
                        items: span_count(&r),
                        request: Request::Traces(r),
                    }
                }
                Signal::Metrics => {
                    let r = metrics(&mut rng, items);
                    Entry {
                        items: point_count(&r),
                        request: Request::Metrics(r),
                    }
                }
                Signal::Logs => Entry {
                    items,
                    request: Request::Logs(logs(&mut rng, items)),
                },
            })
            .collect();
        Pool { entries }
    }

    pub fn get(&self, i: usize) -> (&Request, usize) {
        let e = &self.entries[i % self.entries.len()];
        (&e.request, e.items)
    }

    pub fn items_per_request(&self) -> usize {
        self.entries.first().map_or(0, |e| e.items)
    }
}

fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn point_count(r: &ExportMetricsServiceRequest) -> usize {
    r.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            s("service.name", "aurastream-api"),
            s("service.version", "2.4.1"),
            s("cloud.provider", "aws"),
            s("cloud.platform", "aws_ecs"),
            s("cloud.region", "us-east-1"),
            s("aws.ecs.launchtype", "fargate"),
            s(
                "aws.ecs.cluster.arn",
                "arn:aws:ecs:us-east-1:123456789012:cluster/aurastream",
            ),
        ],
        ..Default::default()
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

const ENDPOINTS: [&str; 4] = [
    "/analyze/sync",
    "/analyze/batch",
    "/customers/profile",
    "/health",
];

const PYTHON_STACK: &str = "Traceback (most recent call last):\n  File \"/var/task/handler.py\", line 42, in analyze\n    result = comprehend.detect_sentiment(Text=text)\n  File \"/var/task/botocore/client.py\", line 960, in _make_api_call\n    raise error_class(parsed_response, operation_name)\nbotocore.exceptions.ClientError: An error occurred (InternalServerException)";

/// About `items` spans as whole traces of three spans.
pub fn traces(rng: &mut SmallRng, items: usize) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(items);
    let base = now_nanos();
    while spans.len() < items {
        let mut trace_id = [0u8; 16];
        rng.fill(&mut trace_id[..]);
        // X-Ray style: the first 4 bytes are the epoch second.
        trace_id[..4].copy_from_slice(&((base / 1_000_000_000) as u32).to_be_bytes());
        let root_id: [u8; 8] = rng.random();
        let endpoint = ENDPOINTS[rng.random_range(0..ENDPOINTS.len())];
        let roll: f64 = rng.random();
        let status = if roll < 0.05 {
            500
        } else if roll < 0.10 {
            404
        } else if roll < 0.15 {
            429
        } else {
            200
        };
        let start = base - rng.random_range(1_000_000..900_000_000);
        let duration = rng.random_range(5_000_000..1_500_000_000u64);
        let old_conventions = rng.random_bool(0.3);
        let mut attrs = if old_conventions {
            vec![
                s("http.method", "POST"),
                s("http.target", endpoint),
                i("http.status_code", status),
            ]
        } else {
            vec![
                s("http.request.method", "POST"),
                s("url.path", endpoint),
                s("url.scheme", "https"),
                s("server.address", "api.aurastream.com"),
                i("http.response.status_code", status),
            ]
        };
        attrs.push(s("user_agent.original", "aurastream-client/1.0"));
        attrs.push(s("client.address", "203.0.113.7"));
        attrs.push(s(
            "customer.id",
            format!("customer_{}", rng.random_range(0..50)),
        ));
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: root_id.to_vec(),
            name: format!("POST {endpoint}"),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes: attrs,
            status: Some(Status {
                code: if status >= 500 {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
                message: String::new(),
            }),
            ..Default::default()
        });
        let cache_id: [u8; 8] = rng.random();
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: cache_id.to_vec(),
            parent_span_id: root_id.to_vec(),
            name: "DynamoDB.GetItem".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start + 1_000_000,
            end_time_unix_nano: start + 4_000_000,
            attributes: vec![
                s("rpc.system", "aws-api"),
                s("rpc.service", "DynamoDB"),
                s("rpc.method", "GetItem"),
                s("aws.dynamodb.table_names", "AuraStream-SentimentCache"),
                s("aws.request_id", "Q2VPTG9ORVJFUVVFU1RJRA"),
                i("http.response.status_code", 200),
            ],
            ..Default::default()
        });
        let nlp_id: [u8; 8] = rng.random();
        let failed = status >= 500;
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: nlp_id.to_vec(),
            parent_span_id: root_id.to_vec(),
            name: "Comprehend.DetectSentiment".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start + 5_000_000,
            end_time_unix_nano: start + duration - 1_000_000,
            attributes: vec![
                s("rpc.system", "aws-api"),
                s("rpc.service", "Comprehend"),
                s("rpc.method", "DetectSentiment"),
                s("cloud.region", "us-east-1"),
                i("http.response.status_code", if failed { 500 } else { 200 }),
            ],
            events: if failed {
                vec![Event {
                    name: "exception".into(),
                    time_unix_nano: start + duration - 2_000_000,
                    attributes: vec![
                        s("exception.type", "botocore.exceptions.ClientError"),
                        s("exception.message", "InternalServerException"),
                        s("exception.stacktrace", PYTHON_STACK),
                    ],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            status: Some(Status {
                code: if failed {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
                message: String::new(),
            }),
            ..Default::default()
        });
    }
    spans.truncate(items);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "aurastream-loadgen".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

const SENTIMENTS: [&str; 4] = ["POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"];

/// About `items` data points spread over every metric type.
pub fn metrics(rng: &mut SmallRng, items: usize) -> ExportMetricsServiceRequest {
    let now = now_nanos();
    let start = now - 60_000_000_000;
    let mut metrics = Vec::new();
    let mut points = 0;
    let mut round = 0;
    while points < items {
        let sentiment = SENTIMENTS[round % SENTIMENTS.len()];
        let dims = vec![
            s("Sentiment", sentiment),
            s("aws.emf.namespace", "AuraStream/Application"),
        ];
        let number = |v: number_data_point::Value| NumberDataPoint {
            attributes: dims.clone(),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(v),
            ..Default::default()
        };
        let metric = match round % 5 {
            0 => Metric {
                name: "SentimentAnalysisCount".into(),
                unit: "{count}".into(),
                data: Some(Data::Sum(Sum {
                    data_points: vec![number(number_data_point::Value::AsInt(
                        rng.random_range(1..1000),
                    ))],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            1 => Metric {
                name: "SentimentConfidence".into(),
                unit: "1".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![number(number_data_point::Value::AsDouble(
                        rng.random_range(0.5..1.0),
                    ))],
                })),
                ..Default::default()
            },
            2 => Metric {
                name: "ProcessingTime".into(),
                unit: "ms".into(),
                data: Some(Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: dims.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: 60,
                        sum: Some(18_000.0),
                        bucket_counts: vec![5, 20, 25, 8, 2],
                        explicit_bounds: vec![100.0, 250.0, 500.0, 1000.0],
                        min: Some(40.0),
                        max: Some(1800.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            },
            3 => Metric {
                name: "APIResponseTime".into(),
                unit: "ms".into(),
                data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        attributes: vec![
                            s("Endpoint", "/analyze/sync"),
                            s("aws.emf.namespace", "AuraStream/Application"),
                        ],
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: 30,
                        sum: Some(6_000.0),
                        scale: 2,
                        zero_count: 0,
                        positive: Some(Buckets {
                            offset: 28,
                            bucket_counts: vec![3, 7, 12, 6, 2],
                        }),
                        min: Some(90.0),
                        max: Some(700.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                })),
                ..Default::default()
            },
            _ => Metric {
                name: "IntegrationLatency".into(),
                unit: "ms".into(),
                data: Some(Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        attributes: dims.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: 40,
                        sum: 8_000.0,
                        quantile_values: vec![
                            ValueAtQuantile {
                                quantile: 0.0,
                                value: 20.0,
                            },
                            ValueAtQuantile {
                                quantile: 0.99,
                                value: 900.0,
                            },
                            ValueAtQuantile {
                                quantile: 1.0,
                                value: 1200.0,
                            },
                        ],
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
        };
        metrics.push(metric);
        points += 1;
        round += 1;
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "aurastream-loadgen".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `items` StructuredLogger events (api_request / api_response / error / business_*).
pub fn logs(rng: &mut SmallRng, items: usize) -> ExportLogsServiceRequest {
    let now = now_nanos();
    let records = (0..items)
        .map(|n| {
            let request_id = format!("req-{:016x}", rng.random::<u64>());
            let (category, severity, body) = match n % 4 {
                0 => ("application", 9, format!(r#"{{"event_type":"api_request","request_id":"{request_id}","method":"POST","path":"/analyze/sync","customer_id":"customer_{}","user_agent":"aurastream-client/1.0","ip_address":"203.0.113.7"}}"#, n % 50)),
                1 => ("performance", 9, format!(r#"{{"event_type":"api_response","request_id":"{request_id}","status_code":200,"response_time":{},"cache_hit":{}}}"#, rng.random_range(20..2000), rng.random_bool(0.6))),
                2 => ("application", 17, format!(r#"{{"event_type":"error","request_id":"{request_id}","error_type":"ThrottlingException","error_message":"Rate exceeded","stack_trace":null}}"#)),
                _ => ("business", 9, format!(r#"{{"event_type":"business_analysis_completed","customer_id":"customer_{}","data":{{"characters":{}}}}}"#, n % 50, rng.random_range(10..5000))),
            };
            let mut trace_id = [0u8; 16];
            rng.fill(&mut trace_id[..]);
            LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: severity,
                severity_text: if severity >= 17 { "ERROR".into() } else { "INFO".into() },
                body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
                attributes: vec![s("log.category", category)],
                trace_id: trace_id.to_vec(),
                span_id: rng.random::<[u8; 8]>().to_vec(),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "aurastream-loadgen".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
