//! The `awsemf` and `awscloudwatchlogs` exporters against a real moto server: the
//! monitoring guide's metrics and structured logs go in through PutLogEvents and are read
//! back with GetLogEvents and DescribeLogGroups.
//!
//! moto comes from the repository's Python venv (`.venv`, made by scripts/test.sh) and is
//! started by the e2e harness (`aurastream_e2e::aws::Moto`). moto does not enforce
//! PutLogEvents limits; the unit tests next to the code cover those.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};

use aurastream_collector::aws::cloudwatch_logs::service::LogsService;
use aurastream_collector::component::{Exporter, Reason};
use aurastream_collector::exporter::cloudwatch_logs::CloudWatchLogsExporter;
use aurastream_collector::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig;
use aurastream_collector::exporter::emf::EmfExporter;
use aurastream_collector::exporter::emf::config::{EmfExporterConfig, InitialValue};
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_e2e::aws::{Moto, static_sdk_config};
use aurastream_proto::emf::EmfDocument;
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value as AnyValueKind};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::metrics::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use aurastream_proto::otlp::resource::Resource;

/// A CloudWatch Logs client for the moto server, with moto's static test credentials.
fn client(moto: &Moto) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(moto.url())
        .build();
    Client::from_conf(config)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn number(labels: &[(&str, &str)], time: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: labels.iter().map(|(k, v)| kv(k, v)).collect(),
        start_time_unix_nano: time - 1_000_000_000,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn delta_sum(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: "{count}".into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })),
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

fn latency(name: &str, labels: &[(&str, &str)], time: u64, values: &[f64]) -> Metric {
    let bounds = vec![50.0, 100.0, 250.0, 500.0, 1000.0];
    let mut counts = vec![0u64; bounds.len() + 1];
    for v in values {
        let i = bounds.iter().position(|b| v <= b).unwrap_or(bounds.len());
        counts[i] += 1;
    }
    Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: labels.iter().map(|(k, v)| kv(k, v)).collect(),
                start_time_unix_nano: time - 1_000_000_000,
                time_unix_nano: time,
                count: values.len() as u64,
                sum: Some(values.iter().sum()),
                bucket_counts: counts,
                explicit_bounds: bounds,
                min: values.iter().copied().reduce(f64::min),
                max: values.iter().copied().reduce(f64::max),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }
}

/// The monitoring guide's application metrics (`ApplicationMetrics`) plus one business
/// metric in its own namespace.
fn seed_metrics(time: u64) -> Vec<ResourceMetrics> {
    let mut metrics = Vec::new();
    for (sentiment, confidence, times) in [
        ("POSITIVE", 0.97, vec![80.0, 120.0]),
        ("NEGATIVE", 0.88, vec![450.0]),
        ("NEUTRAL", 0.61, vec![30.0, 60.0, 1200.0]),
    ] {
        let l = [("Sentiment", sentiment)];
        metrics.push(delta_sum(
            "SentimentAnalysisCount",
            vec![number(&l, time, times.len() as f64)],
        ));
        metrics.push(gauge(
            "SentimentConfidence",
            "1",
            vec![number(&l, time, confidence)],
        ));
        metrics.push(latency("ProcessingTime", &l, time, &times));
    }
    metrics.push(delta_sum("CacheHitCount", vec![number(&[], time, 7.0)]));
    metrics.push(delta_sum("CacheMissCount", vec![number(&[], time, 3.0)]));
    metrics.push(gauge("CacheHitRate", "1", vec![number(&[], time, 0.7)]));
    for (endpoint, customer, status, n) in [
        ("/api/v1/sentiment", "customer_123", "200", 5.0),
        ("/api/v1/sentiment", "customer_123", "500", 1.0),
        ("/api/v1/batch", "customer_456", "200", 2.0),
    ] {
        metrics.push(delta_sum(
            "APIRequestCount",
            vec![number(
                &[
                    ("Endpoint", endpoint),
                    ("CustomerId", customer),
                    ("StatusCode", status),
                ],
                time,
                n,
            )],
        ));
    }
    for (endpoint, customer, times) in [
        ("/api/v1/sentiment", "customer_123", vec![90.0, 1500.0]),
        ("/api/v1/batch", "customer_456", vec![300.0]),
    ] {
        metrics.push(latency(
            "APIResponseTime",
            &[("Endpoint", endpoint), ("CustomerId", customer)],
            time,
            &times,
        ));
    }
    metrics.push(gauge(
        "CustomerActivity",
        "{count}",
        vec![number(
            &[
                ("CustomerId", "customer_123"),
                ("ActivityType", "analysis"),
                ("aws.emf.namespace", "AuraStream/Business"),
            ],
            time,
            4.0,
        )],
    ));
    vec![ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![kv("service.name", "sentiment-api")],
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }]
}

async fn read_group(client: &Client, group: &str) -> Vec<String> {
    let streams = client
        .describe_log_streams()
        .log_group_name(group)
        .send()
        .await
        .expect("describe streams");
    let mut out = Vec::new();
    for s in streams.log_streams() {
        let events = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(s.log_stream_name().unwrap_or_default())
            .start_from_head(true)
            .send()
            .await
            .expect("get events");
        out.extend(
            events
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_string)),
        );
    }
    out
}

async fn retention_of(client: &Client) -> HashMap<String, Option<i32>> {
    client
        .describe_log_groups()
        .send()
        .await
        .expect("describe groups")
        .log_groups()
        .iter()
        .map(|g| {
            (
                g.log_group_name().unwrap_or_default().to_string(),
                g.retention_in_days(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_metrics_and_logs_round_trip_through_moto() {
    let moto = Moto::start();
    let client = client(&moto);
    let metrics = Arc::new(SelfMetrics::new());

    // Metrics: every EMF document valid, every data point present exactly once (under its
    // own dimension set: no rollup sets).
    let emf_config: EmfExporterConfig = serde_yaml_ng::from_str(
        "namespace: AuraStream/Application\n\
         log_group_name: /aws/aurastream/metrics/{ServiceName}\n\
         log_stream_name: emf\n\
         log_retention: 30\n\
         dimension_rollup_option: NoDimensionRollup\n",
    )
    .expect("config");
    emf_config.validate().expect("valid");
    let emf = EmfExporter::with_service(
        "awsemf",
        &emf_config,
        &metrics,
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), HashMap::new()),
    )
    .expect("exporter");
    let time = now_nanos();
    let batch = SignalData::Metrics(seed_metrics(time));
    let points = batch.item_count();
    let report = emf.export(&batch).await.expect("metrics exported");
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);

    let messages = read_group(&client, "/aws/aurastream/metrics/sentiment-api").await;
    let mut seen: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    for m in &messages {
        let doc: EmfDocument = serde_json::from_str(m).expect("every message is an EMF document");
        assert_eq!(doc.aws.timestamp, (time / 1_000_000) as i64);
        for directive in &doc.aws.cloudwatch_metrics {
            for def in &directive.metrics {
                let dims: Vec<String> = directive
                    .dimensions
                    .iter()
                    .flatten()
                    .map(|d| format!("{d}={}", doc.fields[d].as_str().unwrap_or("?")))
                    .collect();
                let key = (
                    directive.namespace.clone(),
                    def.name.clone(),
                    dims.join(","),
                );
                let previous = seen.insert(key.clone(), doc.fields[&def.name].clone());
                assert!(previous.is_none(), "{key:?} sent twice");
            }
        }
        // Resource attributes travel as properties.
        assert_eq!(doc.fields["service.name"], "sentiment-api");
    }
    assert_eq!(
        seen.len(),
        points,
        "every data point present once: {seen:#?}"
    );
    let get = |ns: &str, name: &str, dims: &str| {
        seen.get(&(ns.to_string(), name.to_string(), dims.to_string()))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let app = "AuraStream/Application";
    assert_eq!(get(app, "SentimentAnalysisCount", "Sentiment=NEUTRAL"), 3.0);
    assert_eq!(get(app, "SentimentConfidence", "Sentiment=POSITIVE"), 0.97);
    assert_eq!(
        get(app, "ProcessingTime", "Sentiment=NEUTRAL")["Count"],
        3.0
    );
    assert_eq!(
        get(app, "ProcessingTime", "Sentiment=NEUTRAL")["Max"],
        1200.0
    );
    assert_eq!(get(app, "CacheHitCount", ""), 7.0);
    assert_eq!(get(app, "CacheMissCount", ""), 3.0);
    assert_eq!(get(app, "CacheHitRate", ""), 0.7);
    assert_eq!(
        get(
            app,
            "APIRequestCount",
            "CustomerId=customer_123,Endpoint=/api/v1/sentiment,StatusCode=500"
        ),
        1.0
    );
    let api = get(
        app,
        "APIResponseTime",
        "CustomerId=customer_123,Endpoint=/api/v1/sentiment",
    );
    assert_eq!(api["Count"], 2.0);
    assert_eq!(api["Sum"], 1590.0);
    assert_eq!(
        get(
            "AuraStream/Business",
            "CustomerActivity",
            "ActivityType=analysis,CustomerId=customer_123"
        ),
        4.0
    );

    // Logs: the StructuredLogger's events, routed by category.
    let logs_config: CloudWatchLogsExporterConfig = serde_yaml_ng::from_str(
        "log_group_name: /aws/aurastream/default\nlog_stream_name: \"{ServiceName}\"\nlog_retention: 14\n",
    )
    .expect("config");
    logs_config.validate().expect("valid");
    let logs = CloudWatchLogsExporter::with_service(
        "awscloudwatchlogs",
        &logs_config,
        &metrics,
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), HashMap::new()),
    );
    let records: Vec<(Option<&str>, Value)> = vec![
        (
            Some("application"),
            json!({"event_type": "api_request", "request_id": "req-1", "method": "POST",
                   "path": "/api/v1/sentiment", "customer_id": "customer_123",
                   "user_agent": "curl/8", "ip_address": "10.0.0.1"}),
        ),
        (
            Some("performance"),
            json!({"event_type": "api_response", "request_id": "req-1", "status_code": 200,
                   "response_time": 1500, "cache_hit": false}),
        ),
        (
            Some("application"),
            json!({"event_type": "error", "request_id": "req-2", "error_type": "ValidationError",
                   "error_message": "text too long", "stack_trace": null}),
        ),
        (
            Some("business"),
            json!({"event_type": "business_subscription", "customer_id": "customer_123",
                   "data": {"plan": "pro"}}),
        ),
        (
            Some("security"),
            json!({"event_type": "failed_authentication", "ip_address": "10.0.0.9"}),
        ),
        (
            Some("audit"),
            json!({"event_type": "config_change", "actor": "admin"}),
        ),
        (
            None,
            json!({"event_type": "api_request", "request_id": "req-3"}),
        ),
    ];
    let now = now_nanos();
    let log_records: Vec<LogRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (category, body))| LogRecord {
            time_unix_nano: now + i as u64 * 1_000_000,
            severity_text: "INFO".into(),
            attributes: category
                .map(|c| vec![kv("log.category", c)])
                .unwrap_or_default(),
            body: Some(AnyValue {
                value: Some(AnyValueKind::StringValue(body.to_string())),
            }),
            ..Default::default()
        })
        .collect();
    let batch = SignalData::Logs(vec![ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv("service.name", "sentiment-api")],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records,
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let report = logs.export(&batch).await.expect("logs exported");
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);

    for (category, body) in &records {
        let group = match category {
            Some(c) => format!("/aws/aurastream/{c}"),
            None => "/aws/aurastream/default".to_string(),
        };
        let messages = read_group(&client, &group).await;
        let found = messages
            .iter()
            .filter(|m| serde_json::from_str::<Value>(m).ok().as_ref() == Some(body))
            .count();
        assert_eq!(found, 1, "{body} once in {group}: {messages:?}");
    }
    // `filter response_time > 1000` works: the field is a top-level number.
    let perf = read_group(&client, "/aws/aurastream/performance").await;
    let slow: Vec<Value> = perf
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|v| v["response_time"].as_i64().is_some_and(|t| t > 1000))
        .collect();
    assert_eq!(slow.len(), 1);

    let retention = retention_of(&client).await;
    let expect = [
        ("/aws/aurastream/security", 2557),
        ("/aws/aurastream/audit", 2557),
        ("/aws/aurastream/application", 30),
        ("/aws/aurastream/performance", 90),
        ("/aws/aurastream/business", 365),
        ("/aws/aurastream/default", 14),
        ("/aws/aurastream/metrics/sentiment-api", 30),
    ];
    for (group, days) in expect {
        assert_eq!(
            retention.get(group),
            Some(&Some(days)),
            "{group}: {retention:?}"
        );
    }

    // A cumulative counter across exports, with a restart: deltas arrive, nothing twice.
    // (`drop`: the series starts after the exporter, which `auto` would send whole.)
    let cumulative_config = EmfExporterConfig {
        log_group_name: "/aws/aurastream/metrics-cumulative".into(),
        initial_value: InitialValue::Drop,
        ..emf_config.clone()
    };
    let cumulative = EmfExporter::with_service(
        "awsemf/cumulative",
        &cumulative_config,
        &metrics,
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), HashMap::new()),
    )
    .expect("exporter");
    let start = now_nanos();
    let mut dropped = Vec::new();
    let mut withheld = Vec::new();
    for (i, value) in [10.0, 15.0, 3.0].into_iter().enumerate() {
        let time = start + (i as u64 + 1) * 1_000_000_000;
        let mut p = number(&[("Endpoint", "/api/v1/sentiment")], time, value);
        p.start_time_unix_nano = start;
        let m = Metric {
            name: "APIRequestCount".into(),
            unit: "{request}".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![p],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let batch = SignalData::Metrics(vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![m],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        let report = cumulative.export(&batch).await.expect("exported");
        dropped.extend(report.dropped);
        withheld.extend(report.withheld);
    }
    // The first point is the delta baseline: withheld, not a failure.
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(
        withheld,
        vec![(Reason::Named("initial_cumulative_point"), 1)]
    );
    let values: Vec<Value> = read_group(&client, "/aws/aurastream/metrics-cumulative")
        .await
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).expect("EMF")["APIRequestCount"].clone())
        .collect();
    assert_eq!(values, vec![json!(5.0), json!(3.0)]);
    drop(moto);
}

/// Delivery markers (`delivery_markers`, on by default with a queue on disk): every
/// PutLogEvents request carries one marker event, and a batch replayed after a restart is
/// skipped when its marker shows CloudWatch already holds it, so a crash between delivery
/// and removal from the queue does not store the events twice.
/// One delta counter point (`Requests` = `value`) under a resource with `attrs`.
fn requests_of(attrs: &[(&str, &str)], time: u64, value: f64) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![delta_sum("Requests", vec![number(&[], time, value)])],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_groups_and_streams_follow_templates_with_fallback_and_cap() {
    let moto = Moto::start();
    let client = client(&moto);
    let config: EmfExporterConfig = serde_yaml_ng::from_str(
        "namespace: AuraStream/Application\n\
         log_group_name: \"/aurastream/metrics/{service.name}/{aws.ecs.cluster.name:-local}\"\n\
         log_stream_name: \"{host.name:-emf}\"\n\
         log_retention: 90\n\
         max_log_groups: 2\n",
    )
    .expect("config");
    config.validate().expect("valid");
    let emf = EmfExporter::with_service(
        "awsemf",
        &config,
        &Arc::new(SelfMetrics::new()),
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), HashMap::new()),
    )
    .expect("exporter");
    let time = now_nanos();
    let batch = SignalData::Metrics(vec![
        requests_of(
            &[
                ("service.name", "svc-a"),
                ("aws.ecs.cluster.name", "prod"),
                ("host.name", "ip-10-0-0-1"),
            ],
            time,
            1.0,
        ),
        requests_of(&[("service.name", "svc-b")], time, 2.0),
        // A third group is past `max_log_groups`: the overflow group takes it.
        requests_of(&[("service.name", "svc-c")], time, 3.0),
    ]);
    let report = emf.export(&batch).await.expect("exported");
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);

    let mut got: BTreeMap<String, (Option<i32>, Vec<f64>)> = BTreeMap::new();
    for (group, retention) in retention_of(&client).await {
        let values = read_group(&client, &group)
            .await
            .iter()
            .map(|m| {
                let doc: Value = serde_json::from_str(m).expect("EMF document");
                doc["Requests"].as_f64().expect("Requests value")
            })
            .collect();
        got.insert(group, (retention, values));
    }
    let expected: BTreeMap<String, (Option<i32>, Vec<f64>)> = [
        ("/aurastream/metrics/svc-a/prod", vec![1.0]),
        ("/aurastream/metrics/svc-b/local", vec![2.0]),
        ("/aurastream/metrics/overflow/overflow", vec![3.0]),
    ]
    .into_iter()
    .map(|(g, v)| (g.to_string(), (Some(90), v)))
    .collect();
    assert_eq!(got, expected);
    let streams = client
        .describe_log_streams()
        .log_group_name("/aurastream/metrics/svc-a/prod")
        .send()
        .await
        .expect("describe streams");
    let names: Vec<&str> = streams
        .log_streams()
        .iter()
        .filter_map(|s| s.log_stream_name())
        .collect();
    assert_eq!(names, ["ip-10-0-0-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_batches_already_stored_are_not_sent_again() {
    use aurastream_collector::aws::cloudwatch_logs::marker::MARKER_FIELD;
    use aurastream_collector::component::Provenance;

    let moto = Moto::start();
    let client = client(&moto);
    let metrics = Arc::new(SelfMetrics::new());
    let config: CloudWatchLogsExporterConfig = serde_yaml_ng::from_str(
        "log_group_name: /test/markers\nlog_stream_name: replay\ncategories: {}\n\
         raw_log: true\ndelivery_markers: true\n",
    )
    .expect("config");
    let exporter = CloudWatchLogsExporter::with_service(
        "awscloudwatchlogs",
        &config,
        &metrics,
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), HashMap::new()),
    );
    let base = now_nanos();
    let batch = |tag: &str| {
        SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..3)
                    .map(|i| LogRecord {
                        time_unix_nano: base + i * 1_000_000,
                        body: Some(AnyValue {
                            value: Some(AnyValueKind::StringValue(format!("{tag}-{i}"))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    };
    let stored = || async {
        let mut records = Vec::new();
        let mut markers = Vec::new();
        for m in read_group(&client, "/test/markers").await {
            match serde_json::from_str::<Value>(&m) {
                Ok(doc) if doc.get(MARKER_FIELD).is_some() => markers.push(doc),
                _ => records.push(m),
            }
        }
        records.sort();
        (records, markers)
    };
    let first = Provenance {
        key: 41,
        replayed: false,
    };

    // First delivery: the three records and one marker counting them.
    exporter
        .export_queued(&batch("a"), first)
        .await
        .expect("delivered");
    let (records, markers) = stored().await;
    assert_eq!(records, ["a-0", "a-1", "a-2"]);
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(markers[0]["events"], 3);

    // The same queue record replayed after a restart: found, not sent again, counted.
    let replay = Provenance {
        replayed: true,
        ..first
    };
    exporter
        .export_queued(&batch("a"), replay)
        .await
        .expect("settled");
    let (records, markers) = stored().await;
    assert_eq!(records, ["a-0", "a-1", "a-2"], "no copies after the replay");
    assert_eq!(markers.len(), 1);
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.contains("event=\"already_delivered\"")
                && l.contains("awscloudwatchlogs")
                && l.ends_with(" 3")),
        "already_delivered counts the 3 events:\n{text}"
    );

    // A replayed record that never reached CloudWatch is sent.
    exporter
        .export_queued(
            &batch("b"),
            Provenance {
                key: 42,
                replayed: true,
            },
        )
        .await
        .expect("delivered");
    // Equal content from another queue record is another batch: delivered again.
    exporter
        .export_queued(
            &batch("a"),
            Provenance {
                key: 43,
                replayed: true,
            },
        )
        .await
        .expect("delivered");
    let (records, markers) = stored().await;
    assert_eq!(
        records,
        [
            "a-0", "a-0", "a-1", "a-1", "a-2", "a-2", "b-0", "b-1", "b-2"
        ]
    );
    assert_eq!(markers.len(), 3);
    let ids: std::collections::BTreeSet<&str> = markers
        .iter()
        .filter_map(|m| m[MARKER_FIELD].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "one distinct marker per request");

    // Without a queue record (no provenance) nothing is marked.
    exporter.export(&batch("c")).await.expect("delivered");
    let (records, markers) = stored().await;
    assert_eq!(records.len(), 12);
    assert_eq!(markers.len(), 3);
}
