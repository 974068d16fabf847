//! OTLP/JSON lines: one export request per line, as the `file` and `debug` exporters write.
//! Traces and logs are written by hand ([`writer`]), metrics through opentelemetry-proto's
//! serde derives.

use serde::Serialize;

use aurastream_proto::otlp::metrics::metric::Data;
use aurastream_proto::otlp::metrics::{
    Metric, NumberDataPoint, ResourceMetrics, number_data_point,
};

use crate::model::SignalData;

mod writer;

/// A metrics line, `{"resourceMetrics":[...]}`, through the serde derives without copying.
#[derive(Serialize)]
struct MetricsLine<'a> {
    #[serde(rename = "resourceMetrics")]
    resource_metrics: &'a [ResourceMetrics],
}

/// Serializes a batch as one OTLP/JSON export request (`{"resourceSpans":[...]}` etc.).
pub fn to_otlp_json(batch: &SignalData) -> Result<Vec<u8>, serde_json::Error> {
    let resource_metrics = match batch {
        SignalData::Traces(r) => {
            let mut out = Vec::with_capacity(json_capacity(r.len()));
            writer::traces(&mut out, r);
            return Ok(out);
        }
        SignalData::Logs(r) => {
            let mut out = Vec::with_capacity(json_capacity(r.len()));
            writer::logs(&mut out, r);
            return Ok(out);
        }
        SignalData::Metrics(r) => r,
    };
    let line = MetricsLine { resource_metrics };
    if has_non_finite(resource_metrics) {
        let mut value = serde_json::to_value(line)?;
        restore_non_finite(&mut value, resource_metrics);
        return serde_json::to_vec(&value);
    }
    serde_json::to_vec(&line)
}

/// A first guess at a line's size, so small batches do not grow their buffer many times.
fn json_capacity(resources: usize) -> usize {
    4096 * resources.max(1)
}

fn number_points(m: &Metric) -> Option<(&'static str, &[NumberDataPoint])> {
    match &m.data {
        Some(Data::Gauge(g)) => Some(("gauge", &g.data_points)),
        Some(Data::Sum(s)) => Some(("sum", &s.data_points)),
        _ => None,
    }
}

fn non_finite(p: &NumberDataPoint) -> Option<&'static str> {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) if d.is_nan() => Some("NaN"),
        Some(number_data_point::Value::AsDouble(d)) if d == f64::INFINITY => Some("Infinity"),
        Some(number_data_point::Value::AsDouble(d)) if d == f64::NEG_INFINITY => Some("-Infinity"),
        _ => None,
    }
}

fn has_non_finite(r: &[ResourceMetrics]) -> bool {
    r.iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter_map(number_points)
        .any(|(_, points)| points.iter().any(|p| non_finite(p).is_some()))
}

/// serde_json has no NaN or infinities and writes `null`; OTLP/JSON (the protobuf JSON
/// mapping) writes them as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. Rare, so it is
/// fixed on the JSON tree only for batches that hold such values.
fn restore_non_finite(value: &mut serde_json::Value, data: &[ResourceMetrics]) {
    let Some(resources) = value["resourceMetrics"].as_array_mut() else {
        return;
    };
    for (rv, r) in resources.iter_mut().zip(data) {
        let Some(scopes) = rv["scopeMetrics"].as_array_mut() else {
            continue;
        };
        for (sv, s) in scopes.iter_mut().zip(&r.scope_metrics) {
            let Some(metrics) = sv["metrics"].as_array_mut() else {
                continue;
            };
            for (mv, m) in metrics.iter_mut().zip(&s.metrics) {
                let Some((kind, points)) = number_points(m) else {
                    continue;
                };
                let Some(pvs) = mv[kind]["dataPoints"].as_array_mut() else {
                    continue;
                };
                for (pv, p) in pvs.iter_mut().zip(points) {
                    if let Some(text) = non_finite(p) {
                        pv["asDouble"] = serde_json::Value::String(text.into());
                    }
                }
            }
        }
    }
}
