//! `aurastream alarms apply` and `alarms verify` against moto: the project template's
//! alarms are created as intended (read back with DescribeAlarms), drift is named field
//! by field, and an alarm on a metric nobody emits is reported as the defect it is.

mod support;

use aurastream_e2e::aws::Moto;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, Statistic};
use support::{aurastream, json, minutes_ago, stderr, stdout};

const PREFIX: &str = "AuraStream-dev-aurastream-api-";
const CRITICAL: &str = "arn:aws:sns:us-east-1:123456789012:critical";

fn verdicts(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["name"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches(PREFIX)
                    .to_string(),
                a["verdict"].as_str().unwrap_or_default().to_string(),
                a["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .collect()
}

/// One data point for every alarm metric of the template except the collector's refused
/// items (a quiet metric: it exists only after a refusal); an alarm edited by hand; an
/// alarm on a metric nothing emits.
async fn seed(endpoint: &str) {
    let cw = aws_sdk_cloudwatch::Client::new(&support::sdk_config(endpoint).await);
    let dim = |k: &str, v: &str| Dimension::builder().name(k).value(v).build();
    let collector = vec![
        dim("Environment", "dev"),
        dim("ServiceName", "aurastream-api"),
    ];
    let points = [
        (
            "AWS/ApiGateway",
            "5XXError",
            vec![dim("ApiName", "aurastream-api")],
        ),
        (
            "AWS/ApiGateway",
            "Latency",
            vec![dim("ApiName", "aurastream-api")],
        ),
        (
            "AWS/Lambda",
            "Duration",
            vec![dim("FunctionName", "aurastream-sync-handler")],
        ),
        ("AuraStream/Application", "CacheHitRate", vec![]),
        (
            "AuraStream/Collector",
            "aurastream_exporter_failed_items_total",
            collector.clone(),
        ),
        (
            "AuraStream/Collector",
            "aurastream_pipeline_dropped_items_total",
            collector.clone(),
        ),
    ];
    for (ns, name, dims) in points {
        cw.put_metric_data()
            .namespace(ns)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(name)
                    .set_dimensions(Some(dims))
                    .timestamp(DateTime::from_secs(minutes_ago(30)))
                    .value(1.0)
                    .build(),
            )
            .send()
            .await
            .expect("PutMetricData");
    }
    cw.put_metric_alarm()
        .alarm_name(format!("{PREFIX}High-Latency"))
        .namespace("AWS/ApiGateway")
        .metric_name("Latency")
        .dimensions(dim("ApiName", "aurastream-api"))
        .extended_statistic("p99")
        .period(300)
        .evaluation_periods(3)
        .threshold(3000.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .alarm_actions(CRITICAL)
        .ok_actions(CRITICAL)
        .send()
        .await
        .expect("PutMetricAlarm");
    cw.put_metric_alarm()
        .alarm_name("AuraStream-Orders-Stuck")
        .namespace("AuraStream/Business")
        .metric_name("OrdersStuck")
        .statistic(Statistic::Sum)
        .period(300)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

#[test]
fn alarms_are_applied_as_intended_and_drift_and_dead_metrics_are_reported() {
    let moto = Moto::start();

    // Nothing deployed: every alarm is missing.
    let out = aurastream(&moto.url(), &["alarms", "verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let missing = verdicts(&json(&out));
    assert_eq!(missing.len(), 7, "{missing:?}");
    assert!(
        missing.iter().all(|(_, v, _)| v == "missing"),
        "{missing:?}"
    );

    // apply creates them; the warning topic has no ARN, so it says so.
    let out = aurastream(
        &moto.url(),
        &[
            "alarms",
            "apply",
            "--topic-arn",
            &format!("CriticalAlertsTopic={CRITICAL}"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(" created")).count(),
        7,
        "{text}"
    );
    assert!(
        text.contains("warning: WarningAlertsTopic is not known"),
        "{text}"
    );

    // Read back what moto holds.
    let rt = aurastream_e2e::test_runtime();
    let alarms = rt.block_on(async {
        let cw = aws_sdk_cloudwatch::Client::new(&support::sdk_config(&moto.url()).await);
        cw.describe_alarms()
            .alarm_name_prefix(PREFIX)
            .send()
            .await
            .expect("DescribeAlarms")
    });
    let by_name = |suffix: &str| {
        alarms
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(&format!("{PREFIX}{suffix}")))
            .unwrap_or_else(|| panic!("{suffix} not created"))
            .clone()
    };
    let errors = by_name("High-Error-Rate");
    assert_eq!(errors.threshold(), Some(10.0));
    assert_eq!(errors.evaluation_periods(), Some(2));
    assert_eq!(errors.statistic(), Some(&Statistic::Sum));
    assert_eq!(errors.alarm_actions(), [CRITICAL.to_string()]);
    assert_eq!(by_name("High-Latency").extended_statistic(), Some("p99"));
    let cache = by_name("Low-Cache-Hit-Rate");
    assert_eq!(cache.threshold(), Some(50.0));
    assert_eq!(cache.metrics().len(), 2);
    assert_eq!(cache.metrics()[1].expression(), Some("hits * 100"));
    assert!(by_name("High-Lambda-Duration").alarm_actions().is_empty());

    // Data for all but one alarm metric, a hand-edited threshold, an extra dead alarm.
    rt.block_on(seed(&moto.url()));
    let out = aurastream(&moto.url(), &["alarms", "verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let mut found = verdicts(&json(&out));
    found.sort();
    let expected = vec![
        (
            "AuraStream-Orders-Stuck".to_string(),
            "no_data".to_string(),
            "its metric AuraStream/Business/OrdersStuck has never been emitted (not in \
             ListMetrics): the alarm can never fire"
                .to_string(),
        ),
        ("Collector-Backpressure".into(), "ok".into(), String::new()),
        ("Collector-Dropped-Items".into(), "ok".into(), String::new()),
        (
            "Collector-Export-Failures".into(),
            "ok".into(),
            String::new(),
        ),
        ("High-Error-Rate".into(), "ok".into(), String::new()),
        ("High-Lambda-Duration".into(), "ok".into(), String::new()),
        (
            "High-Latency".into(),
            "drift".into(),
            "threshold 3000, intended 2000".into(),
        ),
        ("Low-Cache-Hit-Rate".into(), "ok".into(), String::new()),
    ];
    assert_eq!(found, expected);

    // Declared noisy, the refused-items counter's absence is a defect again.
    let out = aurastream(
        &moto.url(),
        &[
            "alarms",
            "verify",
            "--quiet-metric",
            "none",
            "--format",
            "json",
        ],
    );
    let backpressure: Vec<_> = verdicts(&json(&out))
        .into_iter()
        .filter(|(n, _, _)| n == "Collector-Backpressure")
        .collect();
    assert_eq!(
        backpressure,
        vec![(
            "Collector-Backpressure".to_string(),
            "no_data".to_string(),
            "its metric AuraStream/Collector/aurastream_receiver_refused_items_total\
             {Environment=dev,ServiceName=aurastream-api} has never been emitted (not in \
             ListMetrics): the alarm can never fire"
                .to_string()
        )]
    );

    // apply again, without topic ARNs: only the drifted alarm changes, and no alarm
    // loses the actions it has.
    let out = aurastream(&moto.url(), &["alarms", "apply", "--format", "json"]);
    let applied = json(&out);
    let outcomes: Vec<(String, String)> = applied["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["name"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches(PREFIX)
                    .to_string(),
                a["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(_, o)| o != "unchanged")
        .collect();
    assert_eq!(
        outcomes,
        vec![("High-Latency".to_string(), "updated".to_string())]
    );
}
