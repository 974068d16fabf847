//! Shared parts of the durability tests: the collector configuration with the three AWS
//! exporters pointed at a fault proxy, the load, waiting for the pipelines to drain, and
//! the exactly-once check against what moto holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::aws::{Moto, occurrences};
use crate::load::{Kind, SendStats, send_all};
use crate::{Collector, Ports, base_config, metric_sum};

pub const LOG_GROUP: &str = "/durability/logs";
pub const EMF_GROUP: &str = "/durability/metrics";
pub const STREAM: &str = "durability";

/// How many items of each kind a test sends: `default` unless the environment variable
/// `var` says otherwise (the full-size runs in RELIABILITY.md set it).
pub fn size_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The collector: OTLP in, batch, then `awsxray`, `awscloudwatchlogs` and `awsemf` at
/// `endpoint`. Retries are tightened (100 ms – 2 s) so a test spends its time on delivery,
/// not on waiting; `max_elapsed_time` stays long enough to outlast the outages tested.
pub fn aws_config(ports: &Ports, endpoint: &str, queue_size: usize) -> String {
    format!(
        r#"{base}
processors:
  batch: {{ send_batch_size: 500, timeout: 200ms }}
exporters:
  awsxray:
    endpoint: {endpoint}
    region: us-east-1
    num_workers: 4
    request_timeout_seconds: 10
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 2s, max_elapsed_time: 10m }}
    sending_queue: {{ num_consumers: 2 }}
  awscloudwatchlogs:
    endpoint: {endpoint}
    region: us-east-1
    log_group_name: {LOG_GROUP}
    log_stream_name: {STREAM}
    categories: {{}}
    raw_log: true
    timeout: 10s
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 2s, max_elapsed_time: 10m }}
    sending_queue: {{ num_consumers: 2 }}
  awsemf:
    endpoint: {endpoint}
    region: us-east-1
    namespace: Durability
    log_group_name: {EMF_GROUP}
    log_stream_name: {STREAM}
    max_dimension_sets_per_metric: 100000000
    timeout: 10s
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 2s, max_elapsed_time: 10m }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [awsxray], queue_size: {queue_size} }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [awscloudwatchlogs], queue_size: {queue_size} }}
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [awsemf], queue_size: {queue_size} }}
"#,
        base = base_config(ports)
    )
}

/// Items per signal to send.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub spans: u64,
    pub logs: u64,
    pub metrics: u64,
}

/// Keys the collector acknowledged, per signal.
#[derive(Debug, Default)]
pub struct Acknowledged {
    pub spans: Vec<String>,
    pub logs: Vec<String>,
    pub metrics: Vec<String>,
}

/// Sends every signal concurrently until all of it is acknowledged.
pub async fn send_load(base_url: &str, sizes: Sizes, stats: Arc<SendStats>) -> Acknowledged {
    let run = std::process::id();
    let spans = tokio::spawn(send_all(
        base_url.to_owned(),
        Kind::Spans,
        sizes.spans,
        100,
        4,
        run,
        stats.clone(),
    ));
    let logs = tokio::spawn(send_all(
        base_url.to_owned(),
        Kind::Logs,
        sizes.logs,
        100,
        4,
        run,
        stats.clone(),
    ));
    let metrics = tokio::spawn(send_all(
        base_url.to_owned(),
        Kind::Metrics,
        sizes.metrics,
        50,
        2,
        run,
        stats,
    ));
    Acknowledged {
        spans: spans.await.expect("span sender"),
        logs: logs.await.expect("log sender"),
        metrics: metrics.await.expect("metric sender"),
    }
}

/// Polls `/metrics` in the background for the collector's peak resident memory.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(health_port: u16) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                let url = format!("http://127.0.0.1:{health_port}/metrics");
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(text) = crate::http_get(&url) {
                        let rss =
                            metric_sum(&text, "aurastream_process_resident_memory_bytes", &[]);
                        peak.fetch_max(rss as u64, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the highest RSS seen, in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Per-exporter totals from the collector's `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Accounting {
    pub accepted: f64,
    pub sent: f64,
    /// Items given up on, by reason.
    pub failed: BTreeMap<String, f64>,
    /// Items the exporter resent after a failure the destination may have applied anyway
    /// (timeout, connection broken mid-call): the bound on copies at the destination.
    pub possibly_duplicated: f64,
}

impl Accounting {
    pub fn read(metrics: &str, pipeline: &str, exporter: &str) -> Accounting {
        let p = format!("pipeline=\"{pipeline}\"");
        let e = format!("exporter=\"{exporter}\"");
        let mut failed = BTreeMap::new();
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("aurastream_exporter_failed_items_total{") && l.contains(&e))
        {
            let reason = line
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("unknown")
                .to_owned();
            let value: f64 = line
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0.0);
            *failed.entry(reason).or_default() += value;
        }
        Accounting {
            accepted: metric_sum(metrics, "aurastream_pipeline_accepted_items_total", &[&p]),
            sent: metric_sum(metrics, "aurastream_exporter_sent_items_total", &[&e]),
            failed,
            possibly_duplicated: metric_sum(
                metrics,
                "aurastream_component_events_total",
                &[
                    &format!("component=\"{exporter}\""),
                    "event=\"possibly_duplicated\"",
                ],
            ),
        }
    }

    pub fn dropped(&self) -> f64 {
        self.failed.values().sum()
    }

    /// Every accepted item is sent or given up on.
    pub fn settled(&self, expected: u64) -> bool {
        self.accepted >= expected as f64 && self.sent + self.dropped() >= self.accepted
    }
}

/// Waits until every pipeline has settled what it accepted; returns the totals. The bound
/// is generous on purpose: it is a liveness check, not a speed measurement.
pub fn wait_settled(
    collector: &Collector,
    acked: &Acknowledged,
) -> (Accounting, Accounting, Accounting) {
    let limit = Duration::from_secs(size_from_env("DURABILITY_SETTLE_SECS", 900));
    let deadline = std::time::Instant::now() + limit;
    loop {
        let m = collector.metrics();
        let t = Accounting::read(&m, "traces", "awsxray");
        let l = Accounting::read(&m, "logs", "awscloudwatchlogs");
        let e = Accounting::read(&m, "metrics", "awsemf");
        if t.settled(acked.spans.len() as u64)
            && l.settled(acked.logs.len() as u64)
            && e.settled(acked.metrics.len() as u64)
        {
            return (t, l, e);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipelines did not settle within {limit:?}: {t:?} {l:?} {e:?}\n{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the destination holds compared with what was acknowledged, for one signal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub acknowledged: usize,
    /// Acknowledged keys found at least once.
    pub delivered: usize,
    /// Extra copies of keys found more than once.
    pub duplicated: usize,
    /// Acknowledged keys not found.
    pub missing: Vec<String>,
    /// Keys found that were never acknowledged (must not happen: they did not exist).
    pub unknown: usize,
}

pub fn compare(acknowledged: &[String], found: Vec<String>) -> Delivered {
    let counts = occurrences(found);
    let acked = occurrences(acknowledged.iter().cloned());
    let mut d = Delivered {
        acknowledged: acknowledged.len(),
        ..Default::default()
    };
    for key in acked.keys() {
        match counts.get(key) {
            Some(n) => {
                d.delivered += 1;
                d.duplicated += n - 1;
            }
            None => d.missing.push(key.clone()),
        }
    }
    d.unknown = counts.keys().filter(|k| !acked.contains_key(*k)).count();
    d
}

/// Reads back spans, log records and metric points from moto and compares.
pub async fn read_back(moto: &Moto, acked: &Acknowledged) -> (Delivered, Delivered, Delivered) {
    let segments = moto.xray_segments().await;
    let spans = compare(
        &acked.spans,
        segments.into_iter().map(|(id, _)| id).collect(),
    );
    let logs = compare(&acked.logs, moto.log_messages(LOG_GROUP, STREAM).await);
    let metric_keys = moto
        .log_messages(EMF_GROUP, STREAM)
        .await
        .into_iter()
        .filter_map(|m| {
            let doc: serde_json::Value = serde_json::from_str(&m).ok()?;
            doc["seq"].as_str().map(str::to_owned)
        })
        .collect();
    let metrics = compare(&acked.metrics, metric_keys);
    (spans, logs, metrics)
}

/// Every acknowledged item is at the destination, nothing else is, nothing was given up
/// on, and the collector counted each item as sent once. Copies beyond the first are
/// allowed only up to what the exporter counted as `possibly_duplicated` (resent after a
/// failure the destination may have applied); with no such failure that is exactly once.
pub fn assert_delivered<'a>(
    collector: &Collector,
    signals: impl IntoIterator<Item = (&'a str, &'a Delivered, &'a Accounting)>,
) {
    for (name, at, acct) in signals {
        assert!(
            at.missing.is_empty(),
            "{name}: {} acknowledged items missing at the destination (first: {:?}); {acct:?}\n{}",
            at.missing.len(),
            at.missing.first(),
            collector.stderr()
        );
        assert!(
            at.duplicated as f64 <= acct.possibly_duplicated,
            "{name}: {} extra copies, but only {} items were resent after an ambiguous failure",
            at.duplicated,
            acct.possibly_duplicated
        );
        assert_eq!(at.unknown, 0, "{name}: items nobody sent");
        assert_eq!(acct.dropped(), 0.0, "{name}: nothing given up on: {acct:?}");
        assert_eq!(
            acct.sent, at.acknowledged as f64,
            "{name}: counted as sent once"
        );
    }
}
