//! The queue on disk (`sending_queue.storage`) against a killed process and damaged files.
//!
//! - Crash: the collector is killed with SIGKILL at random moments while a load runs and
//!   the destination throttles; after a final restart drains the queue, every item the
//!   collector acknowledged must be at the destination. Copies are allowed only from
//!   batches exported but not yet removed from the queue when the process died (at most
//!   `num_consumers` batches per exporter per kill) and from calls cut mid-flight.
//! - Corruption: with the destination down, batches wait on disk; the collector stops, a
//!   byte is flipped in one record and the last record is torn; the next start skips and
//!   counts exactly those two records (their items as failed) and delivers all the others
//!   once.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{LOG_GROUP, STREAM, compare, size_from_env};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::load::{Kind, logs, metrics, spans};
use aurastream_e2e::{Collector, Ports, base_config, eventually, metric_sum, test_runtime};

/// Items per OTLP request; with no batch processor, one request is one record on disk.
const PER_REQUEST: u64 = 100;
const NUM_CONSUMERS: u64 = 2;

fn config(ports: &Ports, endpoint: &str, storage: &Path, shutdown: &str) -> String {
    let queue = format!(
        "{{ num_consumers: {NUM_CONSUMERS}, storage: {}, fsync: always, max_bytes: 67108864, \
         when_full: block }}",
        storage.display()
    );
    let retry = "{ initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m }";
    format!(
        r#"{base}
exporters:
  awsxray:
    endpoint: {endpoint}
    region: us-east-1
    request_timeout_seconds: 10
    retry_on_failure: {retry}
    sending_queue: {queue}
  awscloudwatchlogs:
    endpoint: {endpoint}
    region: us-east-1
    log_group_name: {LOG_GROUP}
    log_stream_name: {STREAM}
    categories: {{}}
    raw_log: true
    timeout: 10s
    retry_on_failure: {retry}
    sending_queue: {queue}
service:
  shutdown_timeout: {shutdown}
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [awsxray] }}
    logs: {{ receivers: [otlp], exporters: [awscloudwatchlogs] }}
"#,
        base = base_config(ports)
    )
}

/// What one round of load saw: keys acknowledged (200) and keys whose request got no
/// answer because the collector died (they may or may not have been taken).
#[derive(Default)]
struct Round {
    acked: Vec<String>,
    uncertain: Vec<String>,
}

/// Sends requests of `kind` from sequence number `first` until the collector stops
/// answering; refused requests (503) are retried.
async fn send_until_gone(url: String, kind: Kind, first: u64, run: u32) -> (Round, u64) {
    let client = reqwest::Client::new();
    let mut round = Round::default();
    let mut next = first;
    loop {
        let (body, keys) = match kind {
            Kind::Spans => spans(next, PER_REQUEST, run),
            Kind::Logs => logs(next, PER_REQUEST),
            Kind::Metrics => metrics(next, PER_REQUEST),
        };
        next += PER_REQUEST;
        loop {
            let sent = client
                .post(format!("{url}{}", kind.path()))
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await;
            match sent.map(|r| r.status().as_u16()) {
                Ok(200) => {
                    round.acked.extend(keys);
                    break;
                }
                Ok(503 | 429) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(other) => panic!("collector answered {other}"),
                Err(_) => {
                    round.uncertain.extend(keys);
                    return (round, next);
                }
            }
        }
    }
}

fn random_millis(from: u64, span: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    Duration::from_millis(from + nanos % span)
}

fn settled_after_replay(c: &Collector, exporter: &str) -> bool {
    let m = c.metrics();
    let e = format!("component=\"{exporter}\"");
    let replayed = metric_sum(
        &m,
        "aurastream_component_events_total",
        &[&e, "event=\"queue_replayed_items\""],
    );
    let x = format!("exporter=\"{exporter}\"");
    let done = metric_sum(&m, "aurastream_exporter_sent_items_total", &[&x])
        + metric_sum(&m, "aurastream_exporter_failed_items_total", &[&x]);
    done >= replayed
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_item() {
    use_test_credentials();
    let kills = size_from_env("DURABILITY_KILLS", 3);
    let rt = test_runtime();
    rt.block_on(async {
        let moto = Moto::start();
        let proxy = FaultProxy::start(
            &moto.url(),
            Faults {
                fault_percent: 30,
                max_latency: Duration::from_millis(20),
            },
        )
        .await;
        let storage = tempfile::tempdir().expect("queue dir");
        let endpoint = proxy.url();
        let run = std::process::id();
        let (mut acked_logs, mut acked_spans) = (Vec::new(), Vec::new());
        let mut uncertain = BTreeSet::new();
        let (mut next_log, mut next_span) = (0, 0);
        for _ in 0..kills {
            let mut c =
                Collector::start(|ports, _| config(ports, &endpoint, storage.path(), "10s"));
            let url = c.ports.http_url();
            let l = tokio::spawn(send_until_gone(url.clone(), Kind::Logs, next_log, run));
            let s = tokio::spawn(send_until_gone(url, Kind::Spans, next_span, run));
            tokio::time::sleep(random_millis(300, 2_000)).await;
            c.child_mut().kill().expect("SIGKILL the collector");
            let _ = c.child_mut().wait();
            let ((lr, nl), (sr, ns)) = (l.await.expect("logs"), s.await.expect("spans"));
            (next_log, next_span) = (nl, ns);
            acked_logs.extend(lr.acked);
            acked_spans.extend(sr.acked);
            uncertain.extend(lr.uncertain.into_iter().chain(sr.uncertain));
        }
        // A last start with no load: it replays and drains whatever is on disk.
        let c = Collector::start(|ports, _| config(ports, &endpoint, storage.path(), "10s"));
        tokio::task::block_in_place(|| {
            eventually("replay drained", Duration::from_secs(600), || {
                settled_after_replay(&c, "awscloudwatchlogs") && settled_after_replay(&c, "awsxray")
            })
        });
        let found_logs = moto.log_messages(LOG_GROUP, STREAM).await;
        let found_spans: Vec<String> = moto
            .xray_segments()
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let uncertain_found =
            |found: &[String]| found.iter().filter(|k| uncertain.contains(*k)).count();
        let (lu, su) = (uncertain_found(&found_logs), uncertain_found(&found_spans));
        let found_logs: Vec<String> = found_logs
            .into_iter()
            .filter(|k| !uncertain.contains(k))
            .collect();
        let found_spans: Vec<String> = found_spans
            .into_iter()
            .filter(|k| !uncertain.contains(k))
            .collect();
        let logs_at = compare(&acked_logs, found_logs);
        let spans_at = compare(&acked_spans, found_spans);
        eprintln!(
            "DURABILITY crash: {kills} SIGKILLs; uncertain (unanswered) items {} of which found \
             {lu} logs / {su} spans; proxy {:?}\n  logs {:?}\n  spans {:?}",
            uncertain.len(),
            proxy.stats(),
            (
                logs_at.acknowledged,
                logs_at.delivered,
                logs_at.duplicated,
                logs_at.missing.len(),
                logs_at.unknown
            ),
            (
                spans_at.acknowledged,
                spans_at.delivered,
                spans_at.duplicated,
                spans_at.missing.len(),
                spans_at.unknown
            ),
        );
        let bound = (kills * NUM_CONSUMERS * PER_REQUEST) as usize;
        for (name, at) in [("logs", &logs_at), ("spans", &spans_at)] {
            assert!(at.acknowledged > 0, "{name}: the load ran");
            assert!(
                at.missing.is_empty(),
                "{name}: {} acknowledged items lost (first {:?})\n{}",
                at.missing.len(),
                at.missing.first(),
                c.stderr()
            );
            assert_eq!(at.unknown, 0, "{name}: items nobody sent");
            assert!(
                at.duplicated <= bound,
                "{name}: {} copies, more than the documented bound {bound}",
                at.duplicated
            );
        }
        // Log events carry delivery markers (on by default with a queue on disk): a replayed
        // request CloudWatch already holds is recognised and not sent again. X-Ray needs no
        // marker: it keys segments by id, so a replayed segment replaces itself there.
        assert_eq!(
            logs_at.duplicated,
            0,
            "logs: copies despite delivery markers\n{}",
            c.stderr()
        );
        let markers = moto.delivery_markers(LOG_GROUP, STREAM).await;
        let marked: u64 = markers.iter().filter_map(|m| m["events"].as_u64()).sum();
        assert_eq!(
            marked as usize,
            logs_at.delivered + lu,
            "every stored event came with its request's marker"
        );
    });
}

#[test]
fn damaged_queue_files_are_skipped_and_counted_and_the_rest_delivered() {
    use_test_credentials();
    let rt = test_runtime();
    rt.block_on(async {
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
        let storage = tempfile::tempdir().expect("queue dir");
        let endpoint = proxy.url();
        let mut c = Collector::start(|ports, _| config(ports, &endpoint, storage.path(), "1s"));
        let client = reqwest::Client::new();
        let requests = 20;
        let mut acked = Vec::new();
        for r in 0..requests {
            let (body, keys) = logs(r * PER_REQUEST, PER_REQUEST);
            let resp = client
                .post(format!("{}/v1/logs", c.ports.http_url()))
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .expect("collector answers");
            assert_eq!(resp.status().as_u16(), 200);
            acked.extend(keys);
        }
        // Every batch has left the pipeline for the queue on disk.
        tokio::task::block_in_place(|| {
            eventually("batches on disk", Duration::from_secs(60), || {
                c.metric("aurastream_pipeline_queue_items", &["pipeline=\"logs\""]) == 0.0
            })
        });
        assert_eq!(
            c.stop(),
            0,
            "clean exit after the shutdown timeout:\n{}",
            c.stderr()
        );

        let dir = std::fs::read_dir(storage.path())
            .expect("storage")
            .map(|e| e.expect("entry").path())
            .find(|p| p.to_string_lossy().contains("awscloudwatchlogs"))
            .expect("the logs exporter's queue directory");
        let mut segments: Vec<_> = std::fs::read_dir(&dir)
            .expect("queue dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        segments.sort();
        let first = segments.first().expect("a segment").clone();
        let last = segments.last().expect("a segment").clone();
        let mut data = std::fs::read(&first).expect("segment");
        let middle = data.len() / 2;
        data[middle] ^= 0x5a;
        std::fs::write(&first, &data).expect("flip a byte");
        let mut data = std::fs::read(&last).expect("segment");
        data.truncate(data.len() - 7);
        std::fs::write(&last, &data).expect("tear the last record");

        proxy.set_up();
        let c = Collector::start(|ports, _| config(ports, &endpoint, storage.path(), "1s"));
        tokio::task::block_in_place(|| {
            eventually("replay drained", Duration::from_secs(300), || {
                settled_after_replay(&c, "awscloudwatchlogs")
            })
        });
        let corrupt = c.metric(
            "aurastream_component_events_total",
            &[
                "component=\"awscloudwatchlogs\"",
                "event=\"queue_corrupt_records\"",
            ],
        );
        let replayed = c.metric(
            "aurastream_component_events_total",
            &[
                "component=\"awscloudwatchlogs\"",
                "event=\"queue_replayed_items\"",
            ],
        );
        let corrupt_items = c.metric(
            "aurastream_exporter_failed_items_total",
            &["exporter=\"awscloudwatchlogs\"", "reason=\"queue_corrupt\""],
        );
        let at = compare(&acked, moto.log_messages(LOG_GROUP, STREAM).await);
        eprintln!(
            "DURABILITY corruption: {} acknowledged, {} replayed, {} delivered, {} duplicated, \
             {} missing, {corrupt} corrupt records, {corrupt_items} items counted failed",
            at.acknowledged,
            replayed,
            at.delivered,
            at.duplicated,
            at.missing.len()
        );
        assert_eq!(corrupt, 2.0, "the flipped and the torn record");
        assert_eq!(
            corrupt_items,
            2.0 * PER_REQUEST as f64,
            "their items counted as failed"
        );
        assert_eq!(
            at.missing.len(),
            2 * PER_REQUEST as usize,
            "exactly those two batches"
        );
        assert_eq!(
            at.delivered as f64, replayed,
            "every intact record delivered"
        );
        assert_eq!((at.duplicated, at.unknown), (0, 0));
    });
}
