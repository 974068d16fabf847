//! Routing and accounting of the `awscloudwatchlogs` exporter (no network).

use std::collections::BTreeMap;
use std::sync::Arc;

use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::common::{AnyValue, KeyValue};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::resource::Resource;

use super::config::CloudWatchLogsExporterConfig;
use super::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn record(category: Option<&str>, body: &str) -> LogRecord {
    LogRecord {
        attributes: category
            .map(|c| vec![kv("log.category", c)])
            .unwrap_or_default(),
        body: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(body.into())),
        }),
        ..Default::default()
    }
}

fn exporter() -> CloudWatchLogsExporter {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "/aws/aurastream/default".into(),
        log_stream_name: "{ServiceName}".into(),
        log_retention: 14,
        ..Default::default()
    };
    CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &Arc::new(SelfMetrics::new()))
}

/// Where the exporter routes one record (no entity).
fn route(e: &CloudWatchLogsExporter, record: &LogRecord, resource: Option<&Resource>) -> LogTarget {
    e.route(record, resource, None)
}

fn resource_logs(service: &str, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", service),
                kv("deployment.environment.name", "prod"),
            ],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn records_are_routed_by_category_with_the_category_retention() {
    let e = exporter();
    let resource = Resource {
        attributes: vec![kv("service.name", "sentiment-api")],
        ..Default::default()
    };
    let t = route(&e, &record(Some("security"), "x"), Some(&resource));
    assert_eq!(
        t,
        LogTarget {
            group: "/aws/aurastream/security".into(),
            stream: "sentiment-api".into(),
            retention_days: 2557,
            entity: None,
        }
    );
    let t = route(&e, &record(Some("Business"), "x"), Some(&resource));
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/business", 365)
    );
    let t = route(&e, &record(Some("performance"), "x"), None);
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/performance", 90)
    );
    // Unknown and missing categories go to the default group.
    let t = route(&e, &record(Some("marketing"), "x"), None);
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/default", 14)
    );
    let t = route(&e, &record(None, "x"), None);
    assert_eq!(t.group, "/aws/aurastream/default");
    assert_eq!(t.stream, "undefined");
}

#[test]
fn category_can_come_from_the_resource() {
    let e = exporter();
    let resource = Resource {
        attributes: vec![kv("log.category", "audit")],
        ..Default::default()
    };
    let t = route(&e, &record(None, "x"), Some(&resource));
    assert_eq!(t.group, "/aws/aurastream/audit");
}

#[test]
fn templated_groups_and_streams_take_record_and_resource_attributes() {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "/aurastream/{service.name}/{log.category:-uncategorized}".into(),
        log_stream_name: "{deployment.environment.name}".into(),
        log_retention: 14,
        categories: [(
            "security".to_string(),
            config::CategoryConfig {
                log_group_name: "/aurastream/{service.name}/security".into(),
                retention_in_days: 2557,
            },
        )]
        .into(),
        ..Default::default()
    };
    config.validate().expect("valid");
    let e =
        CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &Arc::new(SelfMetrics::new()));
    let resources = vec![
        resource_logs(
            "svc-a",
            vec![
                record(Some("security"), "1"),
                record(Some("application"), "2"),
            ],
        ),
        resource_logs(
            "svc-b",
            vec![record(Some("security"), "3"), record(None, "4")],
        ),
    ];
    let (by_target, empty) = e.events(&resources);
    assert_eq!(empty, 0);
    let got: Vec<(String, String, u32, Vec<usize>)> = by_target
        .iter()
        .map(|(t, events)| {
            (
                t.group.clone(),
                t.stream.clone(),
                t.retention_days,
                events.iter().map(|e| e.origin).collect(),
            )
        })
        .collect();
    let row =
        |g: &str, days: u32, origin: usize| (g.to_string(), "prod".to_string(), days, vec![origin]);
    assert_eq!(
        got,
        vec![
            row("/aurastream/svc-a/application", 14, 1),
            row("/aurastream/svc-a/security", 2557, 0),
            row("/aurastream/svc-b/security", 2557, 2),
            row("/aurastream/svc-b/uncategorized", 14, 3),
        ]
    );
}

#[test]
fn groups_past_the_cap_go_to_the_overflow_group() {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "/aurastream/{service.name}".into(),
        log_stream_name: "s".into(),
        max_log_groups: 1,
        categories: BTreeMap::new(),
        ..Default::default()
    };
    let metrics = Arc::new(SelfMetrics::new());
    let e = CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &metrics);
    let resources = vec![
        resource_logs("a", vec![record(None, "1")]),
        resource_logs("b", vec![record(None, "2")]),
        resource_logs("a", vec![record(None, "3")]),
    ];
    let (by_target, _) = e.events(&resources);
    let groups: Vec<(&str, Vec<usize>)> = by_target
        .iter()
        .map(|(t, events)| (t.group.as_str(), events.iter().map(|e| e.origin).collect()))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("/aurastream/a", vec![0, 2]),
            ("/aurastream/overflow", vec![1])
        ]
    );
    let overflowed =
        metrics.component_event("awscloudwatchlogs", Signal::Logs, "log_group_overflow");
    assert_eq!(overflowed.get(), 1);
}

#[test]
fn each_resource_s_service_is_the_entity_of_its_batches() {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "/aws/aurastream/default".into(),
        log_stream_name: "s".into(),
        ..Default::default()
    };
    let e =
        CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &Arc::new(SelfMetrics::new()));
    let resources = vec![
        resource_logs("svc-a", vec![record(None, "1")]),
        resource_logs("svc-b", vec![record(None, "2")]),
        ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record(None, "3")],
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    let (by_target, _) = e.events(&resources);
    let entities: Vec<(Option<String>, Vec<usize>)> = by_target
        .iter()
        .map(|(t, events)| {
            (
                t.entity.as_ref().map(|e| e.key_attributes["Name"].clone()),
                events.iter().map(|e| e.origin).collect(),
            )
        })
        .collect();
    // Same group and stream, three requests: one per entity (none for the resource
    // without a service name).
    assert_eq!(
        entities,
        vec![
            (None, vec![2]),
            (Some("svc-a".to_string()), vec![0]),
            (Some("svc-b".to_string()), vec![1]),
        ]
    );
    let off = CloudWatchLogsExporterConfig {
        send_entity: false,
        ..config
    };
    let e = CloudWatchLogsExporter::new("awscloudwatchlogs", &off, &Arc::new(SelfMetrics::new()));
    let (by_target, _) = e.events(&resources);
    assert_eq!(by_target.len(), 1);
    assert!(by_target.keys().all(|t| t.entity.is_none()));
}

#[tokio::test]
async fn file_output_writes_each_event_with_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("logs.jsonl");
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "/aws/aurastream/default".into(),
        log_stream_name: "s".into(),
        output_destination: crate::output::OutputDestination::File,
        path: Some(path.clone()),
        ..Default::default()
    };
    config.validate().expect("valid");
    let e =
        CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &Arc::new(SelfMetrics::new()));
    let mut late = record(
        Some("security"),
        r#"{"event_type":"failed_authentication"}"#,
    );
    late.time_unix_nano = 2_000_000;
    let mut early = record(None, "plain");
    early.time_unix_nano = 1_000_000;
    let batch = SignalData::Logs(vec![resource_logs("sentiment-api", vec![late, early])]);
    let report = e.export(&batch).await.expect("written");
    assert!(report.dropped.is_empty());
    e.flush().await.expect("synced");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let entity = serde_json::json!({
        "keyAttributes": {"Type": "Service", "Name": "sentiment-api", "Environment": "prod"},
        "attributes": {"PlatformType": "Generic", "AWS.ServiceNameSource": "Instrumentation"},
    });
    let resource = serde_json::json!({
        "service.name": "sentiment-api",
        "deployment.environment.name": "prod",
    });
    let plain = serde_json::json!({"body": "plain", "resource": resource}).to_string();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"logGroupName": "/aws/aurastream/default", "logStreamName": "s",
                "timestamp": 1, "message": plain, "entity": entity}),
            serde_json::json!({"logGroupName": "/aws/aurastream/security", "logStreamName": "s",
                "timestamp": 2, "message": "{\"event_type\":\"failed_authentication\"}",
                "entity": entity}),
        ]
    );
}

#[test]
fn file_output_needs_a_path() {
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "g".into(),
        output_destination: crate::output::OutputDestination::File,
        ..Default::default()
    };
    assert!(matches!(
        config.validate(),
        Err(Invalid::Rule(rule)) if rule.starts_with("path is required")
    ));
}

#[tokio::test]
async fn empty_raw_messages_are_dropped_with_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = CloudWatchLogsExporterConfig {
        log_group_name: "g".into(),
        raw_log: true,
        output_destination: crate::output::OutputDestination::File,
        path: Some(dir.path().join("logs.jsonl")),
        ..Default::default()
    };
    let e =
        CloudWatchLogsExporter::new("awscloudwatchlogs", &config, &Arc::new(SelfMetrics::new()));
    let batch = SignalData::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: vec![record(None, ""), record(None, "kept")],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let report = e.export(&batch).await.expect("written");
    assert_eq!(report.dropped, vec![(Reason::Named("empty_message"), 1)]);
    let text = std::fs::read_to_string(dir.path().join("logs.jsonl")).expect("file");
    assert_eq!(text.lines().count(), 1);
}
