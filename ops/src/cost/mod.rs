//! `aurastream cost`: an estimate of the month's CloudWatch and X-Ray bill for what the
//! collector ships, from `ListMetrics`, `DescribeLogGroups` (+ `AWS/Logs IncomingBytes`)
//! and two readings of the collector's `/metrics`.

pub mod estimate;
pub mod prices;
pub mod prometheus;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use crate::aws::{Clients, classify};
use crate::cloudwatch::{dims_of, fetch};
use crate::table::{Align, Table, thousands};
use estimate::{CustomMetric, Estimate, Inputs, LogGroup};
use prices::Prices;
use prometheus::Shipped;

const DAY: i64 = 86_400;

pub struct CostArgs {
    pub collector: Option<String>,
    pub days: f64,
    pub sample: Duration,
    pub baseline: Option<PathBuf>,
    pub prices: Option<PathBuf>,
    pub scan_factor: f64,
    pub cardinality_warn: usize,
}

pub async fn collect(clients: &Clients, args: &CostArgs) -> Result<Estimate> {
    let prices = Prices::load(args.prices.as_deref())?;
    let shipped = match &args.collector {
        Some(url) => Some(measure(url, args.sample, args.baseline.as_deref()).await?),
        None => None,
    };
    let metrics = custom_metrics(clients).await?;
    let log_groups = log_groups(clients).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let inputs = Inputs {
        days: args.days,
        now_ms,
        metrics,
        log_groups,
        shipped,
        scan_factor: args.scan_factor,
        cardinality_warn: args.cardinality_warn,
    };
    Ok(estimate::estimate(&inputs, &prices))
}

/// What the collector shipped between two readings of `/metrics`: a saved one
/// (`--baseline FILE`, taken at the file's modification time) and now, or two readings
/// `sample` apart.
async fn measure(
    url: &str,
    sample: Duration,
    baseline: Option<&std::path::Path>,
) -> Result<Shipped> {
    let metrics_url = format!(
        "{}/metrics",
        url.trim_end_matches('/').trim_end_matches("/metrics")
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let read = || async {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| {
                format!(
                    "cannot read {metrics_url}: is the collector running with health_check there?"
                )
            })?
            .text()
            .await
            .with_context(|| format!("reading {metrics_url}"))?;
        anyhow::Ok(prometheus::parse(&text))
    };
    let (before, seconds, after) = match baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading baseline {}", path.display()))?;
            let taken = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .with_context(|| format!("modification time of {}", path.display()))?;
            let after = read().await?;
            let seconds = SystemTime::now()
                .duration_since(taken)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            (prometheus::parse(&text), seconds, after)
        }
        None => {
            eprintln!(
                "reading {metrics_url} twice, {} apart, to measure what the collector ships \
                 (--sample; or --baseline FILE with a saved reading)",
                humantime::format_duration(sample)
            );
            let before = read().await?;
            let t = Instant::now();
            tokio::time::sleep(sample).await;
            let after = read().await?;
            (before, t.elapsed().as_secs_f64(), after)
        }
    };
    Ok(prometheus::shipped(&before, &after, seconds)?)
}

/// Every metric outside the free `AWS/` namespaces (`ListMetrics`, all pages).
async fn custom_metrics(clients: &Clients) -> Result<Vec<CustomMetric>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .cloudwatch
            .list_metrics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:ListMetrics", e))?;
        for m in page.metrics() {
            let ns = m.namespace().unwrap_or_default();
            if ns.starts_with("AWS/") {
                continue;
            }
            out.push(CustomMetric {
                namespace: ns.to_string(),
                name: m.metric_name().unwrap_or_default().to_string(),
                dimensions: dims_of(m.dimensions()),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Every log group with its stored bytes, retention and age, and the bytes it took in
/// over the last day (`AWS/Logs IncomingBytes`, 500 groups per `GetMetricData` call).
async fn log_groups(clients: &Clients) -> Result<Vec<LogGroup>> {
    let mut groups = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .logs
            .describe_log_groups()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("logs:DescribeLogGroups", e))?;
        for g in page.log_groups() {
            groups.push(LogGroup {
                name: g.log_group_name().unwrap_or_default().to_string(),
                stored_bytes: g.stored_bytes().unwrap_or(0) as f64,
                retention_days: g.retention_in_days(),
                created_ms: g.creation_time().unwrap_or(0),
                incoming_bytes_last_day: None,
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let end = (now / 60 + 1) * 60;
    for chunk in groups.chunks_mut(500) {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, g)| {
                MetricDataQuery::builder()
                    .id(format!("g{i}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/Logs")
                                    .metric_name("IncomingBytes")
                                    .dimensions(
                                        Dimension::builder()
                                            .name("LogGroupName")
                                            .value(&g.name)
                                            .build(),
                                    )
                                    .build(),
                            )
                            .period(DAY as i32)
                            .stat("Sum")
                            .build(),
                    )
                    .build()
            })
            .collect();
        let answers = fetch(clients, queries, end - DAY, end).await?;
        for (i, g) in chunk.iter_mut().enumerate() {
            g.incoming_bytes_last_day = answers
                .get(&format!("g{i}"))
                .filter(|p| !p.is_empty())
                .map(|p| p.iter().map(|(_, v)| v).sum());
        }
    }
    Ok(groups)
}

pub fn render(e: &Estimate) -> String {
    let mut out = format!(
        "Estimated CloudWatch and X-Ray cost for {} days ({} list prices as of {}, before \
         the Free Tier)\n\n",
        e.days, e.prices.region, e.prices.as_of
    );
    let mut t = Table::new(&[
        ("USD", Align::Right),
        ("SERVICE", Align::Left),
        ("ITEM", Align::Left),
        ("QUANTITY", Align::Right),
        ("BASIS", Align::Left),
    ]);
    for l in &e.lines {
        t.row(vec![
            format!("{:.2}", l.usd),
            l.service.into(),
            l.item.clone(),
            if l.quantity >= 100.0 {
                format!("{} {}", thousands(l.quantity), l.unit)
            } else {
                format!("{:.3} {}", l.quantity, l.unit)
            },
            l.basis.clone(),
        ]);
    }
    t.row(vec![
        format!("{:.2}", e.total_usd),
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    out.push_str(&t.render());
    for w in &e.warnings {
        out.push_str(&format!(
            "\nwarning: dimension {} has {} distinct values; {} custom metrics exist only \
             because of it (${:.2} of the estimate). Drop it from metric_declarations (keep \
             it in the log documents, where it is searchable for free).\n",
            w.dimension, w.distinct_values, w.metrics_due, w.usd
        ));
    }
    for n in &e.notes {
        out.push_str(&format!("\nnote: {n}\n"));
    }
    out
}
