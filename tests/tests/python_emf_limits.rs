//! CloudWatch's Embedded Metric Format limits and cumulative first points, end to end: the
//! Python OpenTelemetry SDK (cumulative temporality, its default) sends
//! `tests/python/send_emf_limits.py`'s workload to the real collector, which exports it with
//! `awsemf` into a moto server; every document is read back, checked against the EMF rules
//! (moto accepts anything, so the test applies CloudWatch's checks: at most 100 values per
//! metric, dimension values of 1 to 1,024 characters, ...) and combined per metric and
//! dimension set the way CloudWatch combines them, then compared with what Python recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::emf::{Combined, Key, MAX_DIMENSION_VALUE_CHARS, close, combine, emf_points};
use aurastream_e2e::{Collector, Ports, base_config, eventually, python_client};
use serde_json::Value;

const NAMESPACE: &str = "AuraStream/Limits";
/// What the exporter appends to a dimension value it cut to 1,024 characters.
const TRUNCATION_MARKER: &str = "...[truncated]";

fn config(ports: &Ports, moto: &str, awsemf_options: &str) -> String {
    format!(
        r#"{base}
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  awsemf:
    region: us-east-1
    endpoint: "{moto}"
    namespace: {NAMESPACE}
    log_group_name: "/aws/aurastream/metrics/{{ServiceName}}"
    log_stream_name: emf
{awsemf_options}
service:
  extensions: [health_check]
  pipelines:
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [awsemf] }}
"#,
        base = base_config(ports),
    )
}

struct Run {
    /// What Python recorded (see the script's docstring).
    manifest: Value,
    /// Every data point read back, per (namespace, metric, dimensions).
    points: BTreeMap<Key, Vec<Value>>,
    /// `/metrics` once every point was settled.
    metrics: String,
}

impl Run {
    fn combined(&self, metric: &str, dimensions: &str) -> Combined {
        let key = (
            NAMESPACE.to_string(),
            metric.to_string(),
            dimensions.to_string(),
        );
        let values = self
            .points
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} never arrived: {:?}", self.points.keys()));
        combine(values)
    }

    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        aurastream_e2e::metric_sum(&self.metrics, name, labels)
    }
}

/// Series the workload creates over `rounds` rounds: the wide histogram, one latency series
/// per round, the long-dimension counter.
fn series(rounds: u32) -> f64 {
    f64::from(2 + rounds)
}

/// Points the collector receives: every series once per round from its first round on
/// (latency shard k from round k).
fn points_sent(rounds: u32) -> f64 {
    let shards: u32 = (1..=rounds).sum();
    f64::from(2 * rounds + shards)
}

fn run(rounds: u32, awsemf_options: &str) -> Run {
    use_test_credentials();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let moto = Moto::start();
    let moto_url = moto.url();
    let mut c = Collector::start(|ports, _| config(ports, &moto_url, awsemf_options));
    let service = "python-emf-limits";
    let out = python_client("send_emf_limits.py", "grpc", &c.ports.grpc_url(), service)
        .args([
            "--temporality",
            "cumulative",
            "--rounds",
            &rounds.to_string(),
        ])
        .output()
        .expect("run send_emf_limits.py");
    assert!(
        out.status.success(),
        "send_emf_limits.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout");
    let want = points_sent(rounds);
    eventually(
        "every metric point settled",
        Duration::from_secs(60),
        || {
            [
                "aurastream_exporter_sent_items_total",
                "aurastream_exporter_withheld_items_total",
                "aurastream_exporter_failed_items_total",
            ]
            .iter()
            .map(|m| c.metric(m, &["exporter=\"awsemf\""]))
            .sum::<f64>()
                >= want
        },
    );
    let metrics = c.metrics();
    assert_eq!(c.stop(), 0, "clean exit on SIGTERM:\n{}", c.stderr());
    let messages = rt.block_on(moto.group_messages(&format!("/aws/aurastream/metrics/{service}")));
    drop(moto);
    let mut points: BTreeMap<Key, Vec<Value>> = BTreeMap::new();
    for message in &messages {
        for (key, _, value) in emf_points(message) {
            points.entry(key).or_default().push(value);
        }
    }
    Run {
        manifest,
        points,
        metrics,
    }
}

/// What Python recorded for one histogram series.
struct Recorded {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    /// The counts of the buckets that were hit, in bucket order.
    hit_buckets: Vec<f64>,
    first_export_count: f64,
}

fn recorded(manifest: &Value, metric: &str) -> BTreeMap<String, Recorded> {
    let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    manifest["histograms"][metric]
        .as_object()
        .unwrap_or_else(|| panic!("{metric} in the manifest"))
        .iter()
        .map(|(dims, s)| {
            let hit_buckets = s["buckets"]
                .as_array()
                .expect("buckets")
                .iter()
                .map(number)
                .filter(|n| *n > 0.0)
                .collect();
            (
                dims.clone(),
                Recorded {
                    count: number(&s["count"]),
                    sum: number(&s["sum"]),
                    min: number(&s["min"]),
                    max: number(&s["max"]),
                    hit_buckets,
                    first_export_count: number(&s["first_export_count"]),
                },
            )
        })
        .collect()
}

/// The series of `metric` read back combine to exactly what was recorded: every sample of
/// every bucket, the sum, the min and the max.
fn assert_every_sample_arrived(run: &Run, metric: &str) {
    for (dims, want) in recorded(&run.manifest, metric) {
        let got = run.combined(metric, &dims);
        assert_eq!(got.count, want.count, "{metric} {dims}: samples");
        let counts: Vec<f64> = got.values.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            counts, want.hit_buckets,
            "{metric} {dims}: counts per bucket"
        );
        assert!(
            close(got.sum, want.sum),
            "{metric} {dims}: sum {} != {}",
            got.sum,
            want.sum
        );
        assert_eq!(
            (got.min, got.max),
            (Some(want.min), Some(want.max)),
            "{metric} {dims}"
        );
    }
}

/// The default configuration (`initial_value: auto`): every histogram sample recorded in
/// three rounds arrives, including each series' first export (its start time is after the
/// collector started); the 120-bucket histogram arrives whole across documents of at most
/// 100 values; the 2,000-character dimension value arrives cut to 1,024 characters with a
/// marker, in valid documents; every such action is counted on `/metrics`.
#[test]
fn python_cumulative_histograms_arrive_whole_and_long_dimension_values_truncated() {
    const ROUNDS: u32 = 3;
    let run = run(ROUNDS, "");
    let sent = points_sent(ROUNDS);
    let accounted = |name: &str| run.metric(name, &["exporter=\"awsemf\""]);
    assert_eq!(
        (
            accounted("aurastream_exporter_sent_items_total"),
            accounted("aurastream_exporter_withheld_items_total"),
            accounted("aurastream_exporter_failed_items_total"),
        ),
        (sent, 0.0, 0.0),
        "every point sent, none withheld as a baseline:\n{}",
        run.metrics
    );

    assert_every_sample_arrived(&run, "RequestLatency");
    assert_every_sample_arrived(&run, "WideHistogram");
    let wide = run.combined("WideHistogram", "Route=/wide");
    assert_eq!(wide.values.len(), 120, "all 120 buckets: {:?}", wide.values);
    assert_eq!(
        wide.points,
        2 * ROUNDS as usize,
        "each round's 120 values arrive in two documents (100 + 20)"
    );

    let long_keys: Vec<&Key> = run
        .points
        .keys()
        .filter(|k| k.1 == "LongDimensionCount" && k.2.starts_with("Payload="))
        .collect();
    assert_eq!(long_keys.len(), 1, "{long_keys:?}");
    let value = long_keys[0].2.trim_start_matches("Payload=");
    assert_eq!(value.chars().count(), MAX_DIMENSION_VALUE_CHARS);
    let original = run.manifest["long_value"].as_str().expect("long_value");
    assert_eq!(original.chars().count(), 2000);
    let kept = MAX_DIMENSION_VALUE_CHARS - TRUNCATION_MARKER.len();
    assert_eq!(value, format!("{}{TRUNCATION_MARKER}", &original[..kept]));
    let long = run.combined("LongDimensionCount", &long_keys[0].2);
    assert_eq!(long.sum, f64::from(ROUNDS), "the counter's every increment");

    let event = |e: &str| {
        run.metric(
            "aurastream_component_events_total",
            &["component=\"awsemf\"", &format!("event=\"{e}\"")],
        )
    };
    assert_eq!(
        event("dimension_value_truncated"),
        f64::from(ROUNDS),
        "one data point per round:\n{}",
        run.metrics
    );
    assert_eq!(
        event("split_values_over_100"),
        f64::from(ROUNDS),
        "one distribution per round:\n{}",
        run.metrics
    );
}

/// The cause of issue 18's missing histogram samples, confirmed: with `initial_value: drop`
/// (the default before `auto`) the first point of every cumulative series is withheld as a
/// baseline although each series began while the collector was running, so exactly the
/// samples of each series' first export never reach CloudWatch; later series (latency shard
/// k starts in round k) lose theirs too.
#[test]
fn python_cumulative_first_exports_are_lost_with_initial_value_drop() {
    const ROUNDS: u32 = 3;
    let run = run(ROUNDS, "    initial_value: drop");
    let accounted = |name: &str, extra: &[&str]| {
        let mut labels = vec!["exporter=\"awsemf\""];
        labels.extend_from_slice(extra);
        run.metric(name, &labels)
    };
    assert_eq!(
        accounted(
            "aurastream_exporter_withheld_items_total",
            &["reason=\"initial_cumulative_point\""]
        ),
        series(ROUNDS),
        "one baseline per series:\n{}",
        run.metrics
    );
    for metric in ["WideHistogram", "RequestLatency"] {
        for (dims, want) in recorded(&run.manifest, metric) {
            let got =
                match run
                    .points
                    .get(&(NAMESPACE.to_string(), metric.to_string(), dims.clone()))
                {
                    Some(values) => combine(values).count,
                    None => 0.0,
                };
            assert_eq!(
                got,
                want.count - want.first_export_count,
                "{metric} {dims}: all but the first export's samples"
            );
            assert!(want.first_export_count > 0.0);
        }
    }
}
