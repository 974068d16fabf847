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
use aurastream_e2e::emf::{Key, combine, emf_points};
use aurastream_e2e::{Collector, Ports, base_config, eventually, python_client};
use serde_json::Value;

const NAMESPACE: &str = "AuraStream/Limits";

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
    first_export_count: f64,
}

fn recorded(manifest: &Value, metric: &str) -> BTreeMap<String, Recorded> {
    let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    manifest["histograms"][metric]
        .as_object()
        .unwrap_or_else(|| panic!("{metric} in the manifest"))
        .iter()
        .map(|(dims, s)| {
            (
                dims.clone(),
                Recorded {
                    count: number(&s["count"]),
                    first_export_count: number(&s["first_export_count"]),
                },
            )
        })
        .collect()
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
        aurastream_e2e::metric_sum(&run.metrics, name, &labels)
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
