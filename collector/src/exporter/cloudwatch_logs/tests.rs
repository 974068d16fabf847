//! Routing and accounting of the `awscloudwatchlogs` exporter (no network).

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

#[test]
fn records_are_routed_by_category_with_the_category_retention() {
    let e = exporter();
    let resource = Resource {
        attributes: vec![kv("service.name", "sentiment-api")],
        ..Default::default()
    };
    let t = e.route(&record(Some("security"), "x"), Some(&resource));
    assert_eq!(
        t,
        LogTarget {
            group: "/aws/aurastream/security".into(),
            stream: "sentiment-api".into(),
            retention_days: 2557
        }
    );
    let t = e.route(&record(Some("Business"), "x"), Some(&resource));
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/business", 365)
    );
    let t = e.route(&record(Some("performance"), "x"), None);
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/performance", 90)
    );
    // Unknown and missing categories go to the default group.
    let t = e.route(&record(Some("marketing"), "x"), None);
    assert_eq!(
        (t.group.as_str(), t.retention_days),
        ("/aws/aurastream/default", 14)
    );
    let t = e.route(&record(None, "x"), None);
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
    let t = e.route(&record(None, "x"), Some(&resource));
    assert_eq!(t.group, "/aws/aurastream/audit");
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
    let batch = SignalData::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: vec![late, early],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let report = e.export(&batch).await.expect("written");
    assert!(report.dropped.is_empty());
    e.flush().await.expect("synced");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"logGroupName": "/aws/aurastream/default", "logStreamName": "s",
                "timestamp": 1, "message": "{\"body\":\"plain\"}"}),
            serde_json::json!({"logGroupName": "/aws/aurastream/security", "logStreamName": "s",
                "timestamp": 2, "message": "{\"event_type\":\"failed_authentication\"}"}),
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
    assert!(config.validate().expect_err("no path").contains("path"));
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
    assert_eq!(report.dropped, vec![("empty_message".to_string(), 1)]);
    let text = std::fs::read_to_string(dir.path().join("logs.jsonl")).expect("file");
    assert_eq!(text.lines().count(), 1);
}
