//! `aurastream report --html FILE`: the KPIs with their charts, the worst traces and the
//! cost estimate in one self-contained page (inline CSS and SVG, no scripts, no external
//! files) to attach to an incident.

pub mod svg;

use std::fmt::Write as _;

use crate::cost::estimate::Estimate;
use crate::kpis::KpiReport;
use crate::kpis::evaluate::Status;
use crate::kpis::targets::format_number;
use crate::traces::{TraceDetail, TracesReport};
use crate::window::timestamp_text;

pub struct Report<'a> {
    pub generated: String,
    pub region: &'a str,
    pub kpis: &'a KpiReport,
    pub traces: &'a TracesReport,
    pub worst: &'a [TraceDetail],
    pub cost: &'a Estimate,
}

/// Text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right}.met{color:#1e7b34;font-weight:600}.missed,.no_data{color:#b3261e;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0}figcaption{font-size:13px;font-weight:600}\
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}.warn{color:#8a5300}";

pub fn html(r: &Report) -> String {
    let k = r.kpis;
    let window = k.window();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>AuraStream \
         report {}</title><style>{STYLE}</style></head><body>",
        escape(&r.generated)
    );
    let _ = write!(
        h,
        "<h1>AuraStream operations report</h1><p>Generated {} UTC for region {}; KPIs from {} \
         over {}.</p>",
        escape(&r.generated),
        escape(r.region),
        escape(&k.namespace),
        escape(&window.range_text())
    );

    h.push_str("<h2 id=\"kpis\">KPIs against the monitoring guide's targets</h2>");
    h.push_str(
        "<table><tr><th>KPI</th><th>value</th><th>target</th><th>status</th><th>detail</th></tr>",
    );
    for x in &k.kpis {
        let status = match x.status {
            Status::Met => "met",
            Status::Missed => "missed",
            Status::NoData => "no_data",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"{status}\">{}</td><td>{}</td></tr>",
            x.kpi.name(),
            x.value
                .map(|v| format!("{} {}", format_number(v), x.unit))
                .unwrap_or_else(|| "-".into()),
            escape(&x.kpi.target_text(x.target)),
            status.replace('_', " "),
            escape(&x.detail)
        );
    }
    h.push_str("</table><div class=\"charts\">");
    let start = timestamp_text(window.start);
    let end = timestamp_text(window.end);
    for x in &k.kpis {
        let title = format!("{} ({})", x.kpi.name(), x.unit);
        let _ = write!(
            h,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            escape(&title),
            svg::line_chart(&svg::Chart {
                title: &title,
                unit: x.unit,
                points: &x.series,
                target: x.target,
                start_label: &start,
                end_label: &end,
            })
        );
    }
    h.push_str("</div>");

    let t = r.traces;
    let _ = write!(
        h,
        "<h2 id=\"traces\">Traces</h2><p>{} traces between {} and {} UTC; the {} slowest \
         analysed.</p>",
        t.summarised,
        escape(&timestamp_text(t.start)),
        escape(&timestamp_text(t.end)),
        t.analysed.len()
    );
    if t.bottlenecks.is_empty() {
        h.push_str("<p>No bottlenecks.</p>");
    } else {
        h.push_str("<table><tr><th>rule</th><th>trace</th><th>segment</th><th>where</th><th>detail</th></tr>");
        for b in &t.bottlenecks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                b.rule.name(),
                escape(&b.trace_id),
                escape(&b.segment),
                escape(b.culprit.as_deref().unwrap_or("-")),
                escape(&b.detail)
            );
        }
        h.push_str("</table>");
    }
    for d in r.worst {
        let _ = write!(
            h,
            "<h3>Trace {}</h3><pre>{}</pre>",
            escape(&d.id),
            escape(&d.waterfall)
        );
    }

    let c = r.cost;
    let _ = write!(
        h,
        "<h2 id=\"cost\">Cost estimate</h2><p>{} days at {} list prices as of {}, before the \
         Free Tier.</p><table><tr><th>USD</th><th>service</th><th>item</th><th>basis</th></tr>",
        c.days,
        escape(&c.prices.region),
        escape(&c.prices.as_of)
    );
    for l in &c.lines {
        let _ = write!(
            h,
            "<tr><td class=\"num\">{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.usd,
            l.service,
            escape(&l.item),
            escape(&l.basis)
        );
    }
    let _ = write!(
        h,
        "<tr><th class=\"num\">{:.2}</th><th colspan=\"3\">total</th></tr></table>",
        c.total_usd
    );
    for w in &c.warnings {
        let _ = write!(
            h,
            "<p class=\"warn\">Dimension {} has {} distinct values: {} custom metrics (${:.2}) \
             exist only because of it.</p>",
            escape(&w.dimension),
            w.distinct_values,
            w.metrics_due,
            w.usd
        );
    }
    for n in &c.notes {
        let _ = write!(h, "<p>{}</p>", escape(n));
    }
    h.push_str("</body></html>\n");
    h
}
