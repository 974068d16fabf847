//! Reading back what the file exporter wrote: OTLP/JSON requests flattened into items.

use std::collections::BTreeMap;

use serde_json::Value;

/// A span as found in an OTLP/JSON line, with its resource's service name.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub service: String,
    pub scope: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub kind: i64,
    pub attributes: BTreeMap<String, Value>,
    pub events: Vec<String>,
    pub status_code: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    pub service: String,
    pub metric: String,
    pub unit: String,
    /// `gauge`, `sum`, `histogram`, `exponentialHistogram` or `summary`.
    pub kind: String,
    pub point: Value,
    pub attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub service: String,
    pub body: Value,
    pub severity_text: String,
    pub trace_id: String,
    pub span_id: String,
    pub attributes: BTreeMap<String, Value>,
}

/// The plain value of an OTLP/JSON `AnyValue` (`{"stringValue": "x"}` => `"x"`; int64 as
/// strings become numbers).
pub fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    if let Some(s) = obj.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = obj.get("intValue") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
            other => other.clone(),
        };
    }
    if let Some(d) = obj.get("doubleValue") {
        return d.clone();
    }
    if let Some(b) = obj.get("boolValue") {
        return b.clone();
    }
    if let Some(a) = obj.get("arrayValue") {
        return Value::Array(
            a["values"]
                .as_array()
                .map(|vs| vs.iter().map(any_value).collect())
                .unwrap_or_default(),
        );
    }
    if let Some(kv) = obj.get("kvlistValue") {
        return Value::Object(attributes(&kv["values"]).into_iter().collect());
    }
    Value::Null
}

pub fn attributes(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), any_value(&kv["value"]))))
                .collect()
        })
        .unwrap_or_default()
}

fn service_of(resource: &Value) -> String {
    attributes(&resource["resource"]["attributes"])
        .get("service.name")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn items<'a>(
    lines: &'a [Value],
    top: &str,
    scopes: &str,
    leaf: &str,
) -> Vec<(&'a Value, &'a Value, &'a Value)> {
    let mut out = Vec::new();
    for line in lines {
        for r in line[top].as_array().into_iter().flatten() {
            for s in r[scopes].as_array().into_iter().flatten() {
                for item in s[leaf].as_array().into_iter().flatten() {
                    out.push((r, s, item));
                }
            }
        }
    }
    out
}

pub fn spans(lines: &[Value]) -> Vec<SpanRecord> {
    items(lines, "resourceSpans", "scopeSpans", "spans")
        .into_iter()
        .map(|(r, s, span)| SpanRecord {
            service: service_of(r),
            scope: s["scope"]["name"].as_str().unwrap_or_default().to_string(),
            name: span["name"].as_str().unwrap_or_default().to_string(),
            trace_id: span["traceId"].as_str().unwrap_or_default().to_string(),
            span_id: span["spanId"].as_str().unwrap_or_default().to_string(),
            parent_span_id: span["parentSpanId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: span["kind"].as_i64().unwrap_or_default(),
            attributes: attributes(&span["attributes"]),
            events: span["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect(),
            status_code: span["status"]["code"].as_i64().unwrap_or_default(),
        })
        .collect()
}

pub fn points(lines: &[Value]) -> Vec<PointRecord> {
    let mut out = Vec::new();
    for (r, _, metric) in items(lines, "resourceMetrics", "scopeMetrics", "metrics") {
        for kind in [
            "gauge",
            "sum",
            "histogram",
            "exponentialHistogram",
            "summary",
        ] {
            for p in metric[kind]["dataPoints"].as_array().into_iter().flatten() {
                out.push(PointRecord {
                    service: service_of(r),
                    metric: metric["name"].as_str().unwrap_or_default().to_string(),
                    unit: metric["unit"].as_str().unwrap_or_default().to_string(),
                    kind: kind.to_string(),
                    point: p.clone(),
                    attributes: attributes(&p["attributes"]),
                });
            }
        }
    }
    out
}

pub fn logs(lines: &[Value]) -> Vec<LogRecord> {
    items(lines, "resourceLogs", "scopeLogs", "logRecords")
        .into_iter()
        .map(|(r, _, l)| LogRecord {
            service: service_of(r),
            body: any_value(&l["body"]),
            severity_text: l["severityText"].as_str().unwrap_or_default().to_string(),
            trace_id: l["traceId"].as_str().unwrap_or_default().to_string(),
            span_id: l["spanId"].as_str().unwrap_or_default().to_string(),
            attributes: attributes(&l["attributes"]),
        })
        .collect()
}

/// A number from a data point (`asDouble`, or `asInt` possibly as a string).
pub fn number(point: &Value) -> Option<f64> {
    if let Some(d) = point["asDouble"].as_f64() {
        return Some(d);
    }
    match &point["asInt"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}
