//! The process-wide `service.memory_limiter` with the real collector, large log records and
//! a destination that is down:
//!
//! - soft limit: once the pipelines hold that many bytes, senders get 503 (backpressure),
//!   the bytes held never pass the soft limit (a request reserves what it decodes to before
//!   it is decoded), and once the destination is back everything acknowledged is delivered
//!   exactly once;
//! - hard limit: a batch that fails while more than it is held is shed, counted as failed
//!   with reason `memory_limit`, and the memory is released. Requests alone cannot get
//!   there (their reservations stop at the soft limit); four pipelines fed by one receiver
//!   hold four copies of each request, which can.

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

fn config(ports: &Ports, endpoint: &str, limit: u64, spike: u64, copies: usize) -> String {
    let pipelines: String = (0..copies)
        .map(|i| {
            format!(
                "    logs/{i}: {{ receivers: [otlp], exporters: [awscloudwatchlogs], \
                 queue_size: 1000000 }}\n"
            )
        })
        .collect();
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
  memory_limiter: {{ limit_mib: {limit}, spike_limit_mib: {spike} }}
  pipelines:
{pipelines}"#,
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
        let c = Collector::start(|ports, _| config(ports, &endpoint, soft + 2, 2, 1));
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
        let held = c.metric("aurastream_memory_limiter_held_bytes", &[]);
        let one_request = request(0).0.len() as f64;
        // Refused when the next request's reservation (its body and what it decodes to,
        // about two requests' worth) would pass the soft limit.
        assert!(
            held <= soft as f64 * MIB && held >= soft as f64 * MIB - 3.0 * one_request,
            "held {held} B against a soft limit of {soft} MiB"
        );
        assert!(
            c.metric("aurastream_receiver_refused_requests_total", &["reason=\"memory_limit\""])
                >= 1.0
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
        // One request (about 1 MB, reserving about 2 MB while it is decoded) is admitted
        // alone (nothing else is held, and it fits the 3 MiB hard limit); its four copies
        // (4 MB) cross the hard limit.
        let c = Collector::start(|ports, _| config(ports, &endpoint, 3, 1, 4));
        let client = reqwest::Client::new();
        let (body, _) = request(0);
        assert_eq!(post(&client, &c, body.clone()).await, 200);
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
        let held = c.metric("aurastream_memory_limiter_held_bytes", &[]);
        eprintln!("DURABILITY memory hard limit: {shed} items shed, {held} B still held");
        // A copy was shed; once held is back under the hard limit the others are kept
        // (and retried) rather than shed too. Drivers that failed at the same moment may
        // each shed theirs before seeing the release, never more than two of four.
        let per_copy = RECORDS_PER_REQUEST as f64;
        assert!(shed == per_copy || shed == 2.0 * per_copy, "shed {shed}");
        let copy = request(0).0.len() as f64;
        assert!(held < 3.0 * MIB && held >= 1.9 * copy, "held {held} B");
        assert_eq!(
            post(&client, &c, body).await,
            503,
            "still over the soft limit while the destination is down"
        );
    });
}
