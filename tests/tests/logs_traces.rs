//! Logs ↔ traces, templated log groups and the CloudWatch entity, end to end: the Python
//! OpenTelemetry SDK sends spans and log records of the same requests to the real
//! collector, which exports them with `awsxray` and `awscloudwatchlogs` into moto; every
//! check reads back what moto holds.
//!
//! - A log record and a span from one request: the log event carries the segment's trace id
//!   in X-Ray form (`xray_trace_id`) and the span id, and the segment lists the log group in
//!   `aws.cloudwatch_logs` (from the logs exporter's routing: the Python resource has no
//!   `aws.log.group.names`).
//! - Templated groups: records of two services and two categories land in four groups, each
//!   created with its category's retention.
//! - The entity: moto accepts PutLogEvents' `entity` but does not store it, so the requests
//!   go through the recording proxy (`FaultProxy` without faults) and the test reads the
//!   entity from the request bodies the collector sent.

use std::collections::BTreeMap;
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::{Collector, Ports, base_config, eventually, python_client, test_runtime};
use serde_json::{Value, json};

/// The log groups the default routing names: the five categories and the default group.
const ROUTED_GROUPS: [&str; 6] = [
    "/aws/aurastream/application",
    "/aws/aurastream/audit",
    "/aws/aurastream/business",
    "/aws/aurastream/performance",
    "/aws/aurastream/security",
    "/aws/aurastream/uncategorized",
];

/// A log group as read back: retention, stream names, events.
type Group = (Option<i64>, Vec<String>, Vec<Value>);

/// One record the script sent, with its request's span.
#[derive(Debug)]
struct Sent {
    service: String,
    category: String,
    trace_id: String,
    span_id: String,
    message: String,
}

/// Runs the script against the collector's gRPC port; what it sent, in order.
fn send(c: &Collector, environment: &str, services: &str, categories: &str) -> Vec<Sent> {
    let out = python_client(
        "send_correlated_logs.py",
        "grpc",
        &c.ports.grpc_url(),
        environment,
    )
    .args(["--services", services, "--categories", categories])
    .output()
    .expect("run send_correlated_logs.py");
    assert!(
        out.status.success(),
        "send_correlated_logs.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
    manifest["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| Sent {
            service: r["service"].as_str().expect("service").to_owned(),
            category: r["category"].as_str().expect("category").to_owned(),
            trace_id: r["trace_id"].as_str().expect("trace_id").to_owned(),
            span_id: r["span_id"].as_str().expect("span_id").to_owned(),
            message: r["message"].as_str().expect("message").to_owned(),
        })
        .collect()
}

/// `1-{8 hex}-{24 hex}` from 32 hex digits.
fn xray_id(hex: &str) -> String {
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// Waits until the exporter settled `n` items (sent or failed).
fn settled(c: &Collector, exporter: &str, n: f64) {
    eventually(
        &format!("{exporter} settled {n} items"),
        Duration::from_secs(60),
        || {
            let label = format!("exporter=\"{exporter}\"");
            c.metric("aurastream_exporter_sent_items_total", &[&label])
                + c.metric("aurastream_exporter_failed_items_total", &[&label])
                >= n
        },
    );
}

#[test]
fn a_log_event_holds_its_segments_trace_id_and_the_segment_lists_the_log_group() {
    use_test_credentials();
    let rt = test_runtime();
    let moto = Moto::start();
    let endpoint = moto.url();
    let mut c = Collector::start(|ports: &Ports, _| {
        format!(
            r#"{base}
processors:
  batch: {{ send_batch_size: 100, timeout: 100ms }}
exporters:
  awsxray:
    region: us-east-1
    endpoint: "{endpoint}"
  awscloudwatchlogs:
    region: us-east-1
    endpoint: "{endpoint}"
    log_group_name: /aws/aurastream/uncategorized
    log_stream_name: "{{service.name}}"
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [awsxray] }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [awscloudwatchlogs] }}
"#,
            base = base_config(ports)
        )
    });
    let sent = send(&c, "e2e", "sentiment-api", "application");
    let [record] = sent.as_slice() else {
        panic!("one record expected: {sent:?}")
    };
    settled(&c, "awsxray", 1.0);
    settled(&c, "awscloudwatchlogs", 1.0);
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());

    let (messages, segments) = rt.block_on(async {
        (
            moto.log_messages("/aws/aurastream/application", "sentiment-api")
                .await,
            moto.xray_segments().await,
        )
    });
    let [message] = messages.as_slice() else {
        panic!("one log event expected: {messages:?}")
    };
    // The record's body is a JSON document, so the event is that document with the trace
    // context added at the top level.
    let event: Value = serde_json::from_str(message).expect("JSON event");
    let mut expected: Value = serde_json::from_str(&record.message).expect("JSON message");
    expected["trace_id"] = json!(record.trace_id);
    expected["span_id"] = json!(record.span_id);
    expected["xray_trace_id"] = json!(xray_id(&record.trace_id));
    assert_eq!(event, expected);

    let [(_, segment)] = segments.as_slice() else {
        panic!("one segment expected: {segments:?}")
    };
    assert_eq!(segment["trace_id"], event["xray_trace_id"]);
    assert_eq!(segment["id"], json!(record.span_id));
    let listed: Vec<&str> = segment["aws"]["cloudwatch_logs"]
        .as_array()
        .expect("aws.cloudwatch_logs")
        .iter()
        .map(|g| g["log_group"].as_str().expect("log_group"))
        .collect();
    assert_eq!(listed, ROUTED_GROUPS, "{segment}");
}

#[test]
fn two_services_and_two_categories_land_in_four_templated_groups_with_retention_and_entity() {
    use_test_credentials();
    let rt = test_runtime();
    let moto = Moto::start();
    let proxy = rt.block_on(FaultProxy::start(
        &moto.url(),
        Faults {
            fault_percent: 0,
            max_latency: Duration::ZERO,
        },
    ));
    proxy.record();
    let endpoint = proxy.url();
    let mut c = Collector::start(|ports: &Ports, _| {
        format!(
            r#"{base}
processors:
  batch: {{ send_batch_size: 100, timeout: 100ms }}
exporters:
  awscloudwatchlogs:
    region: us-east-1
    endpoint: "{endpoint}"
    log_group_name: "/aurastream/{{service.name}}/{{log.category:-uncategorized}}"
    log_stream_name: "{{deployment.environment.name}}"
    log_retention: 14
    max_log_groups: 10
    categories:
      security: {{ log_group_name: "/aurastream/{{service.name}}/security", retention_in_days: 2557 }}
      application: {{ log_group_name: "/aurastream/{{service.name}}/application", retention_in_days: 30 }}
service:
  extensions: [health_check]
  pipelines:
    logs: {{ receivers: [otlp], processors: [batch], exporters: [awscloudwatchlogs] }}
"#,
            base = base_config(ports)
        )
    });
    let sent = send(&c, "staging", "svc-a,svc-b", "application,security");
    assert_eq!(sent.len(), 4);
    settled(&c, "awscloudwatchlogs", 4.0);
    assert_eq!(c.stop(), 0, "clean exit:\n{}", c.stderr());

    let groups = rt.block_on(async {
        let mut groups = BTreeMap::new();
        for (group, retention) in moto.log_groups().await {
            let streams = moto.log_streams(&group).await;
            let messages = moto.group_messages(&group).await;
            groups.insert(group, (retention, streams, messages));
        }
        groups
    });
    let mut expected = BTreeMap::new();
    for s in &sent {
        let retention = if s.category == "security" { 2557 } else { 30 };
        expected.insert(
            format!("/aurastream/{}/{}", s.service, s.category),
            (
                Some(retention),
                vec!["staging".to_string()],
                vec![serde_json::from_str(&s.message).expect("JSON message")],
            ),
        );
    }
    // Each event is the record's JSON document plus its trace context.
    let got: BTreeMap<String, Group> = groups
        .into_iter()
        .map(|(g, (retention, streams, messages))| {
            let documents = messages
                .iter()
                .map(|m| {
                    let mut event: Value = serde_json::from_str(m).expect("JSON event");
                    if let Some(fields) = event.as_object_mut() {
                        for key in ["trace_id", "span_id", "xray_trace_id"] {
                            assert!(fields.remove(key).is_some(), "{key} in {m}");
                        }
                    }
                    event
                })
                .collect();
            (g, (retention, streams, documents))
        })
        .collect();
    assert_eq!(got, expected);

    // Every PutLogEvents request carries its service's entity. (The first request to a
    // group fails with ResourceNotFoundException and is sent again once the group exists.)
    let calls = proxy.forwarded_calls("PutLogEvents");
    let mut entities: BTreeMap<String, Value> = BTreeMap::new();
    for call in &calls {
        let group = call["logGroupName"]
            .as_str()
            .expect("logGroupName")
            .to_owned();
        let entity = call["entity"].clone();
        if let Some(previous) = entities.insert(group.clone(), entity.clone()) {
            assert_eq!(previous, entity, "one entity per group: {group}");
        }
    }
    let entity = |service: &str| {
        json!({
            "keyAttributes": {"Type": "Service", "Name": service, "Environment": "staging"},
            "attributes": {"PlatformType": "Generic", "AWS.ServiceNameSource": "Instrumentation"},
        })
    };
    let expected: BTreeMap<String, Value> = sent
        .iter()
        .map(|s| {
            (
                format!("/aurastream/{}/{}", s.service, s.category),
                entity(&s.service),
            )
        })
        .collect();
    assert_eq!(entities, expected);
}
