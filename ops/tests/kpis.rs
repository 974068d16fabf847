//! `aurastream kpis` against moto seeded with known request counts, latencies and cache
//! lookups: the five KPIs equal hand-computed figures, a KPI outside its target fails the
//! command, a targets file can make it pass, and an empty namespace says what is missing.
//!
//! moto lacks percentile statistics and metric math in GetMetricData; the server used
//! here is moto with those added (tests/support/moto_patched.py).

mod support;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use support::{PatchedMoto, aurastream, json, minutes_ago, stderr, stdout};

const NS: &str = "AuraStream/Application";

fn dims(pairs: &[(&str, &str)]) -> Vec<Dimension> {
    pairs
        .iter()
        .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
        .collect()
}

fn datum(
    name: &str,
    d: &[(&str, &str)],
    at: i64,
    values: &[(f64, f64)],
    unit: StandardUnit,
) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .set_dimensions(Some(dims(d)))
        .timestamp(DateTime::from_secs(at))
        .set_values(Some(values.iter().map(|(v, _)| *v).collect()))
        .set_counts(Some(values.iter().map(|(_, c)| *c).collect()))
        .unit(unit)
        .build()
}

/// Ten minutes of traffic on /analyze: 597 OK and 3 5xx responses a minute (also
/// recorded per customer, which must not be counted again), 1,000 latencies of which 15
/// are 1,500 ms, and 700 cache hits against 300 misses. Counts go in as one value per
/// minute (as an EMF document carries them); latencies as values with counts, so the
/// percentile sees every sample.
async fn seed(endpoint: &str) {
    let cw = aws_sdk_cloudwatch::Client::new(&support::sdk_config(endpoint).await);
    let mut data = Vec::new();
    for m in 0..10 {
        let at = minutes_ago(20 - m);
        let count = StandardUnit::Count;
        data.push(datum(
            "APIRequestCount",
            &[("Endpoint", "/analyze"), ("StatusCode", "200")],
            at,
            &[(597.0, 1.0)],
            count.clone(),
        ));
        data.push(datum(
            "APIRequestCount",
            &[("Endpoint", "/analyze"), ("StatusCode", "500")],
            at,
            &[(3.0, 1.0)],
            count.clone(),
        ));
        for customer in ["c1", "c2", "c3"] {
            data.push(datum(
                "APIRequestCount",
                &[
                    ("Endpoint", "/analyze"),
                    ("CustomerId", customer),
                    ("StatusCode", "200"),
                ],
                at,
                &[(199.0, 1.0)],
                count.clone(),
            ));
            data.push(datum(
                "APIRequestCount",
                &[
                    ("Endpoint", "/analyze"),
                    ("CustomerId", customer),
                    ("StatusCode", "500"),
                ],
                at,
                &[(1.0, 1.0)],
                count.clone(),
            ));
        }
        data.push(datum(
            "CacheHitCount",
            &[],
            at,
            &[(70.0, 1.0)],
            count.clone(),
        ));
        data.push(datum(
            "CacheMissCount",
            &[],
            at,
            &[(30.0, 1.0)],
            count.clone(),
        ));
        if m < 5 {
            data.push(datum(
                "APIResponseTime",
                &[("Endpoint", "/analyze")],
                at,
                &[(120.0, 197.0), (1500.0, 3.0)],
                StandardUnit::Milliseconds,
            ));
            data.push(datum(
                "APIResponseTime",
                &[("Endpoint", "/health")],
                at,
                &[(5.0, 20.0)],
                StandardUnit::Milliseconds,
            ));
        }
    }
    for chunk in data.chunks(20) {
        cw.put_metric_data()
            .namespace(NS)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("PutMetricData");
    }
}

fn kpi<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["kpis"]
        .as_array()
        .and_then(|a| a.iter().find(|k| k["kpi"] == name))
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[test]
fn kpis_equal_the_seeded_figures_and_a_miss_fails_the_command() {
    let moto = PatchedMoto::start();
    aurastream_e2e::test_runtime().block_on(seed(&moto.url()));

    let out = aurastream(&moto.url(), &["kpis", "--since", "1h", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missed KPI exits 1: {}",
        stderr(&out)
    );
    let report = json(&out);
    // 6,000 requests (5,970 OK + 30 5xx) in the hour: the per-customer series, which
    // count the same requests, are not added again.
    let expect = [
        ("availability", 99.5, "missed"),
        ("error_rate", 0.5, "met"),
        ("throughput", 6000.0 / 3600.0, "missed"),
        ("latency_p99", 1500.0, "missed"),
        ("cache_hit_rate", 70.0, "met"),
    ];
    for (name, value, status) in expect {
        let k = kpi(&report, name);
        let got = k["value"].as_f64().unwrap_or(f64::NAN);
        assert!(close(got, value), "{name}: {got} != {value}: {k}");
        assert_eq!(k["status"], status, "{name}: {k}");
    }
    assert_eq!(
        kpi(&report, "availability")["detail"],
        "30 5xx of 6,000 requests"
    );
    assert_eq!(
        kpi(&report, "latency_p99")["detail"],
        "worst of 2 series: Endpoint=/analyze (1500 ms)"
    );
    // The sparkline has one point per seeded minute: 99.5 % each.
    let series: Vec<f64> = kpi(&report, "availability")["series"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    assert_eq!(series, vec![99.5; 10]);

    // The table says the same, with a trend and the failing KPIs named.
    let out = aurastream(&moto.url(), &["kpis", "--since", "1h"]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(table.contains("latency_p99"), "{table}");
    assert!(table.contains("1500 ms"), "{table}");
    assert!(table.contains("▄▄▄▄▄"), "{table}");
    assert!(
        table.contains("Not within target: availability, latency_p99, throughput."),
        "{table}"
    );

    // Targets from a file: all met, exit 0.
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = dir.path().join("targets.yaml");
    std::fs::write(
        &targets,
        "availability: {target: 99.5}\nlatency_p99: {target: 2000}\nthroughput: {target: 1}\n",
    )
    .expect("write targets");
    let out = aurastream(
        &moto.url(),
        &[
            "kpis",
            "--targets",
            &targets.display().to_string(),
            "--format",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        json(&out)["kpis"]
            .as_array()
            .is_some_and(|a| a.iter().all(|k| k["status"] == "met"))
    );
}

#[test]
fn an_empty_window_names_the_missing_metric() {
    let moto = PatchedMoto::start();
    let out = aurastream(&moto.url(), &["kpis", "--since", "1h"]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(
        table.contains(
            "no data for APIRequestCount (AuraStream/Application) in the last hour: is the \
             collector exporting EMF to this account and region?"
        ),
        "{table}"
    );
    assert!(table.contains("NO DATA"), "{table}");
}

#[test]
fn missing_credentials_and_unreachable_endpoints_are_explained() {
    let out = std::process::Command::new(aurastream_e2e::workspace_bin("aurastream"))
        .args([
            "kpis",
            "--region",
            "us-east-1",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("run aurastream");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no AWS credentials found"),
        "{}",
        stderr(&out)
    );

    let out = aurastream("http://127.0.0.1:9", &["kpis"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the AWS endpoint for cloudwatch:ListMetrics"),
        "{}",
        stderr(&out)
    );
}
