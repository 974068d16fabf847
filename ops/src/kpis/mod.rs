//! `aurastream kpis`: the guide's five KPIs from one `GetMetricData` call, each against
//! its target, as a table with a sparkline per KPI or as JSON.

pub mod evaluate;
pub mod plan;
pub mod targets;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
use serde::Serialize;

use crate::aws::{Clients, classify};
use crate::cloudwatch::{Answers, dimensions, dims_of, fetch};
use crate::sparkline::sparkline;
use crate::table::{Align, Table};
use crate::window::Window;
use evaluate::{KpiResult, Status};
use plan::{Dims, Inputs, Listed, Query, Spec};
use targets::format_number;

/// CloudWatch takes at most 500 queries per `GetMetricData` call.
const MAX_QUERIES: usize = 500;

#[derive(Debug, Clone)]
pub struct KpiArgs {
    pub since: Duration,
    pub namespace: String,
    pub service: Option<String>,
    pub targets: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct KpiReport {
    pub namespace: String,
    pub service: Option<String>,
    pub start: i64,
    pub end: i64,
    pub period: i64,
    pub kpis: Vec<KpiResult>,
}

impl KpiReport {
    pub fn window(&self) -> Window {
        Window {
            start: self.start,
            end: self.end,
            period: self.period,
        }
    }

    pub fn fails(&self) -> bool {
        self.kpis.iter().any(KpiResult::fails)
    }
}

/// The dimensions naming a service: the awsemf exporter writes the resource's
/// `service.name` as a dimension with `resource_to_telemetry_conversion`; services that
/// set their own dimension tend to call it `ServiceName`.
const SERVICE_DIMENSIONS: [&str; 2] = ["service.name", "ServiceName"];

pub async fn collect(clients: &Clients, args: &KpiArgs) -> Result<KpiReport> {
    let targets = targets::load(args.targets.as_deref())?;
    let window = Window::ending_at(SystemTime::now(), args.since);
    let (requests, response_time, hits, misses) = tokio::try_join!(
        list_series(clients, &args.namespace, plan::REQUESTS),
        list_series(clients, &args.namespace, plan::RESPONSE_TIME),
        list_series(clients, &args.namespace, plan::CACHE_HITS),
        list_series(clients, &args.namespace, plan::CACHE_MISSES),
    )?;
    let mut listed = Listed {
        requests,
        response_time,
        hits,
        misses,
    };
    if let Some(service) = &args.service {
        for list in [
            &mut listed.requests,
            &mut listed.response_time,
            &mut listed.hits,
            &mut listed.misses,
        ] {
            list.retain(|d| {
                SERVICE_DIMENSIONS
                    .iter()
                    .any(|k| d.get(*k).is_some_and(|v| v == service))
            });
        }
    }
    let inputs = Inputs::choose(&listed);
    let specs = plan::plan(&inputs, &window);
    if specs.len() > MAX_QUERIES {
        anyhow::bail!(
            "the KPIs need {} series ({} request series), more than the {MAX_QUERIES} one \
             GetMetricData call takes: narrow them with --service",
            specs.len(),
            inputs.requests.len()
        );
    }
    let answers = if specs.is_empty() {
        Answers::new()
    } else {
        get_metric_data(clients, &specs, &window, &args.namespace).await?
    };
    Ok(KpiReport {
        namespace: args.namespace.clone(),
        service: args.service.clone(),
        start: window.start,
        end: window.end,
        period: window.period,
        kpis: evaluate::evaluate(&inputs, &answers, &window, &targets, &args.namespace),
    })
}

/// Every series of one metric (`ListMetrics`, all pages), as dimension maps.
pub async fn list_series(clients: &Clients, namespace: &str, metric: &str) -> Result<Vec<Dims>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .cloudwatch
            .list_metrics()
            .namespace(namespace)
            .metric_name(metric)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:ListMetrics", e))?;
        for m in page.metrics() {
            out.push(dims_of(m.dimensions()));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One `GetMetricData` call (all pages) for `specs` over `window`.
pub async fn get_metric_data(
    clients: &Clients,
    specs: &[Spec],
    window: &Window,
    namespace: &str,
) -> Result<Answers> {
    let queries: Vec<MetricDataQuery> = specs.iter().map(|s| to_query(s, namespace)).collect();
    fetch(clients, queries, window.start, window.end).await
}

fn to_query(spec: &Spec, namespace: &str) -> MetricDataQuery {
    let b = MetricDataQuery::builder()
        .id(&spec.id)
        .label(&spec.label)
        .return_data(spec.return_data);
    match &spec.query {
        Query::Expression(e) => b.expression(e).build(),
        Query::Stat {
            metric,
            dims,
            stat,
            period,
        } => b
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(namespace)
                            .metric_name(*metric)
                            .set_dimensions(Some(dimensions(dims)))
                            .build(),
                    )
                    .period(*period as i32)
                    .stat(*stat)
                    .build(),
            )
            .build(),
    }
}

pub fn render_table(report: &KpiReport) -> String {
    let window = report.window();
    let mut out = format!(
        "KPIs from {}{}, {} ({} points of {} s)\n\n",
        report.namespace,
        report
            .service
            .as_ref()
            .map(|s| format!(" for service {s}"))
            .unwrap_or_default(),
        window.range_text(),
        window.points(),
        window.period
    );
    let mut table = Table::new(&[
        ("KPI", Align::Left),
        ("VALUE", Align::Right),
        ("TARGET", Align::Left),
        ("STATUS", Align::Left),
        ("TREND", Align::Left),
        ("DETAIL", Align::Left),
    ]);
    for k in &report.kpis {
        table.row(vec![
            k.kpi.name().into(),
            k.value
                .map(|v| format!("{} {}", format_number(v), k.unit))
                .unwrap_or_else(|| "-".into()),
            k.kpi.target_text(k.target),
            status_text(k).into(),
            sparkline(&k.series),
            k.detail.clone(),
        ]);
    }
    out.push_str(&table.render());
    let failing: Vec<&str> = report
        .kpis
        .iter()
        .filter(|k| k.fails())
        .map(|k| k.kpi.name())
        .collect();
    out.push('\n');
    if failing.is_empty() {
        out.push_str("All gated KPIs within target.\n");
    } else {
        out.push_str(&format!("Not within target: {}.\n", failing.join(", ")));
    }
    out
}

fn status_text(k: &KpiResult) -> &'static str {
    match (k.status, k.gate) {
        (Status::Met, _) => "ok",
        (Status::Missed, true) => "MISSED",
        (Status::Missed, false) => "missed (not gated)",
        (Status::NoData, true) => "NO DATA",
        (Status::NoData, false) => "no data (not gated)",
    }
}
