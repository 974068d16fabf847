//! A pipeline's `memory_limit` with the real collector, large log records and a destination
//! that is down:
//!
//! - soft limit: once the pipeline holds that many bytes, senders get 503 (backpressure),
//!   the bytes held stay within the limit plus one request, and once the destination is
//!   back everything acknowledged is delivered exactly once;
//! - hard limit: a batch that fails while the pipeline is above it is shed, counted as
//!   failed with reason `memory_limit`, and the memory is released.

use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{LOG_GROUP, STREAM, compare};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::{Collector, Ports, base_config, eventually, test_runtime};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

const RECORDS_PER_REQUEST: u64 = 50;
/// Each record's body: a request is about 1 MB.
const BODY_BYTES: usize = 20_000;
const MIB: f64 = 1024.0 * 1024.0;

fn config(ports: &Ports, endpoint: &str, soft: u64, hard: u64) -> String {
    format!(
        r#"{base}
exporters:
  awscloudwatchlogs:
    endpoint: {endpoint}
    region: us-east-1
    log_group_name: {LOG_GROUP}
    log_stream_name: {STREAM}
    categories: {{}}
    raw_log: true
    timeout: 10s
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m }}
service:
  extensions: [health_check]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [awscloudwatchlogs]
      queue_size: 1000000
      memory_limit: {{ soft_limit_mib: {soft}, hard_limit_mib: {hard} }}
"#,
        base = base_config(ports)
    )
}

/// A request of large records; keys are the records' prefixes.
fn request(first: u64) -> (Vec<u8>, Vec<String>) {
    let keys: Vec<String> = (first..first + RECORDS_PER_REQUEST)
        .map(|n| format!("big-{n}"))
        .collect();
    let records = keys
        .iter()
        .map(|k| LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "{k} {}",
                    "x".repeat(BODY_BYTES)
                ))),
            }),
            ..Default::default()
        })
        .collect();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), keys)
}

async fn post(client: &reqwest::Client, c: &Collector, body: Vec<u8>) -> u16 {
    client
        .post(format!("{}/v1/logs", c.ports.http_url()))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("collector answers")
        .status()
        .as_u16()
}

#[test]
fn soft_limit_pushes_back_and_loses_nothing() {
    use_test_credentials();
    test_runtime().block_on(async {
        let moto = Moto::start();
        let proxy = FaultProxy::start(
            &moto.url(),
            Faults {
                fault_percent: 0,
                max_latency: Duration::ZERO,
            },
        )
        .await;
        proxy.set_down();
        let endpoint = proxy.url();
        let soft = 4;
        let c = Collector::start(|ports, _| config(ports, &endpoint, soft, 0));
        let client = reqwest::Client::new();
        let mut acked = Vec::new();
        let mut next = 0;
        let mut refused = 0;
        // Fill the pipeline until it refuses.
        while refused == 0 {
            let (body, keys) = request(next);
            match post(&client, &c, body).await {
                200 => {
                    acked.extend(keys);
                    next += RECORDS_PER_REQUEST;
                }
                503 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        let held = c.metric("aurastream_pipeline_memory_bytes", &["pipeline=\"logs\""]);
        let one_request = request(0).0.len() as f64;
        assert!(
            held >= soft as f64 * MIB && held <= soft as f64 * MIB + one_request,
            "held {held} B against a soft limit of {soft} MiB"
        );
        // Back up: everything drains, and the refused request goes through on retry.
        proxy.set_up();
        let (body, keys) = request(next);
        let mut status = 503;
        while status == 503 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            status = post(&client, &c, body.clone()).await;
        }
        assert_eq!(status, 200);
        acked.extend(keys);
        tokio::task::block_in_place(|| {
            eventually("pipeline drained", Duration::from_secs(300), || {
                c.metric("aurastream_exporter_sent_items_total", &["exporter=\"awscloudwatchlogs\""])
                    >= acked.len() as f64
            })
        });
        let found: Vec<String> = moto
            .log_messages(LOG_GROUP, STREAM)
            .await
            .into_iter()
            .filter_map(|m| m.split(' ').next().map(str::to_owned))
            .collect();
        let at = compare(&acked, found);
        eprintln!(
            "DURABILITY memory soft limit {soft} MiB: held {held} B when refusing; {} acknowledged, \
             {} delivered, {} duplicated, {} missing",
            at.acknowledged,
            at.delivered,
            at.duplicated,
            at.missing.len()
        );
        assert!(at.missing.is_empty() && at.duplicated == 0 && at.unknown == 0);
    });
}

#[test]
fn hard_limit_sheds_failed_batches_and_counts_them() {
    use_test_credentials();
    test_runtime().block_on(async {
        let moto = Moto::start();
        let proxy = FaultProxy::start(
            &moto.url(),
            Faults {
                fault_percent: 0,
                max_latency: Duration::ZERO,
            },
        )
        .await;
        proxy.set_down();
        let endpoint = proxy.url();
        // One request (about 1 MB) is admitted below the soft limit and alone crosses the
        // hard one.
        let c = Collector::start(|ports, _| config(ports, &endpoint, 1, 1));
        let client = reqwest::Client::new();
        let (body, _) = request(0);
        assert_eq!(post(&client, &c, body.clone()).await, 200);
        let (body2, _) = request(RECORDS_PER_REQUEST);
        assert_eq!(
            post(&client, &c, body2).await,
            200,
            "still under the soft limit"
        );
        tokio::task::block_in_place(|| {
            eventually("a batch is shed", Duration::from_secs(120), || {
                c.metric(
                    "aurastream_exporter_failed_items_total",
                    &["reason=\"memory_limit\""],
                ) > 0.0
            })
        });
        let shed = c.metric(
            "aurastream_exporter_failed_items_total",
            &["reason=\"memory_limit\""],
        );
        let held = c.metric("aurastream_pipeline_memory_bytes", &["pipeline=\"logs\""]);
        eprintln!("DURABILITY memory hard limit: {shed} items shed, {held} B still held");
        // The first batch was shed; that took the pipeline back under the hard limit, so
        // the second one is kept (and retried) rather than shed too.
        assert_eq!(shed, RECORDS_PER_REQUEST as f64);
        assert!(held > 0.0 && held < MIB, "held {held} B");
        // Memory released: new requests are taken again.
        assert_eq!(post(&client, &c, body).await, 200);
    });
}
