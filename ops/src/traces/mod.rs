//! `aurastream traces` (bottlenecks across recent traces) and `aurastream trace ID` (one
//! trace as a waterfall, with its log lines), from X-Ray's `GetTraceSummaries` and
//! `BatchGetTraces` and CloudWatch Logs' `FilterLogEvents`.

pub mod bottlenecks;
pub mod document;
pub mod waterfall;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use aws_sdk_xray::primitives::DateTime;
use serde::Serialize;

use crate::aws::{Clients, classify};
use crate::table::{Align, Table};
use crate::window::{millis_text, timestamp_text};
use bottlenecks::{Bottleneck, Rules};
use document::Node;

/// Summaries read at most: each page of GetTraceSummaries is billed as traces scanned,
/// and a busy service's hour holds far more traces than anyone reads.
const MAX_SUMMARIES: usize = 10_000;

/// BatchGetTraces takes at most 5 ids per call.
const BATCH: usize = 5;

/// The guide's log groups (its categories), searched for a trace's log lines unless the
/// user names others.
pub const GUIDE_LOG_GROUPS: [&str; 5] = [
    "/aws/aurastream/application",
    "/aws/aurastream/performance",
    "/aws/aurastream/business",
    "/aws/aurastream/security",
    "/aws/aurastream/audit",
];

#[derive(Debug, Clone, Serialize)]
pub struct TraceRow {
    pub id: String,
    pub start: f64,
    pub duration_ms: f64,
    pub segments: usize,
    pub fault: bool,
    pub error: bool,
    pub throttle: bool,
}

#[derive(Debug, Serialize)]
pub struct TracesReport {
    pub start: i64,
    pub end: i64,
    pub filter: Option<String>,
    /// Traces X-Ray summarised in the window.
    pub summarised: usize,
    /// Whether reading stopped at [`MAX_SUMMARIES`] (the slowest may be among the rest).
    pub truncated: bool,
    /// The slowest of them, fetched whole and analysed.
    pub analysed: Vec<TraceRow>,
    pub bottlenecks: Vec<Bottleneck>,
}

pub struct TracesArgs {
    pub since: Duration,
    pub filter: Option<String>,
    pub limit: usize,
    pub rules: Rules,
}

pub async fn collect(clients: &Clients, args: &TracesArgs) -> Result<TracesReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let (start, end) = (now - args.since.as_secs().max(1) as i64, now);
    let mut summaries = Vec::new();
    let mut token = None;
    loop {
        let page = clients
            .xray
            .get_trace_summaries()
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .set_filter_expression(args.filter.clone())
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("xray:GetTraceSummaries", e))?;
        for s in page.trace_summaries() {
            if let Some(id) = s.id() {
                summaries.push((id.to_string(), s.duration().unwrap_or(0.0)));
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() || summaries.len() >= MAX_SUMMARIES {
            break;
        }
    }
    summaries.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    summaries.dedup_by(|a, b| a.0 == b.0);
    let summarised = summaries.len();
    let truncated = token.is_some();
    let ids: Vec<String> = summaries
        .into_iter()
        .take(args.limit)
        .map(|(id, _)| id)
        .collect();
    let traces = fetch_traces(clients, &ids).await?;
    let mut analysed = Vec::new();
    let mut found = Vec::new();
    for (id, roots, segments) in &traces {
        found.extend(bottlenecks::find(id, roots, &args.rules));
        analysed.push(row(id, roots, *segments));
    }
    analysed.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    found.sort_by(|a, b| {
        a.rule
            .cmp(&b.rule)
            .then_with(|| b.value.total_cmp(&a.value))
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    Ok(TracesReport {
        start,
        end,
        filter: args.filter.clone(),
        summarised,
        truncated,
        analysed,
        bottlenecks: found,
    })
}

/// (id, assembled tree, segment count) of each trace, `BatchGetTraces` 5 at a time.
async fn fetch_traces(
    clients: &Clients,
    ids: &[String],
) -> Result<Vec<(String, Vec<Node>, usize)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(BATCH) {
        let mut token = None;
        loop {
            let page = clients
                .xray
                .batch_get_traces()
                .set_trace_ids(Some(chunk.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("xray:BatchGetTraces", e))?;
            for t in page.traces() {
                let id = t.id().unwrap_or_default().to_string();
                let mut nodes = Vec::new();
                for s in t.segments() {
                    let Some(doc) = s.document() else { continue };
                    match document::parse(doc) {
                        Ok(n) => nodes.push(n),
                        Err(e) => eprintln!(
                            "warning: trace {id}: segment {} skipped: {e}",
                            s.id().unwrap_or("?")
                        ),
                    }
                }
                let count = nodes.len();
                out.push((id, document::assemble(nodes), count));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

fn row(id: &str, roots: &[Node], segments: usize) -> TraceRow {
    let all: Vec<&Node> = roots
        .iter()
        .flat_map(|r| r.walk())
        .map(|(_, n)| n)
        .collect();
    let start = all
        .iter()
        .map(|n| n.start)
        .min_by(f64::total_cmp)
        .unwrap_or(0.0);
    let end = all
        .iter()
        .map(|n| n.end.unwrap_or(n.start))
        .max_by(f64::total_cmp)
        .unwrap_or(start);
    TraceRow {
        id: id.to_string(),
        start,
        duration_ms: (end - start) * 1000.0,
        segments,
        fault: all.iter().any(|n| n.fault),
        error: all.iter().any(|n| n.error),
        throttle: all.iter().any(|n| n.throttle),
    }
}

pub fn render_traces(report: &TracesReport, rules: &Rules) -> String {
    let faults = report.analysed.iter().filter(|t| t.fault).count();
    let throttled = report.analysed.iter().filter(|t| t.throttle).count();
    let mut out = format!(
        "X-Ray traces {} – {} UTC{}: {} traces, analysed the {} slowest ({} with faults, {} \
         throttled)\n",
        timestamp_text(report.start),
        timestamp_text(report.end),
        report
            .filter
            .as_ref()
            .map(|f| format!(" matching {f}"))
            .unwrap_or_default(),
        report.summarised,
        report.analysed.len(),
        faults,
        throttled
    );
    if report.truncated {
        out.push_str(&format!(
            "(stopped after {MAX_SUMMARIES} summaries: narrow --since or --filter to see all)\n"
        ));
    }
    if report.summarised == 0 {
        out.push_str(
            "\nno traces in this window: is the collector exporting to X-Ray in this account \
             and region (awsxray exporter with output_destination: cloudwatch)?\n",
        );
        return out;
    }
    out.push_str(&format!(
        "\nBottlenecks (segments over {:.0} ms, more than {} subsegments; faults, throttles, \
         errors where they start):\n",
        rules.slow_ms, rules.max_subsegments
    ));
    if report.bottlenecks.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = Table::new(&[
            ("RULE", Align::Left),
            ("TRACE", Align::Left),
            ("SEGMENT", Align::Left),
            ("WHERE", Align::Left),
            ("DETAIL", Align::Left),
        ]);
        for b in &report.bottlenecks {
            t.row(vec![
                b.rule.name().into(),
                b.trace_id.clone(),
                b.segment.clone(),
                b.culprit.clone().unwrap_or_else(|| "-".into()),
                b.detail.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push_str("\nSlowest traces:\n");
    let mut t = Table::new(&[
        ("TRACE", Align::Left),
        ("STARTED", Align::Left),
        ("DURATION", Align::Right),
        ("SEGMENTS", Align::Right),
        ("FLAGS", Align::Left),
    ]);
    for r in report.analysed.iter().take(10) {
        let mut flags = Vec::new();
        if r.fault {
            flags.push("fault");
        }
        if r.throttle {
            flags.push("throttle");
        }
        if r.error {
            flags.push("error");
        }
        t.row(vec![
            r.id.clone(),
            millis_text((r.start * 1000.0) as i64),
            format!("{:.0} ms", r.duration_ms),
            r.segments.to_string(),
            flags.join(","),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("\nOne trace in detail: aurastream trace ID\n");
    out
}

#[derive(Debug, Serialize)]
pub struct LogLine {
    pub group: String,
    pub stream: String,
    pub timestamp: i64,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct TraceDetail {
    pub id: String,
    pub bottlenecks: Vec<Bottleneck>,
    pub waterfall: String,
    pub logs: Vec<LogLine>,
    /// Log groups searched that do not exist in this account and region.
    pub missing_groups: Vec<String>,
}

pub async fn detail(
    clients: &Clients,
    id: &str,
    groups: &[String],
    rules: &Rules,
) -> Result<TraceDetail> {
    let traces = fetch_traces(clients, &[id.to_string()]).await?;
    let Some((_, roots, _)) = traces.into_iter().find(|(t, _, n)| t == id && *n > 0) else {
        anyhow::bail!(
            "trace {id} not found in X-Ray (traces are kept 30 days; check the id, the \
             account and the region)"
        );
    };
    let all: Vec<&Node> = roots
        .iter()
        .flat_map(|r| r.walk())
        .map(|(_, n)| n)
        .collect();
    let start = all
        .iter()
        .map(|n| n.start)
        .min_by(f64::total_cmp)
        .unwrap_or(0.0);
    let end = all
        .iter()
        .map(|n| n.end.unwrap_or(n.start))
        .max_by(f64::total_cmp)
        .unwrap_or(start);
    // Log lines may be written a little before or after the spans they belong to.
    let from = ((start - 300.0) * 1000.0) as i64;
    let to = ((end + 300.0) * 1000.0) as i64;
    let (logs, missing_groups) = trace_logs(clients, id, groups, from, to).await?;
    Ok(TraceDetail {
        id: id.into(),
        bottlenecks: bottlenecks::find(id, &roots, rules),
        waterfall: waterfall::render(&roots),
        logs,
        missing_groups,
    })
}

/// The hex form OTLP and the collector's log records use for an X-Ray trace id
/// (`1-5759e988-bd862e3fe1be46a994272793` → `5759e988bd862e3fe1be46a994272793`).
pub fn otlp_trace_id(xray_id: &str) -> Option<String> {
    let mut parts = xray_id.split('-');
    let (Some("1"), Some(time), Some(rest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let hex = format!("{time}{rest}");
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// `FilterLogEvents` in each group for the trace id in both spellings: the collector
/// writes OTLP's hex `trace_id`; Lambda and X-Ray SDK logs write the X-Ray form.
async fn trace_logs(
    clients: &Clients,
    id: &str,
    groups: &[String],
    from: i64,
    to: i64,
) -> Result<(Vec<LogLine>, Vec<String>)> {
    let mut terms = vec![id.to_string()];
    terms.extend(otlp_trace_id(id));
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    'groups: for group in groups {
        for term in &terms {
            let mut token = None;
            loop {
                let result = clients
                    .logs
                    .filter_log_events()
                    .log_group_name(group)
                    .filter_pattern(format!("\"{term}\""))
                    .start_time(from)
                    .end_time(to)
                    .set_next_token(token)
                    .send()
                    .await;
                let page = match result {
                    Ok(p) => p,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_not_found_exception()) =>
                    {
                        missing.push(group.clone());
                        continue 'groups;
                    }
                    Err(e) => return Err(classify("logs:FilterLogEvents", e).into()),
                };
                for ev in page.events() {
                    let key = (group.clone(), ev.event_id().unwrap_or_default().to_string());
                    if seen.insert(key) {
                        lines.push(LogLine {
                            group: group.clone(),
                            stream: ev.log_stream_name().unwrap_or_default().into(),
                            timestamp: ev.timestamp().unwrap_or_default(),
                            message: ev.message().unwrap_or_default().trim_end().into(),
                        });
                    }
                }
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
    }
    lines.sort_by_key(|l| l.timestamp);
    Ok((lines, missing))
}

pub fn render_detail(d: &TraceDetail, groups: &[String]) -> String {
    let mut out = format!("Trace {}\n\n", d.id);
    out.push_str(&d.waterfall);
    out.push_str("marks: ! fault (5xx)  T throttled (429)  E error (4xx)  … in progress\n");
    if !d.bottlenecks.is_empty() {
        out.push_str("\nBottlenecks:\n");
        for b in &d.bottlenecks {
            out.push_str(&format!(
                "  {:<15} {}{}: {}\n",
                b.rule.name(),
                b.segment,
                b.culprit
                    .as_ref()
                    .map(|c| format!(" → {c}"))
                    .unwrap_or_default(),
                b.detail
            ));
        }
    }
    let searched: Vec<&String> = groups
        .iter()
        .filter(|g| !d.missing_groups.contains(g))
        .collect();
    out.push_str(&format!(
        "\nLog lines with this trace id ({} of {} log groups exist):\n",
        searched.len(),
        groups.len()
    ));
    if d.logs.is_empty() {
        out.push_str("  none\n");
    }
    for l in &d.logs {
        out.push_str(&format!(
            "  {} {} {}\n",
            millis_text(l.timestamp),
            l.group,
            l.message
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_ids_have_an_otlp_hex_form() {
        assert_eq!(
            otlp_trace_id("1-5759e988-bd862e3fe1be46a994272793").as_deref(),
            Some("5759e988bd862e3fe1be46a994272793")
        );
        assert_eq!(otlp_trace_id("5759e988bd862e3fe1be46a994272793"), None);
        assert_eq!(otlp_trace_id("1-xyz-abc"), None);
    }
}
