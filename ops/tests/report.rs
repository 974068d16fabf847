//! `aurastream report --html` against moto seeded with KPIs data and a slow trace, then
//! opened in headless Chromium (Debian's `chromium`, installed by scripts/test.sh): the
//! page the browser built holds the KPI table, one SVG chart per KPI, the bottleneck and
//! the cost estimate. moto lacks percentiles and metric math (see
//! tests/support/moto_patched.py).

mod support;

use std::path::Path;
use std::process::Command;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use serde_json::json;
use support::{PatchedMoto, aurastream, minutes_ago, now_secs, stderr, stdout};

const SLOW: &str = "1-6750a000-0000000000000000000000b1";

async fn seed(endpoint: &str) {
    let config = support::sdk_config(endpoint).await;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let dim = |k: &str, v: &str| Dimension::builder().name(k).value(v).build();
    let mut data = Vec::new();
    for m in 0..5 {
        let at = DateTime::from_secs(minutes_ago(10 - m));
        let point = |name: &str, dims: Vec<Dimension>, value: f64| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims))
                .timestamp(at)
                .value(value)
                .build()
        };
        data.push(point(
            "APIRequestCount",
            vec![dim("Endpoint", "/analyze"), dim("StatusCode", "200")],
            100.0 - m as f64,
        ));
        data.push(point(
            "APIRequestCount",
            vec![dim("Endpoint", "/analyze"), dim("StatusCode", "503")],
            m as f64,
        ));
        data.push(point(
            "APIResponseTime",
            vec![dim("Endpoint", "/analyze")],
            200.0 + 100.0 * m as f64,
        ));
        data.push(point("CacheHitCount", vec![], 6.0));
        data.push(point("CacheMissCount", vec![], 4.0));
    }
    cw.put_metric_data()
        .namespace("AuraStream/Application")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");
    let t0 = (now_secs() - 120) as f64;
    let doc = json!({"name": "sentiment-api", "id": "b000000000000001", "trace_id": SLOW,
        "start_time": t0, "end_time": t0 + 1.8,
        "subsegments": [{"name": "comprehend_api", "id": "b000000000000002",
                         "start_time": t0 + 0.1, "end_time": t0 + 1.7}]});
    aws_sdk_xray::Client::new(&config)
        .put_trace_segments()
        .trace_segment_documents(doc.to_string())
        .send()
        .await
        .expect("PutTraceSegments");
}

fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "chromium not found: scripts/test.sh installs Debian's chromium package"
    );
    "chromium"
}

fn headless(page: &Path, extra: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile dir");
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium")
}

#[test]
fn the_html_report_renders_in_a_browser_with_charts_traces_and_cost() {
    let moto = PatchedMoto::start();
    aurastream_e2e::test_runtime().block_on(seed(&moto.url()));
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("report.html");
    let out = aurastream(
        &moto.url(),
        &[
            "report",
            "--html",
            &page.display().to_string(),
            "--since",
            "1h",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("wrote"));
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "self-contained"
    );

    // What the browser made of it.
    let dom = headless(&page, &["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("AuraStream operations report"), "{dom}");
    // 490 OK and 10 5xx responses: 98 % availability, missed; 60 % cache hits, met.
    assert!(
        dom.contains("<td>availability</td><td class=\"num\">98 %</td>"),
        "{dom}"
    );
    assert!(dom.contains("<td class=\"missed\">missed</td>"), "{dom}");
    assert!(
        dom.contains("<td>cache_hit_rate</td><td class=\"num\">60 %</td>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<svg").count(), 5, "one chart per KPI");
    assert_eq!(
        dom.matches("class=\"series\"").count(),
        5,
        "every KPI has points"
    );
    assert!(dom.contains("slow_segment"), "{dom}");
    assert!(
        dom.contains("1800 ms &gt; 1000 ms; slowest inside: comprehend_api 1600 ms"),
        "{dom}"
    );
    assert!(dom.contains(&format!("Trace {SLOW}")), "{dom}");
    assert!(dom.contains("custom metrics"), "{dom}");

    // And it paints: a screenshot of the page.
    let shot = dir.path().join("report.png");
    let out = headless(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
