//! The Python OpenTelemetry SDK (`opentelemetry-sdk` + OTLP exporters) sends the monitoring
//! guide's metrics and structured logs to the real collector, which exports them with
//! `awsemf` and `awscloudwatchlogs` (`output_destination: cloudwatch`) into a moto server.
//! Everything is read back from moto (`GetLogEvents`, `DescribeLogGroups`) and compared
//! with what the guide's dashboards, alarms and Logs Insights queries expect:
//!
//! - every EMF document is valid, and every data point is present exactly once with the
//!   right value, namespace, dimensions and unit, under the guide's CamelCase name;
//! - every log event is in its category's group, once, with its JSON fields at the top
//!   level, and every group has the guide's retention;
//! - the collector accounts for every point: sent, withheld as a cumulative baseline, or
//!   failed (none here).
//!
//! The Python SDK lower-cases instrument names (`sentimentanalysiscount`). Both remedies are
//! exercised: the script renames the sentiment instruments with Views (`--views`); the
//! others arrive lower-cased and the collector's `metric_descriptors` respell them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::emf::{Key, close, combine, emf_points, same};
use aurastream_e2e::{Collector, Ports, base_config, eventually, python_client};
use serde_json::{Value, json};

const APP: &str = "AuraStream/Application";
const BUSINESS: &str = "AuraStream/Business";
const EMF_RETENTION: i64 = 7;
const UNCATEGORIZED_GROUP: &str = "/aws/aurastream/uncategorized";
const UNCATEGORIZED_RETENTION: i64 = 14;

/// The guide's log categories: group and retention (its "7 years" is 2557 days, the
/// CloudWatch value nearest to the guide's 2555, which CloudWatch rejects).
const CATEGORIES: [(&str, &str, i64); 5] = [
    ("security", "/aws/aurastream/security", 2557),
    ("audit", "/aws/aurastream/audit", 2557),
    ("application", "/aws/aurastream/application", 30),
    ("performance", "/aws/aurastream/performance", 90),
    ("business", "/aws/aurastream/business", 365),
];

/// `expected()` lists exactly the dimension sets of the guide's calls: no rollup sets.
const EXACT_SETS: &str = "    dimension_rollup_option: NoDimensionRollup";

/// The metrics the script leaves lower-cased (no View) and the collector respells.
const RESPELLED_BY_THE_COLLECTOR: [&str; 8] = [
    "CacheHitCount",
    "CacheMissCount",
    "CacheHitRate",
    "APIRequestCount",
    "APIResponseTime",
    "CustomerActivity",
    "Revenue",
    "Usage",
];

/// The collector's config; `awsemf_options` are further `awsemf` lines (indented by four).
fn config(ports: &Ports, moto: &str, awsemf_options: &str) -> String {
    let descriptors: String = RESPELLED_BY_THE_COLLECTOR
        .iter()
        .map(|name| match *name {
            "CacheHitRate" | "Revenue" => format!("      - {{metric_name: {name}, unit: None}}\n"),
            _ => format!("      - {{metric_name: {name}}}\n"),
        })
        .collect();
    format!(
        r#"{base}
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  awsemf:
    output_destination: cloudwatch
    region: us-east-1
    endpoint: "{moto}"
    namespace: {APP}
    log_group_name: "/aws/aurastream/metrics/{{ServiceName}}"
    log_stream_name: emf
    log_retention: {EMF_RETENTION}
{awsemf_options}
    metric_descriptors:
{descriptors}  awscloudwatchlogs:
    region: us-east-1
    endpoint: "{moto}"
    log_group_name: {UNCATEGORIZED_GROUP}
    log_stream_name: "{{ServiceName}}"
    log_retention: {UNCATEGORIZED_RETENTION}
service:
  extensions: [health_check]
  pipelines:
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [awsemf] }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [awscloudwatchlogs] }}
"#,
        base = base_config(ports),
    )
}

/// What the script's workload must become in CloudWatch, worked out by hand from the
/// guide's calls in `send_seed_cloudwatch.py` (one round). Distributions are the buckets'
/// midpoints kept within [Min, Max], as the exporter documents.
fn expected() -> BTreeMap<Key, (Option<&'static str>, Value)> {
    let key =
        |ns: &str, name: &str, dims: &str| (ns.to_string(), name.to_string(), dims.to_string());
    let dist = |values: &[f64], counts: &[f64], min: f64, max: f64, sum: f64| {
        json!({"Values": values, "Counts": counts, "Min": min, "Max": max,
               "Count": counts.iter().sum::<f64>(), "Sum": sum})
    };
    let count = Some("Count");
    let ms = Some("Milliseconds");
    BTreeMap::from([
        (
            key(APP, "SentimentAnalysisCount", "Sentiment=POSITIVE"),
            (count, json!(2.0)),
        ),
        (
            key(APP, "SentimentAnalysisCount", "Sentiment=NEGATIVE"),
            (count, json!(1.0)),
        ),
        (
            key(APP, "SentimentAnalysisCount", "Sentiment=NEUTRAL"),
            (count, json!(3.0)),
        ),
        (
            key(APP, "SentimentConfidence", "Sentiment=POSITIVE"),
            (None, dist(&[0.95], &[2.0], 0.91, 0.97, 1.88)),
        ),
        (
            key(APP, "SentimentConfidence", "Sentiment=NEGATIVE"),
            (None, dist(&[0.88], &[1.0], 0.88, 0.88, 0.88)),
        ),
        (
            key(APP, "SentimentConfidence", "Sentiment=NEUTRAL"),
            (
                None,
                dist(&[0.55, 0.65, 0.72], &[1.0, 1.0, 1.0], 0.55, 0.72, 1.88),
            ),
        ),
        (
            key(APP, "ProcessingTime", "Sentiment=POSITIVE"),
            (ms, dist(&[80.0, 120.0], &[1.0, 1.0], 80.0, 120.0, 200.0)),
        ),
        (
            key(APP, "ProcessingTime", "Sentiment=NEGATIVE"),
            (ms, dist(&[450.0], &[1.0], 450.0, 450.0, 450.0)),
        ),
        (
            key(APP, "ProcessingTime", "Sentiment=NEUTRAL"),
            (
                ms,
                dist(
                    &[37.5, 75.0, 1200.0],
                    &[1.0, 1.0, 1.0],
                    30.0,
                    1200.0,
                    1290.0,
                ),
            ),
        ),
        (key(APP, "CacheHitCount", ""), (count, json!(7.0))),
        (key(APP, "CacheMissCount", ""), (count, json!(3.0))),
        (
            key(APP, "CacheHitRate", ""),
            (None, dist(&[0.0, 0.95], &[3.0, 7.0], 0.0, 1.0, 7.0)),
        ),
        (
            key(
                APP,
                "APIRequestCount",
                "CustomerId=customer_123,Endpoint=/api/v1/sentiment,StatusCode=200",
            ),
            (count, json!(2.0)),
        ),
        (
            key(
                APP,
                "APIRequestCount",
                "CustomerId=customer_123,Endpoint=/api/v1/sentiment,StatusCode=500",
            ),
            (count, json!(1.0)),
        ),
        (
            key(
                APP,
                "APIRequestCount",
                "CustomerId=customer_456,Endpoint=/api/v1/batch,StatusCode=200",
            ),
            (count, json!(1.0)),
        ),
        (
            key(
                APP,
                "APIResponseTime",
                "CustomerId=customer_123,Endpoint=/api/v1/sentiment",
            ),
            (
                ms,
                dist(
                    &[90.0, 175.0, 1250.0],
                    &[1.0, 1.0, 1.0],
                    90.0,
                    1500.0,
                    1730.0,
                ),
            ),
        ),
        (
            key(
                APP,
                "APIResponseTime",
                "CustomerId=customer_456,Endpoint=/api/v1/batch",
            ),
            (ms, dist(&[300.0], &[1.0], 300.0, 300.0, 300.0)),
        ),
        (
            key(
                BUSINESS,
                "CustomerActivity",
                "ActivityType=analysis,CustomerId=customer_123",
            ),
            (count, json!(4.0)),
        ),
        (
            key(BUSINESS, "Revenue", "CustomerId=customer_123"),
            (None, json!(49.5)),
        ),
        (
            key(BUSINESS, "Usage", "CustomerId=customer_123"),
            (count, json!(12.0)),
        ),
    ])
}

/// The self-metric `name` of one exporter, summed over its other labels.
fn exporter_metric(c: &Collector, name: &str, exporter: &str, extra: &[&str]) -> f64 {
    let exporter = format!("exporter=\"{exporter}\"");
    let mut labels = vec![exporter.as_str()];
    labels.extend_from_slice(extra);
    c.metric(name, &labels)
}

struct Run {
    manifest: Value,
    /// `/metrics` once every accepted item was settled.
    metrics: BTreeMap<&'static str, f64>,
    /// Every EMF data point read back, with its unit and value (repeated ones repeated).
    points: Vec<(Key, Option<String>, Value)>,
    /// Messages per log group, and each group's retention.
    groups: BTreeMap<String, (Option<i64>, Vec<String>)>,
    service: String,
}

/// Runs the script's workload `rounds` times through a collector with `awsemf_options`.
fn run(protocol: &str, temporality: &str, rounds: u32, awsemf_options: &str) -> Run {
    use_test_credentials();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let moto = Moto::start();
    let moto_url = moto.url();
    let mut c = Collector::start(|ports, _| config(ports, &moto_url, awsemf_options));
    let endpoint = match protocol {
        "grpc" => c.ports.grpc_url(),
        _ => c.ports.http_url(),
    };
    let service = format!("python-seed-{protocol}-{temporality}");
    let out = python_client("send_seed_cloudwatch.py", protocol, &endpoint, &service)
        .args([
            "--temporality",
            temporality,
            "--rounds",
            &rounds.to_string(),
            "--views",
        ])
        .output()
        .expect("run send_seed_cloudwatch.py");
    assert!(
        out.status.success(),
        "send_seed_cloudwatch.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout");
    let logs_sent = manifest["logs"].as_array().map_or(0, Vec::len) as f64;
    let points_sent = (expected().len() as u32 * rounds) as f64;

    // Every accepted item settled: sent, withheld (a cumulative baseline) or failed.
    eventually(
        "every metric point and log record settled",
        Duration::from_secs(60),
        || {
            let settled = |exporter: &str| {
                [
                    "aurastream_exporter_sent_items_total",
                    "aurastream_exporter_withheld_items_total",
                    "aurastream_exporter_failed_items_total",
                ]
                .iter()
                .map(|m| exporter_metric(&c, m, exporter, &[]))
                .sum::<f64>()
            };
            settled("awsemf") >= points_sent && settled("awscloudwatchlogs") >= logs_sent
        },
    );
    let mut metrics = BTreeMap::new();
    for (key, name, pipeline) in [
        (
            "metrics accepted",
            "aurastream_pipeline_accepted_items_total",
            "metrics",
        ),
        (
            "logs accepted",
            "aurastream_pipeline_accepted_items_total",
            "logs",
        ),
    ] {
        metrics.insert(key, c.metric(name, &[&format!("pipeline=\"{pipeline}\"")]));
    }
    for (key, name, exporter) in [
        ("emf sent", "aurastream_exporter_sent_items_total", "awsemf"),
        (
            "emf withheld",
            "aurastream_exporter_withheld_items_total",
            "awsemf",
        ),
        (
            "emf failed",
            "aurastream_exporter_failed_items_total",
            "awsemf",
        ),
        (
            "logs sent",
            "aurastream_exporter_sent_items_total",
            "awscloudwatchlogs",
        ),
        (
            "logs withheld",
            "aurastream_exporter_withheld_items_total",
            "awscloudwatchlogs",
        ),
        (
            "logs failed",
            "aurastream_exporter_failed_items_total",
            "awscloudwatchlogs",
        ),
    ] {
        metrics.insert(key, exporter_metric(&c, name, exporter, &[]));
    }
    metrics.insert(
        "emf baselines",
        exporter_metric(
            &c,
            "aurastream_exporter_withheld_items_total",
            "awsemf",
            &["reason=\"initial_cumulative_point\""],
        ),
    );
    assert_eq!(c.stop(), 0, "clean exit on SIGTERM:\n{}", c.stderr());

    let (points, groups) = rt.block_on(async {
        let emf_group = format!("/aws/aurastream/metrics/{service}");
        let points: Vec<_> = moto
            .group_messages(&emf_group)
            .await
            .iter()
            .flat_map(|m| emf_points(m))
            .collect();
        let mut groups = BTreeMap::new();
        for (group, retention) in moto.log_groups().await {
            let messages = moto.group_messages(&group).await;
            groups.insert(group, (retention, messages));
        }
        (points, groups)
    });
    drop(moto);
    Run {
        manifest,
        metrics,
        points,
        groups,
        service,
    }
}

/// The EMF data points read back are exactly the expected ones, each once.
fn check_metrics(run: &Run) {
    let mut seen: BTreeMap<Key, (Option<String>, Value)> = BTreeMap::new();
    for (key, unit, value) in &run.points {
        let previous = seen.insert(key.clone(), (unit.clone(), value.clone()));
        assert!(previous.is_none(), "{key:?} arrived more than once");
    }
    let want = expected();
    let missing: Vec<&Key> = want.keys().filter(|k| !seen.contains_key(*k)).collect();
    let unexpected: Vec<&Key> = seen.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing: {missing:#?}\nunexpected (a wrong name, namespace or dimension?): {unexpected:#?}"
    );
    for (key, (unit, value)) in &want {
        let (got_unit, got) = &seen[key];
        assert_eq!(got_unit.as_deref(), *unit, "unit of {key:?}");
        assert!(same(got, value), "{key:?}: got {got}, want {value}");
    }
}

/// Every log event in its category's group exactly once, with its JSON fields at the top
/// level; every group with the guide's retention; nothing else written.
fn check_logs(run: &Run) {
    let group_of = |category: &Value| match category.as_str() {
        Some(c) => CATEGORIES
            .iter()
            .find(|(name, _, _)| *name == c)
            .map(|(_, group, _)| group.to_string())
            .unwrap_or_else(|| panic!("the script used category {c}, which the guide lacks")),
        None => UNCATEGORIZED_GROUP.to_string(),
    };
    let sent = run.manifest["logs"]
        .as_array()
        .expect("logs in the manifest");
    assert_eq!(
        sent.len(),
        7,
        "one event per category, two application ones, one without"
    );
    let mut want: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in sent {
        want.entry(group_of(&entry[0]))
            .or_default()
            .push(entry[1].clone());
    }
    for (group, bodies) in &want {
        let (_, messages) = run
            .groups
            .get(group)
            .unwrap_or_else(|| panic!("nothing was written to {group}: {:?}", run.groups.keys()));
        let got: Vec<Value> = messages
            .iter()
            .map(|m| {
                serde_json::from_str(m).unwrap_or_else(|e| panic!("{group}: not JSON ({e}): {m}"))
            })
            .collect();
        assert_eq!(got.len(), bodies.len(), "{group}: {messages:#?}");
        for body in bodies {
            let n = got.iter().filter(|g| *g == body).count();
            assert_eq!(
                n, 1,
                "{group}: {body} must be there once, fields at the top level: {got:#?}"
            );
        }
    }
    // Logs Insights' `filter response_time > 1000` works: a top-level number.
    let performance = &run.groups["/aws/aurastream/performance"].1;
    assert!(performance.iter().any(|m| {
        serde_json::from_str::<Value>(m).is_ok_and(|v| v["response_time"].as_i64() == Some(1500))
    }));

    let mut retention: BTreeMap<String, i64> = CATEGORIES
        .iter()
        .map(|(_, group, days)| (group.to_string(), *days))
        .collect();
    retention.insert(UNCATEGORIZED_GROUP.to_string(), UNCATEGORIZED_RETENTION);
    retention.insert(
        format!("/aws/aurastream/metrics/{}", run.service),
        EMF_RETENTION,
    );
    let got: BTreeMap<String, i64> = run
        .groups
        .iter()
        .map(|(g, (days, _))| (g.clone(), days.unwrap_or(-1)))
        .collect();
    assert_eq!(
        got, retention,
        "log groups and their retention (-1 = never expire)"
    );
}

/// The names the Python SDK exported: Views kept the sentiment names' case, the rest went
/// out lower-cased (so the collector-side respelling is what made them right).
fn check_exported_names(run: &Run) {
    let mut want: Vec<String> = [
        "SentimentAnalysisCount",
        "SentimentConfidence",
        "ProcessingTime",
    ]
    .iter()
    .map(|n| n.to_string())
    .chain(RESPELLED_BY_THE_COLLECTOR.iter().map(|n| n.to_lowercase()))
    .collect();
    want.sort();
    let got: Vec<String> = run.manifest["metric_names"]
        .as_array()
        .expect("metric_names")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn python_delta_metrics_and_structured_logs_arrive_in_cloudwatch_as_the_guide_names_them() {
    let run = run("grpc", "delta", 1, EXACT_SETS);
    check_exported_names(&run);
    check_metrics(&run);
    check_logs(&run);
    let points = expected().len() as f64;
    let m = &run.metrics;
    assert_eq!(m["metrics accepted"], points, "{m:?}");
    assert_eq!(
        (m["emf sent"], m["emf withheld"], m["emf failed"]),
        (points, 0.0, 0.0),
        "delta points are all sent: {m:?}"
    );
    assert_eq!(
        (m["logs accepted"], m["logs sent"], m["logs failed"]),
        (7.0, 7.0, 0.0),
        "{m:?}"
    );
}

/// Cumulative temporality (the Python SDK's default), two exports, with `initial_value:
/// drop`: the first point of each series is withheld as the delta baseline (counted, not a
/// failure), the second arrives as the round's delta, so CloudWatch holds exactly one
/// round's values. (The default, `auto`, keeps these first points: see
/// `python_default_config_delivers_every_sample_and_the_dashboards_metrics_without_dimensions`.)
#[test]
fn python_cumulative_metrics_arrive_as_deltas_with_baselines_withheld_not_failed() {
    let run = run(
        "http",
        "cumulative",
        2,
        &format!("{EXACT_SETS}\n    initial_value: drop"),
    );
    check_exported_names(&run);
    check_metrics(&run);
    check_logs(&run);
    let series = expected().len() as f64;
    let m = &run.metrics;
    assert_eq!(m["metrics accepted"], 2.0 * series, "{m:?}");
    assert_eq!(m["emf baselines"], series, "one baseline per series: {m:?}");
    assert_eq!(
        (m["emf sent"], m["emf withheld"], m["emf failed"]),
        (series, series, 0.0),
        "{m:?}"
    );
    assert_eq!(
        m["emf sent"] + m["emf withheld"] + m["emf failed"],
        m["metrics accepted"],
        "every point accounted for: {m:?}"
    );
}

/// The default configuration (only `metric_descriptors` for the Python SDK's lower-cased
/// names), cumulative temporality (the SDK's default), two rounds:
///
/// - every data point of every round arrives: each series read back from moto adds up to
///   twice its one-round value (histogram `Count`s equal the samples recorded), because
///   `initial_value: auto` keeps the first point of a series that began after the
///   collector started;
/// - `ZeroAndSingleDimensionRollup` (the default, as in ADOT) gives every metric a set
///   without dimensions, which the guide's dashboards (`AuraStream/Application` /
///   `SentimentAnalysisCount`, `CacheHitRate`, `ProcessingTime`; `AuraStream/Business` /
///   `CustomerActivity`, `Revenue`, `Usage`) and its `CacheHitRate` alarm address, holding
///   the total over all series.
#[test]
fn python_default_config_delivers_every_sample_and_the_dashboards_metrics_without_dimensions() {
    const ROUNDS: f64 = 2.0;
    let run = run("grpc", "cumulative", ROUNDS as u32, "");
    check_exported_names(&run);
    let series = expected().len() as f64;
    let m = &run.metrics;
    assert_eq!(m["metrics accepted"], ROUNDS * series, "{m:?}");
    assert_eq!(
        (m["emf sent"], m["emf withheld"], m["emf failed"]),
        (ROUNDS * series, 0.0, 0.0),
        "first points of series that began after the collector are sent: {m:?}"
    );
    let mut by_key: BTreeMap<Key, Vec<Value>> = BTreeMap::new();
    for (key, _, value) in &run.points {
        by_key.entry(key.clone()).or_default().push(value.clone());
    }
    // One round's total of a metric: the sum of its single values, the count and sum of its
    // distributions.
    let total = |values: &[&Value]| {
        let c = combine(values.iter().copied());
        (c.sum, c.count)
    };
    let want = expected();
    let metrics: BTreeSet<(String, String)> =
        want.keys().map(|k| (k.0.clone(), k.1.clone())).collect();
    for (key, (_, want)) in &want {
        let got = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} is missing"));
        let (want_sum, want_count) = total(&[want]);
        let (got_sum, got_count) = total(&got.iter().collect::<Vec<_>>());
        assert!(
            close(got_sum, ROUNDS * want_sum) && close(got_count, ROUNDS * want_count),
            "{key:?}: every round's samples must arrive: got sum {got_sum} count {got_count} \
             from {got:?}, want {ROUNDS} x (sum {want_sum}, count {want_count})"
        );
    }
    for (namespace, name) in &metrics {
        let one_round: Vec<&Value> = want
            .iter()
            .filter(|(k, _)| &k.0 == namespace && &k.1 == name)
            .map(|(_, (_, v))| v)
            .collect();
        let (want_sum, want_count) = total(&one_round);
        let key = (namespace.clone(), name.clone(), String::new());
        let got = by_key.get(&key).unwrap_or_else(|| {
            panic!("{namespace} / {name} without dimensions (dashboards read it) is missing")
        });
        let (got_sum, got_count) = total(&got.iter().collect::<Vec<_>>());
        assert!(
            close(got_sum, ROUNDS * want_sum) && close(got_count, ROUNDS * want_count),
            "{key:?}: the total over all series: got sum {got_sum} count {got_count}, \
             want {ROUNDS} x (sum {want_sum}, count {want_count})"
        );
    }
    for (namespace, name) in [
        (APP, "SentimentAnalysisCount"),
        (APP, "CacheHitRate"),
        (APP, "ProcessingTime"),
        (BUSINESS, "CustomerActivity"),
        (BUSINESS, "Revenue"),
        (BUSINESS, "Usage"),
    ] {
        assert!(
            metrics.contains(&(namespace.to_string(), name.to_string())),
            "{namespace} / {name}: a dashboard metric the workload must cover"
        );
    }
}
