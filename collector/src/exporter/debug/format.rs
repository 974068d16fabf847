//! Human-readable renderings of OTLP batches.

use std::fmt::Write;

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::metrics::metric::Data;
use aurastream_proto::otlp::metrics::number_data_point;
use aurastream_proto::otlp::trace::span::SpanKind;

use crate::model::SignalData;
use crate::model::ids::hex;
use crate::output::otlp_json::to_otlp_json;

pub fn summary(batch: &SignalData) -> String {
    let resources = match batch {
        SignalData::Traces(r) => r.len(),
        SignalData::Metrics(r) => r.len(),
        SignalData::Logs(r) => r.len(),
    };
    format!(
        "{}: {} resources, {} {}\n",
        batch.signal(),
        resources,
        batch.item_count(),
        batch.signal().item_noun()
    )
}

pub fn lines(batch: &SignalData) -> String {
    let mut out = String::new();
    match batch {
        SignalData::Traces(rs) => {
            for r in rs {
                let service = service_name(r.resource.as_ref().map(|r| &r.attributes[..]));
                for s in r.scope_spans.iter().flat_map(|s| &s.spans) {
                    let kind = SpanKind::try_from(s.kind)
                        .map(|k| {
                            k.as_str_name()
                                .trim_start_matches("SPAN_KIND_")
                                .to_lowercase()
                        })
                        .unwrap_or_else(|_| s.kind.to_string());
                    let millis =
                        s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6;
                    let status = s.status.as_ref().map_or(0, |st| st.code);
                    let _ = writeln!(
                        out,
                        "span {:?} service={service} trace_id={} span_id={} parent_id={} kind={kind} \
                         status={status} duration={millis:.3}ms{}",
                        s.name,
                        hex(&s.trace_id),
                        hex(&s.span_id),
                        hex(&s.parent_span_id),
                        attrs(&s.attributes)
                    );
                }
            }
        }
        SignalData::Metrics(rm) => {
            for r in rm {
                let service = service_name(r.resource.as_ref().map(|r| &r.attributes[..]));
                for m in r.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    metric_lines(&mut out, &service, m);
                }
            }
        }
        SignalData::Logs(rl) => {
            for r in rl {
                let service = service_name(r.resource.as_ref().map(|r| &r.attributes[..]));
                for l in r.scope_logs.iter().flat_map(|s| &s.log_records) {
                    let _ = writeln!(
                        out,
                        "log service={service} severity={} trace_id={} span_id={} body={}{}",
                        if l.severity_text.is_empty() {
                            l.severity_number.to_string()
                        } else {
                            l.severity_text.clone()
                        },
                        hex(&l.trace_id),
                        hex(&l.span_id),
                        l.body.as_ref().map(value).unwrap_or_default(),
                        attrs(&l.attributes)
                    );
                }
            }
        }
    }
    out
}

pub fn detailed(batch: &SignalData) -> String {
    let json = to_otlp_json(batch).unwrap_or_default();
    let pretty = serde_json::from_slice::<serde_json::Value>(&json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    format!("{}\n{pretty}\n", summary(batch).trim_end())
}

fn metric_lines(out: &mut String, service: &str, m: &aurastream_proto::otlp::metrics::Metric) {
    let unit = &m.unit;
    match &m.data {
        Some(Data::Gauge(g)) => {
            for p in &g.data_points {
                let _ = writeln!(
                    out,
                    "metric {:?} gauge service={service} unit={unit} value={}{}",
                    m.name,
                    number(&p.value),
                    attrs(&p.attributes)
                );
            }
        }
        Some(Data::Sum(s)) => {
            for p in &s.data_points {
                let _ = writeln!(
                    out,
                    "metric {:?} sum service={service} unit={unit} value={}{}",
                    m.name,
                    number(&p.value),
                    attrs(&p.attributes)
                );
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                let _ = writeln!(
                    out,
                    "metric {:?} histogram service={service} unit={unit} count={} sum={}{}",
                    m.name,
                    p.count,
                    p.sum.unwrap_or(0.0),
                    attrs(&p.attributes)
                );
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                let _ = writeln!(
                    out,
                    "metric {:?} exponential_histogram service={service} unit={unit} count={} sum={}{}",
                    m.name,
                    p.count,
                    p.sum.unwrap_or(0.0),
                    attrs(&p.attributes)
                );
            }
        }
        Some(Data::Summary(s)) => {
            for p in &s.data_points {
                let _ = writeln!(
                    out,
                    "metric {:?} summary service={service} unit={unit} count={} sum={}{}",
                    m.name,
                    p.count,
                    p.sum,
                    attrs(&p.attributes)
                );
            }
        }
        None => {}
    }
}

fn number(v: &Option<number_data_point::Value>) -> String {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
        Some(number_data_point::Value::AsInt(i)) => i.to_string(),
        None => "none".into(),
    }
}

fn service_name(attrs: Option<&[KeyValue]>) -> String {
    attrs
        .and_then(|a| a.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(value)
        .unwrap_or_else(|| "unknown".into())
}

fn attrs(kvs: &[KeyValue]) -> String {
    let mut out = String::new();
    for kv in kvs {
        let _ = write!(
            out,
            " {}={}",
            kv.key,
            kv.value.as_ref().map(value).unwrap_or_default()
        );
    }
    out
}

fn value(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => format!("{s:?}"),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(value).collect();
            format!("[{}]", items.join(","))
        }
        Some(Value::KvlistValue(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map(value).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(Value::BytesValue(b)) => format!("0x{}", hex(b)),
        Some(Value::StringValueStrindex(i)) => format!("<string #{i}>"),
        None => String::new(),
    }
}
