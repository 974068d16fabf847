//! Lambda Telemetry API events → OTLP spans, metrics and log records.
//!
//! - `platform.start` + `platform.runtimeDone` → one SERVER span per invocation, in the
//!   function's X-Ray trace when the invocation carries one (`Root=1-…;Parent=…`), so the
//!   span joins the trace the caller started.
//! - `platform.report` → the seed's Lambda metrics (`Duration`, `BilledDuration`,
//!   `MemorySize`, `MaxMemoryUsed`, `InitDuration` on cold starts, `Invocations`,
//!   `Errors`), tagged `aws.emf.namespace` and `FunctionName` for the EMF exporter.
//! - `function` records → log records (the function's stdout/stderr lines).
//!
//! Pure data in, data out: the listener owns the I/O, so every rule here is unit-tested.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aurastream_proto::lambda::{
    PlatformReport, PlatformRuntimeDone, PlatformStart, TelemetryEvent, TraceContext,
};
use aurastream_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use aurastream_proto::otlp::metrics::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use rand::Rng;

use crate::model::SignalData;

/// Invocations whose `platform.start` is remembered while waiting for their
/// `platform.runtimeDone`. Lambda runs one invocation at a time per sandbox, so anything
/// beyond a handful is a lost `runtimeDone`; the bound keeps that from growing memory.
const MAX_OPEN_INVOCATIONS: usize = 64;

const SCOPE_NAME: &str = "aurastream.lambda";

/// What the function is, from the environment Lambda gives every process in the sandbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub region: String,
}

impl FunctionInfo {
    pub fn from_env() -> FunctionInfo {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        FunctionInfo {
            name: var("AWS_LAMBDA_FUNCTION_NAME"),
            version: var("AWS_LAMBDA_FUNCTION_VERSION"),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| var("AWS_DEFAULT_REGION")),
        }
    }
}

/// The OTLP data made from one delivery of events, plus the invocations it saw end.
#[derive(Debug, Default)]
pub struct Translated {
    pub traces: Option<SignalData>,
    pub metrics: Option<SignalData>,
    pub logs: Option<SignalData>,
    /// Request ids of the `platform.runtimeDone` events, in order.
    pub runtime_done: Vec<String>,
}

struct Started {
    start_ns: u64,
    tracing: Option<TraceContext>,
}

pub struct Translator {
    resource: Resource,
    function_name: String,
    namespace: String,
    open: HashMap<String, Started>,
    /// Set once the first invocation has ended: the first one in a sandbox is the cold start.
    warm: bool,
    /// The invocation running now, for log lines that do not name theirs.
    current_request: Option<String>,
}

impl Translator {
    pub fn new(function: &FunctionInfo, namespace: &str) -> Translator {
        let mut attributes = vec![
            kv_str("service.name", &function.name),
            kv_str("faas.name", &function.name),
            kv_str("cloud.provider", "aws"),
            kv_str("cloud.platform", "aws_lambda"),
        ];
        if !function.version.is_empty() {
            attributes.push(kv_str("faas.version", &function.version));
        }
        if !function.region.is_empty() {
            attributes.push(kv_str("cloud.region", &function.region));
        }
        Translator {
            resource: Resource {
                attributes,
                ..Default::default()
            },
            function_name: function.name.clone(),
            namespace: namespace.into(),
            open: HashMap::new(),
            warm: false,
            current_request: None,
        }
    }

    /// Turns one delivery (a JSON array of events) into OTLP data. Events that cannot be
    /// understood are skipped with a debug log: a new Lambda event type must never stop
    /// the extension.
    pub fn translate(&mut self, events: Vec<TelemetryEvent>) -> Translated {
        let mut spans = Vec::new();
        let mut metrics = Vec::new();
        let mut logs = Vec::new();
        let mut runtime_done = Vec::new();
        for event in events {
            let time_ns = parse_time(&event.time);
            match event.kind.as_str() {
                "platform.start" => match serde_json::from_value::<PlatformStart>(event.record) {
                    Ok(start) => self.on_start(start, time_ns),
                    Err(e) => tracing::debug!(error = %e, "unreadable platform.start"),
                },
                "platform.runtimeDone" => {
                    match serde_json::from_value::<PlatformRuntimeDone>(event.record) {
                        Ok(done) => {
                            runtime_done.push(done.request_id.clone());
                            spans.push(self.invocation_span(done, time_ns));
                        }
                        Err(e) => tracing::debug!(error = %e, "unreadable platform.runtimeDone"),
                    }
                }
                "platform.report" => match serde_json::from_value::<PlatformReport>(event.record) {
                    Ok(report) => metrics.extend(self.report_metrics(&report, time_ns)),
                    Err(e) => tracing::debug!(error = %e, "unreadable platform.report"),
                },
                "function" => logs.push(self.log_record(event.record, time_ns)),
                _ => {}
            }
        }
        Translated {
            traces: (!spans.is_empty()).then(|| {
                SignalData::Traces(vec![ResourceSpans {
                    resource: Some(self.resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }])
            }),
            metrics: (!metrics.is_empty()).then(|| {
                SignalData::Metrics(vec![ResourceMetrics {
                    resource: Some(self.resource.clone()),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope()),
                        metrics,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }])
            }),
            logs: (!logs.is_empty()).then(|| {
                SignalData::Logs(vec![ResourceLogs {
                    resource: Some(self.resource.clone()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records: logs,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }])
            }),
            runtime_done,
        }
    }

    fn on_start(&mut self, start: PlatformStart, time_ns: u64) {
        if self.open.len() >= MAX_OPEN_INVOCATIONS {
            tracing::warn!(
                open = self.open.len(),
                "platform.start without platform.runtimeDone piling up; forgetting them"
            );
            self.open.clear();
        }
        self.current_request = Some(start.request_id.clone());
        self.open.insert(
            start.request_id,
            Started {
                start_ns: time_ns,
                tracing: start.tracing,
            },
        );
    }

    fn invocation_span(&mut self, done: PlatformRuntimeDone, end_ns: u64) -> Span {
        let started = self.open.remove(&done.request_id);
        let start_ns = match (&started, &done.metrics) {
            (Some(s), _) => s.start_ns,
            // The start was missed (subscribed late, or lost): the duration says when.
            (None, Some(m)) => end_ns.saturating_sub((m.duration_ms * 1e6) as u64),
            (None, None) => end_ns,
        };
        let header = started
            .and_then(|s| s.tracing)
            .or(done.tracing)
            .map(|t| t.value);
        let xray = header.as_deref().and_then(XrayHeader::parse);
        let mut rng = rand::rng();
        let trace_id = match &xray {
            Some(h) => h.trace_id.to_vec(),
            None => rng.random::<[u8; 16]>().to_vec(),
        };
        let parent_span_id = xray
            .as_ref()
            .and_then(|h| h.parent_id)
            .map(|p| p.to_vec())
            .unwrap_or_default();
        let cold = !self.warm;
        self.warm = true;
        let mut attributes = vec![
            kv_str("faas.invocation_id", &done.request_id),
            KeyValue {
                key: "faas.coldstart".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(cold)),
                }),
                ..Default::default()
            },
            kv_str("faas.trigger", "other"),
        ];
        let status = if done.status == "success" {
            Status::default()
        } else {
            attributes.push(kv_str("aws.lambda.status", &done.status));
            Status {
                code: status::StatusCode::Error as i32,
                message: done.error_type.clone().unwrap_or(done.status.clone()),
            }
        };
        Span {
            trace_id,
            span_id: rng.random::<[u8; 8]>().to_vec(),
            parent_span_id,
            name: self.function_name.clone(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: end_ns.max(start_ns),
            attributes,
            status: Some(status),
            ..Default::default()
        }
    }

    fn report_metrics(&self, report: &PlatformReport, time_ns: u64) -> Vec<Metric> {
        let m = &report.metrics;
        let mut out = vec![
            self.gauge("Duration", "ms", m.duration_ms, time_ns),
            self.gauge("BilledDuration", "ms", m.billed_duration_ms, time_ns),
            self.gauge("MemorySize", "MB", m.memory_size_mb, time_ns),
            self.gauge("MaxMemoryUsed", "MB", m.max_memory_used_mb, time_ns),
        ];
        if let Some(init) = m.init_duration_ms {
            out.push(self.gauge("InitDuration", "ms", init, time_ns));
        }
        out.push(self.count("Invocations", 1, time_ns));
        let failed = u64::from(report.status != "success");
        out.push(self.count("Errors", failed, time_ns));
        out
    }

    fn point_attributes(&self) -> Vec<KeyValue> {
        vec![
            kv_str("aws.emf.namespace", &self.namespace),
            kv_str("FunctionName", &self.function_name),
        ]
    }

    fn gauge(&self, name: &str, unit: &str, value: f64, time_ns: u64) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: self.point_attributes(),
                    time_unix_nano: time_ns,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }
    }

    /// A delta sum of one invocation, so any number of reports add up downstream.
    fn count(&self, name: &str, value: u64, time_ns: u64) -> Metric {
        Metric {
            name: name.into(),
            unit: "Count".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: self.point_attributes(),
                    time_unix_nano: time_ns,
                    value: Some(number_data_point::Value::AsInt(value as i64)),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    /// A `function` record: a line of text, or (with Lambda's JSON log format) an object
    /// whose `message`, `level` and `requestId` are lifted into the log record.
    fn log_record(&self, record: serde_json::Value, time_ns: u64) -> LogRecord {
        let mut request_id = self.current_request.clone();
        let mut severity = (SeverityNumber::Unspecified, String::new());
        let body = match record {
            serde_json::Value::String(line) => any_str(line.trim_end_matches(['\n', '\r'])),
            serde_json::Value::Object(mut fields) => {
                if let Some(serde_json::Value::String(id)) = fields.remove("requestId") {
                    request_id = Some(id);
                }
                if let Some(serde_json::Value::String(level)) = fields.remove("level") {
                    severity = (severity_number(&level), level);
                }
                match fields.remove("message") {
                    Some(serde_json::Value::String(m)) => any_str(&m),
                    Some(other) => json_to_any(other),
                    None => json_to_any(serde_json::Value::Object(fields)),
                }
            }
            other => json_to_any(other),
        };
        let mut attributes = Vec::new();
        if let Some(id) = request_id {
            attributes.push(kv_str("faas.invocation_id", &id));
        }
        LogRecord {
            time_unix_nano: time_ns,
            observed_time_unix_nano: now_ns(),
            severity_number: severity.0 as i32,
            severity_text: severity.1,
            body: Some(body),
            attributes,
            ..Default::default()
        }
    }
}

/// The parts of an X-Ray trace header an OTLP span needs.
#[derive(Debug, PartialEq)]
struct XrayHeader {
    trace_id: [u8; 16],
    parent_id: Option<[u8; 8]>,
}

impl XrayHeader {
    /// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`: the
    /// X-Ray trace id is the OTLP trace id with its epoch part first.
    fn parse(header: &str) -> Option<XrayHeader> {
        let mut trace_id = None;
        let mut parent_id = None;
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Root" => {
                    let mut pieces = value.split('-');
                    let (Some("1"), Some(epoch), Some(random), None) =
                        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
                    else {
                        return None;
                    };
                    if epoch.len() != 8 || random.len() != 24 {
                        return None;
                    }
                    trace_id = Some(hex_bytes::<16>(&format!("{epoch}{random}"))?);
                }
                "Parent" => parent_id = hex_bytes::<8>(value),
                _ => {}
            }
        }
        Some(XrayHeader {
            trace_id: trace_id?,
            parent_id,
        })
    }
}

fn hex_bytes<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != N * 2 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

fn severity_number(level: &str) -> SeverityNumber {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => SeverityNumber::Trace,
        "DEBUG" => SeverityNumber::Debug,
        "INFO" => SeverityNumber::Info,
        "WARN" | "WARNING" => SeverityNumber::Warn,
        "ERROR" => SeverityNumber::Error,
        "FATAL" | "CRITICAL" => SeverityNumber::Fatal,
        _ => SeverityNumber::Unspecified,
    }
}

fn json_to_any(v: serde_json::Value) -> AnyValue {
    use aurastream_proto::otlp::common::{ArrayValue, KeyValueList};
    let value = match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        }),
        serde_json::Value::String(s) => Some(any_value::Value::StringValue(s)),
        serde_json::Value::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(json_to_any).collect(),
        })),
        serde_json::Value::Object(fields) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: fields
                .into_iter()
                .map(|(key, v)| KeyValue {
                    key,
                    value: Some(json_to_any(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

fn any_str(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(any_str(value)),
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// RFC 3339 (`2022-10-12T00:00:15.064Z`) to Unix nanoseconds; "now" if unreadable, so a
/// malformed timestamp costs precision, not the event.
fn parse_time(time: &str) -> u64 {
    humantime::parse_rfc3339_weak(time)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(now_ns, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
