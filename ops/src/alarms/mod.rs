//! `aurastream alarms verify` (every intended alarm exists as intended, and every alarm's
//! metric has data) and `aurastream alarms apply` (create or update them with
//! `PutMetricAlarm`, for users who do not deploy the CloudFormation template).

pub mod drift;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, Statistic,
};
use serde::Serialize;

use crate::aws::{Clients, classify};
use crate::cloudwatch::{dimensions, dims_of, fetch};
use crate::table::{Align, Table};
use spec::{Action, AlarmSpec, MathQuery, MetricRef};

/// Metrics that exist only once something went wrong: the collector creates these
/// counter series on the first failed, dropped or refused item, so "never emitted" is
/// their healthy state, not a dead alarm.
pub const QUIET_METRICS: [&str; 3] = [
    "aurastream_exporter_failed_items_total",
    "aurastream_pipeline_dropped_items_total",
    "aurastream_receiver_refused_items_total",
];

/// DescribeAlarms takes at most 100 names per call.
const NAMES_PER_CALL: usize = 100;
const DAY: i64 = 86_400;

/// The intended alarms: the template's, or the built-in project template's.
pub fn intended(
    template: Option<&Path>,
    params: &BTreeMap<String, String>,
    region: &str,
) -> Result<(String, Vec<AlarmSpec>)> {
    let (name, text) = match template {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        ),
        None => (
            format!("{} (built in)", spec::BUILT_IN_NAME),
            spec::BUILT_IN_TEMPLATE.to_string(),
        ),
    };
    let specs = spec::from_template(&name, &text, params, region)?;
    if specs.is_empty() {
        anyhow::bail!("{name} defines no AWS::CloudWatch::Alarm");
    }
    Ok((name, specs))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Missing,
    Drift,
    NoData,
}

#[derive(Debug, Serialize)]
pub struct AlarmRow {
    pub name: String,
    /// Whether the template defines it (others were found by name prefix).
    pub intended: bool,
    /// CloudWatch's state (OK, ALARM, INSUFFICIENT_DATA), if the alarm exists.
    pub state: Option<String>,
    pub verdict: Verdict,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub template: String,
    pub alarms: Vec<AlarmRow>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.alarms.iter().all(|a| a.verdict == Verdict::Ok)
    }
}

pub async fn verify(
    clients: &Clients,
    template: String,
    specs: &[AlarmSpec],
    prefix: &str,
    quiet: &BTreeSet<String>,
) -> Result<VerifyReport> {
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut deployed = describe_named(clients, &names).await?;
    let others = describe_prefix(clients, prefix).await?;
    for (name, alarm) in others {
        deployed.entry(name).or_insert(alarm);
    }
    // Every metric any alarm reads, checked once.
    let mut metrics: BTreeSet<MetricRef> = BTreeSet::new();
    for s in specs {
        metrics.extend(s.metrics_read());
    }
    for (d, _) in deployed.values() {
        metrics.extend(d.metrics_read());
    }
    let mut data = metric_data(clients, &metrics).await?;
    data.quiet = quiet.clone();

    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for s in specs {
        seen.insert(s.name.clone());
        let row = match deployed.get(&s.name) {
            None => AlarmRow {
                name: s.name.clone(),
                intended: true,
                state: None,
                verdict: Verdict::Missing,
                problems: vec!["does not exist (aurastream alarms apply creates it)".into()],
            },
            Some((d, state)) => {
                let mut problems = drift::differences(s, d);
                let verdict = if !problems.is_empty() {
                    Verdict::Drift
                } else {
                    Verdict::Ok
                };
                let no_data = data_problems(d, &data);
                let verdict = if verdict == Verdict::Ok && !no_data.is_empty() {
                    Verdict::NoData
                } else {
                    verdict
                };
                problems.extend(no_data);
                AlarmRow {
                    name: s.name.clone(),
                    intended: true,
                    state: Some(state.clone()),
                    verdict,
                    problems,
                }
            }
        };
        rows.push(row);
    }
    for (name, (d, state)) in &deployed {
        if seen.contains(name) {
            continue;
        }
        let problems = data_problems(d, &data);
        rows.push(AlarmRow {
            name: name.clone(),
            intended: false,
            state: Some(state.clone()),
            verdict: if problems.is_empty() {
                Verdict::Ok
            } else {
                Verdict::NoData
            },
            problems,
        });
    }
    Ok(VerifyReport {
        template,
        alarms: rows,
    })
}

/// Whether each metric exists (`ListMetrics`) and how many samples it got in the last
/// day (`GetMetricData` SampleCount, one call for all).
#[derive(Debug, Default)]
struct MetricData {
    listed: BTreeSet<MetricRef>,
    samples: BTreeMap<MetricRef, f64>,
    /// Metric names whose absence is expected (see [`QUIET_METRICS`]).
    quiet: BTreeSet<String>,
}

async fn metric_data(clients: &Clients, metrics: &BTreeSet<MetricRef>) -> Result<MetricData> {
    let mut out = MetricData::default();
    for m in metrics {
        let page = clients
            .cloudwatch
            .list_metrics()
            .namespace(&m.namespace)
            .metric_name(&m.name)
            .set_dimensions(Some(
                m.dimensions
                    .iter()
                    .map(|(k, v)| {
                        aws_sdk_cloudwatch::types::DimensionFilter::builder()
                            .name(k)
                            .value(v)
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify("cloudwatch:ListMetrics", e))?;
        // ListMetrics matches metrics that have at least these dimensions; the alarm
        // needs exactly them.
        if page
            .metrics()
            .iter()
            .any(|l| dims_of(l.dimensions()) == m.dimensions)
        {
            out.listed.insert(m.clone());
        }
    }
    let listed: Vec<&MetricRef> = out.listed.iter().collect();
    if listed.is_empty() {
        return Ok(out);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let end = (now / 60 + 1) * 60;
    let queries: Vec<MetricDataQuery> = listed
        .iter()
        .enumerate()
        .map(|(i, m)| {
            MetricDataQuery::builder()
                .id(format!("m{i}"))
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric(m))
                        .period(DAY as i32)
                        .stat("SampleCount")
                        .build(),
                )
                .build()
        })
        .collect();
    let answers = fetch(clients, queries, end - DAY, end).await?;
    for (i, m) in listed.iter().enumerate() {
        let n: f64 = answers
            .get(&format!("m{i}"))
            .map(|p| p.iter().map(|(_, v)| v).sum())
            .unwrap_or(0.0);
        out.samples.insert((*m).clone(), n);
    }
    Ok(out)
}

fn data_problems(alarm: &AlarmSpec, data: &MetricData) -> Vec<String> {
    alarm
        .metrics_read()
        .iter()
        .filter(|m| !data.quiet.contains(&m.name))
        .filter_map(|m| {
            if !data.listed.contains(m) {
                Some(format!(
                    "its metric {m} has never been emitted (not in ListMetrics): the alarm \
                     can never fire"
                ))
            } else if data.samples.get(m).copied().unwrap_or(0.0) <= 0.0 {
                Some(format!("its metric {m} received no data in the last day"))
            } else {
                None
            }
        })
        .collect()
}

fn metric(m: &MetricRef) -> Metric {
    Metric::builder()
        .namespace(&m.namespace)
        .metric_name(&m.name)
        .set_dimensions(Some(dimensions(&m.dimensions)))
        .build()
}

async fn describe_named(
    clients: &Clients,
    names: &[String],
) -> Result<BTreeMap<String, (AlarmSpec, String)>> {
    let mut out = BTreeMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let mut token = None;
        loop {
            let page = clients
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("cloudwatch:DescribeAlarms", e))?;
            for a in page.metric_alarms() {
                let (spec, state) = deployed(a);
                out.insert(spec.name.clone(), (spec, state));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

async fn describe_prefix(
    clients: &Clients,
    prefix: &str,
) -> Result<BTreeMap<String, (AlarmSpec, String)>> {
    let mut out = BTreeMap::new();
    if prefix.is_empty() {
        return Ok(out);
    }
    let mut token = None;
    loop {
        let page = clients
            .cloudwatch
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:DescribeAlarms", e))?;
        for a in page.metric_alarms() {
            let (spec, state) = deployed(a);
            out.insert(spec.name.clone(), (spec, state));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

fn metric_ref(
    namespace: Option<&str>,
    name: Option<&str>,
    dims: &[Dimension],
) -> Option<MetricRef> {
    Some(MetricRef {
        namespace: namespace?.to_string(),
        name: name?.to_string(),
        dimensions: dims_of(dims),
    })
}

/// A described alarm in the comparable shape, with its state.
fn deployed(a: &MetricAlarm) -> (AlarmSpec, String) {
    let spec = AlarmSpec {
        name: a.alarm_name().unwrap_or_default().to_string(),
        description: a.alarm_description().map(str::to_owned),
        metric: metric_ref(a.namespace(), a.metric_name(), a.dimensions()),
        statistic: a.statistic().map(|s| s.as_str().to_string()),
        extended_statistic: a.extended_statistic().map(str::to_owned),
        period: a.period(),
        evaluation_periods: a.evaluation_periods(),
        threshold: a.threshold(),
        comparison: a.comparison_operator().map(|c| c.as_str().to_string()),
        treat_missing_data: a.treat_missing_data().map(str::to_owned),
        metrics: a
            .metrics()
            .iter()
            .map(|q| {
                let stat = q.metric_stat();
                MathQuery {
                    id: q.id().unwrap_or_default().to_string(),
                    expression: q.expression().map(str::to_owned),
                    metric: stat
                        .and_then(|s| s.metric())
                        .and_then(|m| metric_ref(m.namespace(), m.metric_name(), m.dimensions())),
                    period: stat.and_then(|s| s.period()),
                    stat: stat.and_then(|s| s.stat()).map(str::to_owned),
                    return_data: q.return_data(),
                    label: q.label().map(str::to_owned),
                }
            })
            .collect(),
        alarm_actions: a
            .alarm_actions()
            .iter()
            .map(|s| Action::Arn(s.clone()))
            .collect(),
        ok_actions: a
            .ok_actions()
            .iter()
            .map(|s| Action::Arn(s.clone()))
            .collect(),
    };
    let state = a
        .state_value()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "unknown".into());
    (spec, state)
}

pub fn render_verify(r: &VerifyReport) -> String {
    let mut out = format!(
        "Alarms of {} and others found by name prefix\n\n",
        r.template
    );
    let mut t = Table::new(&[
        ("ALARM", Align::Left),
        ("STATE", Align::Left),
        ("VERDICT", Align::Left),
        ("PROBLEMS", Align::Left),
    ]);
    for a in &r.alarms {
        let verdict = match a.verdict {
            Verdict::Ok => "ok",
            Verdict::Missing => "MISSING",
            Verdict::Drift => "DRIFT",
            Verdict::NoData => "NO DATA",
        };
        let name = if a.intended {
            a.name.clone()
        } else {
            format!("{} (not in template)", a.name)
        };
        t.row(vec![
            name,
            a.state.clone().unwrap_or_else(|| "-".into()),
            verdict.into(),
            a.problems.join("; "),
        ]);
    }
    out.push_str(&t.render());
    let bad = r.alarms.iter().filter(|a| a.verdict != Verdict::Ok).count();
    out.push_str(&if bad == 0 {
        "\nEvery alarm exists as intended and its metric has data.\n".to_string()
    } else {
        format!("\n{bad} of {} alarms need attention.\n", r.alarms.len())
    });
    out
}

#[derive(Debug, Serialize)]
pub struct Applied {
    pub name: String,
    /// created, updated, unchanged
    pub outcome: &'static str,
    pub changes: Vec<String>,
}

/// Creates missing alarms and updates drifted ones; `topics` resolves the template's
/// topic resources (`CriticalAlertsTopic=arn:...`).
pub async fn apply(
    clients: &Clients,
    specs: &[AlarmSpec],
    topics: &BTreeMap<String, String>,
) -> Result<(Vec<Applied>, Vec<String>)> {
    let mut warnings = BTreeSet::new();
    // `None` when a topic is unknown: then an existing alarm keeps the actions it has
    // (applying must not strip notifications) and a new one is created without them.
    let resolve = |actions: &[Action], warnings: &mut BTreeSet<String>| -> Option<Vec<Action>> {
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Arn(s) => out.push(Action::Arn(s.clone())),
                Action::Resource(r) => match topics.get(r) {
                    Some(arn) => out.push(Action::Arn(arn.clone())),
                    None => {
                        warnings.insert(format!(
                            "{r} is not known: alarms that notify it keep the actions they \
                             have, or are created without (pass --topic-arn {r}=ARN)"
                        ));
                        return None;
                    }
                },
            }
        }
        Some(out)
    };
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let deployed = describe_named(clients, &names).await?;
    let mut out = Vec::new();
    for s in specs {
        let current = deployed.get(&s.name).map(|(d, _)| d);
        let mut want = s.clone();
        want.alarm_actions = resolve(&s.alarm_actions, &mut warnings)
            .or_else(|| current.map(|d| d.alarm_actions.clone()))
            .unwrap_or_default();
        want.ok_actions = resolve(&s.ok_actions, &mut warnings)
            .or_else(|| current.map(|d| d.ok_actions.clone()))
            .unwrap_or_default();
        let (outcome, changes) = match deployed.get(&s.name) {
            None => ("created", Vec::new()),
            Some((d, _)) => {
                let changes = drift::differences(&want, d);
                if changes.is_empty() {
                    out.push(Applied {
                        name: s.name.clone(),
                        outcome: "unchanged",
                        changes,
                    });
                    continue;
                }
                ("updated", changes)
            }
        };
        put(clients, &want).await?;
        out.push(Applied {
            name: s.name.clone(),
            outcome,
            changes,
        });
    }
    Ok((out, warnings.into_iter().collect()))
}

async fn put(clients: &Clients, s: &AlarmSpec) -> Result<()> {
    let arns = |a: &[Action]| -> Vec<String> {
        a.iter()
            .filter_map(|x| match x {
                Action::Arn(s) => Some(s.clone()),
                Action::Resource(_) => None,
            })
            .collect()
    };
    let mut req = clients
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(&s.name)
        .set_alarm_description(s.description.clone())
        .set_evaluation_periods(s.evaluation_periods)
        .set_threshold(s.threshold)
        .set_comparison_operator(s.comparison.as_deref().map(ComparisonOperator::from))
        .set_treat_missing_data(s.treat_missing_data.clone())
        .set_alarm_actions(Some(arns(&s.alarm_actions)))
        .set_ok_actions(Some(arns(&s.ok_actions)))
        .set_period(s.period)
        .set_statistic(s.statistic.as_deref().map(Statistic::from))
        .set_extended_statistic(s.extended_statistic.clone());
    if let Some(m) = &s.metric {
        req = req
            .namespace(&m.namespace)
            .metric_name(&m.name)
            .set_dimensions(Some(dimensions(&m.dimensions)));
    }
    for q in &s.metrics {
        let mut b = MetricDataQuery::builder()
            .id(&q.id)
            .set_expression(q.expression.clone())
            .set_label(q.label.clone())
            .set_return_data(q.return_data);
        if let Some(m) = &q.metric {
            b = b.metric_stat(
                MetricStat::builder()
                    .metric(metric(m))
                    .set_period(q.period)
                    .set_stat(q.stat.clone())
                    .build(),
            );
        }
        req = req.metrics(b.build());
    }
    req.send()
        .await
        .map_err(|e| classify("cloudwatch:PutMetricAlarm", e))?;
    Ok(())
}

pub fn render_apply(applied: &[Applied], warnings: &[String]) -> String {
    let mut t = Table::new(&[
        ("ALARM", Align::Left),
        ("OUTCOME", Align::Left),
        ("CHANGES", Align::Left),
    ]);
    for a in applied {
        t.row(vec![a.name.clone(), a.outcome.into(), a.changes.join("; ")]);
    }
    let mut out = t.render();
    for w in warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
