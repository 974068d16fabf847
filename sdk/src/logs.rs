//! The seed's structured logs as OTLP log records.
//!
//! Each helper builds the guide's JSON document (same keys, same `event_type` values) and
//! emits it as an OTLP log record whose body is that JSON text, so CloudWatch Logs receives
//! the very line the guide's Logs Insights queries (`filter @message like /api_response/`)
//! expect. The record also carries:
//!
//! * the current trace and span ids (from the current `tracing` span), so a log line opens
//!   its X-Ray trace;
//! * the attribute [`CATEGORY_ATTRIBUTE`] (`log.category`), which the collector's CloudWatch
//!   Logs exporter uses to pick the log group (security and audit logs are kept 7 years,
//!   application logs 30 days, ...).
//!
//! Timestamps are ISO 8601 in UTC with microseconds and a `Z` suffix
//! (`2026-11-27T09:46:12.123456Z`): the guide's Python `utcnow().isoformat()` has the same
//! digits but no zone designator, which leaves readers guessing.

use std::time::SystemTime;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLogger};
use serde::Serialize;

/// The log record attribute that routes a record to its CloudWatch Logs group.
pub const CATEGORY_ATTRIBUTE: &str = "log.category";

/// The guide's log categories (`LOG_CATEGORIES`), each with its own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogCategory {
    /// 30 days; the default for request, response and error logs.
    Application,
    /// 7 years, sensitive: authentication failures and other security events.
    Security,
    /// 7 years, sensitive: who did what.
    Audit,
    /// 90 days: latency and resource observations.
    Performance,
    /// 1 year, sensitive: business events.
    Business,
}

impl LogCategory {
    /// Every category, in the guide's order.
    pub const ALL: [LogCategory; 5] = [
        LogCategory::Security,
        LogCategory::Audit,
        LogCategory::Application,
        LogCategory::Performance,
        LogCategory::Business,
    ];

    /// The CloudWatch Logs group the collector's `awscloudwatchlogs` exporter routes this
    /// category to by default (`/aws/aurastream/<category>`).
    pub fn log_group(self) -> String {
        format!("/aws/aurastream/{}", self.as_str())
    }

    /// The attribute value: `application`, `security`, `audit`, `performance`, `business`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogCategory::Application => "application",
            LogCategory::Security => "security",
            LogCategory::Audit => "audit",
            LogCategory::Performance => "performance",
            LogCategory::Business => "business",
        }
    }
}

/// The guide's `api_request` document.
#[derive(Debug, Serialize)]
pub struct ApiRequestLog<'a> {
    pub event_type: &'static str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub customer_id: &'a str,
    pub user_agent: &'a str,
    pub ip_address: &'a str,
    pub timestamp: String,
}

/// The guide's `api_response` document.
#[derive(Debug, Serialize)]
pub struct ApiResponseLog<'a> {
    pub event_type: &'static str,
    pub request_id: &'a str,
    pub status_code: u16,
    /// Milliseconds, an integer as in the guide.
    pub response_time: u64,
    pub cache_hit: bool,
    pub timestamp: String,
}

/// The guide's `error` document.
#[derive(Debug, Serialize)]
pub struct ErrorLog<'a> {
    pub event_type: &'static str,
    pub request_id: &'a str,
    pub error_type: &'a str,
    pub error_message: &'a str,
    /// `null` when there is none, as in the guide.
    pub stack_trace: Option<&'a str>,
    pub timestamp: String,
}

/// The guide's `business_<type>` document.
#[derive(Debug, Serialize)]
pub struct BusinessEventLog<'a> {
    pub event_type: String,
    pub customer_id: &'a str,
    pub data: &'a serde_json::Value,
    pub timestamp: String,
}

/// Emits the guide's structured logs. Cheap to clone.
///
/// Each helper has a default category (business events: `business`; everything else:
/// `application`); [`StructuredLogger::with_category`] overrides it, for example to send an
/// authentication failure to the security log group.
#[derive(Clone)]
pub struct StructuredLogger {
    logger: SdkLogger,
    category: Option<LogCategory>,
}

impl StructuredLogger {
    /// Wraps an OpenTelemetry logger (normally from the guard's logger provider).
    pub fn new(logger: SdkLogger) -> StructuredLogger {
        StructuredLogger {
            logger,
            category: None,
        }
    }

    /// A logger whose records all carry `category`, whatever the helper's default.
    pub fn with_category(&self, category: LogCategory) -> StructuredLogger {
        StructuredLogger {
            logger: self.logger.clone(),
            category: Some(category),
        }
    }

    /// `{"event_type": "api_request", ...}` at INFO.
    pub fn log_request(
        &self,
        request_id: &str,
        method: &str,
        path: &str,
        customer_id: &str,
        user_agent: &str,
        ip_address: &str,
    ) {
        let doc = ApiRequestLog {
            event_type: "api_request",
            request_id,
            method,
            path,
            customer_id,
            user_agent,
            ip_address,
            timestamp: iso_timestamp(),
        };
        self.emit(&doc, Severity::Info, LogCategory::Application);
    }

    /// `{"event_type": "api_response", ...}` at INFO; `response_time` is rounded to whole
    /// milliseconds as the guide's integer field.
    pub fn log_response(
        &self,
        request_id: &str,
        status_code: u16,
        response_time: std::time::Duration,
        cache_hit: bool,
    ) {
        let doc = ApiResponseLog {
            event_type: "api_response",
            request_id,
            status_code,
            response_time: u64::try_from(response_time.as_millis()).unwrap_or(u64::MAX),
            cache_hit,
            timestamp: iso_timestamp(),
        };
        self.emit(&doc, Severity::Info, LogCategory::Application);
    }

    /// `{"event_type": "error", ...}` at ERROR.
    pub fn log_error(
        &self,
        request_id: &str,
        error_type: &str,
        error_message: &str,
        stack_trace: Option<&str>,
    ) {
        let doc = ErrorLog {
            event_type: "error",
            request_id,
            error_type,
            error_message,
            stack_trace,
            timestamp: iso_timestamp(),
        };
        self.emit(&doc, Severity::Error, LogCategory::Application);
    }

    /// `{"event_type": "business_<event_type>", ...}` at INFO, category `business`.
    pub fn log_business_event(
        &self,
        event_type: &str,
        customer_id: &str,
        data: &serde_json::Value,
    ) {
        let doc = BusinessEventLog {
            event_type: format!("business_{event_type}"),
            customer_id,
            data,
            timestamp: iso_timestamp(),
        };
        self.emit(&doc, Severity::Info, LogCategory::Business);
    }

    fn emit(&self, doc: &impl Serialize, severity: Severity, default: LogCategory) {
        // Serializing these plain structs cannot fail (string keys, no maps with
        // non-string keys); should it ever, the record says so instead of vanishing.
        let body = serde_json::to_string(doc)
            .unwrap_or_else(|e| format!(r#"{{"event_type":"log_encoding_error","error":"{e}"}}"#));
        let category = self.category.unwrap_or(default);
        let mut record = self.logger.create_log_record();
        let now = SystemTime::now();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        record.set_severity_number(severity);
        record.set_severity_text(severity.name());
        record.set_body(AnyValue::String(body.into()));
        record.add_attribute(CATEGORY_ATTRIBUTE, category.as_str());
        let cx = crate::propagation::current_context();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
        }
        self.logger.emit(record);
    }
}

/// Gives every log record without a `log.category` the category `application`.
///
/// `tracing` events exported by the appender have no category; without one the CloudWatch
/// Logs exporter could not route them, and the guide files general service output under
/// application logs. Registered ahead of the exporting processor.
#[derive(Debug)]
pub(crate) struct DefaultCategory;

impl LogProcessor for DefaultCategory {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &InstrumentationScope) {
        let has_category = record
            .attributes_iter()
            .any(|(key, _)| key.as_str() == CATEGORY_ATTRIBUTE);
        if !has_category {
            record.add_attribute(CATEGORY_ATTRIBUTE, LogCategory::Application.as_str());
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC.
fn iso_timestamp() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::LoggerProvider;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::time::Duration;

    struct Emitted {
        body: serde_json::Map<String, serde_json::Value>,
        keys: Vec<String>,
        category: String,
        severity: Option<Severity>,
        trace: Option<(String, String)>,
    }

    fn emit_with(f: impl FnOnce(&StructuredLogger)) -> Vec<Emitted> {
        let exporter = InMemoryLogExporter::default();
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let logger = StructuredLogger::new(provider.logger("test"));
        f(&logger);
        provider.force_flush().expect("flush");
        exporter
            .get_emitted_logs()
            .expect("logs")
            .into_iter()
            .map(|l| {
                let text = match l.record.body() {
                    Some(AnyValue::String(s)) => s.as_str().to_owned(),
                    other => panic!("body must be a JSON string, got {other:?}"),
                };
                // Key order as written, so the test can compare with the guide's order.
                let keys = key_order(&text);
                let body: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&text).expect("body is a JSON object");
                let category = l
                    .record
                    .attributes_iter()
                    .find(|(k, _)| k.as_str() == CATEGORY_ATTRIBUTE)
                    .map(|(_, v)| match v {
                        AnyValue::String(s) => s.as_str().to_owned(),
                        other => panic!("category must be a string: {other:?}"),
                    })
                    .expect("log.category attribute");
                let trace = l.record.trace_context().map(|t| {
                    (
                        format!("{:032x}", t.trace_id),
                        format!("{:016x}", t.span_id),
                    )
                });
                Emitted {
                    body,
                    keys,
                    category,
                    severity: l.record.severity_number(),
                    trace,
                }
            })
            .collect()
    }

    /// The top-level keys of a JSON object in the order they appear.
    fn key_order(text: &str) -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        let serde_json::Value::Object(map) = value else {
            panic!("not an object: {text}");
        };
        let mut keys: Vec<(usize, String)> = map
            .keys()
            .map(|k| {
                let pos = text.find(&format!("\"{k}\":")).expect("key in text");
                (pos, k.clone())
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    fn assert_iso_utc(ts: &serde_json::Value) {
        let ts = ts.as_str().expect("timestamp string");
        let parsed = humantime::parse_rfc3339(ts).expect("RFC 3339 / ISO 8601 timestamp");
        let age = SystemTime::now()
            .duration_since(parsed)
            .unwrap_or(Duration::ZERO);
        assert!(age < Duration::from_secs(60), "{ts}");
    }

    #[test]
    fn categories_name_the_collectors_default_groups() {
        let groups: Vec<String> = LogCategory::ALL.map(LogCategory::log_group).to_vec();
        assert_eq!(
            groups,
            [
                "/aws/aurastream/security",
                "/aws/aurastream/audit",
                "/aws/aurastream/application",
                "/aws/aurastream/performance",
                "/aws/aurastream/business",
            ]
        );
    }

    #[test]
    fn request_log_has_the_seed_shape() {
        let logs = emit_with(|l| {
            l.log_request(
                "req-1",
                "POST",
                "/analyze",
                "customer_123",
                "curl/8",
                "10.0.0.1",
            )
        });
        let log = &logs[0];
        assert_eq!(
            log.keys,
            [
                "event_type",
                "request_id",
                "method",
                "path",
                "customer_id",
                "user_agent",
                "ip_address",
                "timestamp"
            ]
        );
        assert_eq!(log.body["event_type"], "api_request");
        assert_eq!(log.body["method"], "POST");
        assert_eq!(log.body["ip_address"], "10.0.0.1");
        assert_iso_utc(&log.body["timestamp"]);
        assert_eq!(log.category, "application");
        assert_eq!(log.severity, Some(Severity::Info));
    }

    #[test]
    fn response_log_has_the_seed_shape() {
        let logs = emit_with(|l| l.log_response("req-1", 200, Duration::from_millis(37), true));
        let log = &logs[0];
        assert_eq!(
            log.keys,
            [
                "event_type",
                "request_id",
                "status_code",
                "response_time",
                "cache_hit",
                "timestamp"
            ]
        );
        assert_eq!(log.body["event_type"], "api_response");
        assert_eq!(log.body["status_code"], 200);
        assert_eq!(log.body["response_time"], 37);
        assert_eq!(log.body["cache_hit"], true);
        assert_eq!(log.category, "application");
    }

    #[test]
    fn error_log_has_the_seed_shape_and_error_severity() {
        let logs = emit_with(|l| {
            l.log_error("req-2", "ValidationError", "text is empty", None);
            l.with_category(LogCategory::Security).log_error(
                "req-3",
                "AuthError",
                "bad key",
                Some("at auth.rs:10"),
            );
        });
        assert_eq!(
            logs[0].keys,
            [
                "event_type",
                "request_id",
                "error_type",
                "error_message",
                "stack_trace",
                "timestamp"
            ]
        );
        assert_eq!(logs[0].body["event_type"], "error");
        assert!(logs[0].body["stack_trace"].is_null());
        assert_eq!(logs[0].category, "application");
        assert_eq!(logs[0].severity, Some(Severity::Error));
        assert_eq!(logs[1].body["stack_trace"], "at auth.rs:10");
        assert_eq!(logs[1].category, "security");
    }

    #[test]
    fn business_event_has_the_seed_shape_and_business_category() {
        let data = serde_json::json!({"plan": "pro", "characters": 120});
        let logs = emit_with(|l| l.log_business_event("analysis_completed", "customer_123", &data));
        let log = &logs[0];
        assert_eq!(log.keys, ["event_type", "customer_id", "data", "timestamp"]);
        assert_eq!(log.body["event_type"], "business_analysis_completed");
        assert_eq!(log.body["data"], data);
        assert_eq!(log.category, "business");
        assert_iso_utc(&log.body["timestamp"]);
    }

    #[test]
    fn logs_carry_the_current_trace_and_span_ids() {
        let tracer = SdkTracerProvider::builder().build().tracer("test");
        let mut expected = None;
        let logs = emit_with(|l| {
            tracer.in_span("work", |cx| {
                let sc = cx.span().span_context().clone();
                expected = Some((
                    format!("{:032x}", sc.trace_id()),
                    format!("{:016x}", sc.span_id()),
                ));
                l.log_response("req-1", 200, Duration::from_millis(1), false);
            })
        });
        assert!(expected.is_some());
        assert_eq!(logs[0].trace, expected);
    }

    #[test]
    fn uncategorised_records_default_to_application() {
        let exporter = InMemoryLogExporter::default();
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(DefaultCategory)
            .with_simple_exporter(exporter.clone())
            .build();
        let logger = provider.logger("test");
        let mut plain = logger.create_log_record();
        plain.set_body(AnyValue::from("plain tracing event"));
        logger.emit(plain);
        StructuredLogger::new(logger).log_business_event("x", "c", &serde_json::json!({}));
        let categories: Vec<String> = exporter
            .get_emitted_logs()
            .expect("logs")
            .iter()
            .map(|l| {
                let values: Vec<String> = l
                    .record
                    .attributes_iter()
                    .filter(|(k, _)| k.as_str() == CATEGORY_ATTRIBUTE)
                    .map(|(_, v)| format!("{v:?}"))
                    .collect();
                values.join(",")
            })
            .collect();
        assert_eq!(
            categories,
            [
                r#"String(Static("application"))"#,
                r#"String(Static("business"))"#
            ]
        );
    }
}
