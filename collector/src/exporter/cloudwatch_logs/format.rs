//! OTLP log records into CloudWatch log event messages.
//!
//! Structured events stay structured: a kvlist body, or a string body holding a JSON object
//! (what the monitoring guide's `StructuredLogger` writes), is sent as that JSON document,
//! so `event_type`, `request_id`, `response_time` ... are top-level fields and Logs Insights
//! queries such as `filter response_time > 1000` work. Anything else becomes a JSON object
//! with the body and the record's metadata.
//!
//! Every event of a record with a trace id carries its trace context as top-level fields
//! (unless the document has fields of those names already):
//!
//! - `xray_trace_id`: the trace id in X-Ray form (`1-5759e988-bd862e3fe1be46a994272793`).
//!   The X-Ray and CloudWatch consoles find a trace's log lines by searching the log groups
//!   named in its segments (`aws.cloudwatch_logs`) for the trace id in X-Ray form, so the
//!   id must appear in that form; the field name is the one AWS Lambda Powertools writes
//!   for this correlation.
//! - `trace_id`, `span_id`: lower-case hex, the names the Collector's `awscloudwatchlogs`
//!   exporter uses, so queries written for ADOT (`filter trace_id = "..."`) keep working
//!   and a line leads to its span.

pub use crate::model::ids::hex;
pub use crate::model::json::{any_to_json, kvs_to_map};
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::logs::LogRecord;
use aurastream_proto::otlp::resource::Resource;
use serde_json::{Map, Value};

use crate::aws::xray::trace_id as xray_trace_id;

/// The message for one record. `raw_log` sends the body as is (a string body verbatim,
/// any other body as its JSON form).
pub fn record_message(record: &LogRecord, resource: Option<&Resource>, raw_log: bool) -> String {
    let body = record.body.as_ref().and_then(|b| b.value.as_ref());
    if raw_log {
        return match body {
            Some(AnyValueKind::StringValue(s)) => s.clone(),
            Some(v) => any_to_json(v).to_string(),
            None => String::new(),
        };
    }
    match body {
        Some(AnyValueKind::KvlistValue(list)) => {
            let mut doc = kvs_to_map(&list.values);
            for (key, value) in trace_context(record, &doc) {
                doc.insert(key.into(), value.into());
            }
            return Value::Object(doc).to_string();
        }
        Some(AnyValueKind::StringValue(s)) if s.trim_start().starts_with('{') => {
            if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(s) {
                return append_fields(s, doc.is_empty(), &trace_context(record, &doc));
            }
        }
        _ => {}
    }
    let mut doc = Map::new();
    if let Some(b) = body {
        doc.insert("body".into(), any_to_json(b));
    }
    if !record.severity_text.is_empty() {
        doc.insert("severity_text".into(), record.severity_text.clone().into());
    }
    if record.severity_number != 0 {
        doc.insert("severity_number".into(), record.severity_number.into());
    }
    if !record.attributes.is_empty() {
        doc.insert(
            "attributes".into(),
            Value::Object(kvs_to_map(&record.attributes)),
        );
    }
    for (key, value) in trace_context(record, &Map::new()) {
        doc.insert(key.into(), value.into());
    }
    if let Some(r) = resource
        && !r.attributes.is_empty()
    {
        doc.insert("resource".into(), Value::Object(kvs_to_map(&r.attributes)));
    }
    Value::Object(doc).to_string()
}

/// The record's trace context fields that `doc` lacks: `trace_id` and `span_id` in hex,
/// `xray_trace_id` in X-Ray form (a malformed id gets no X-Ray form).
fn trace_context(record: &LogRecord, doc: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let valid = |id: &[u8]| id.iter().any(|b| *b != 0);
    let fields = [
        (
            "trace_id",
            valid(&record.trace_id).then(|| hex(&record.trace_id)),
        ),
        (
            "span_id",
            valid(&record.span_id).then(|| hex(&record.span_id)),
        ),
        ("xray_trace_id", xray_trace_id(&record.trace_id)),
    ];
    fields
        .into_iter()
        .filter(|(key, _)| !doc.contains_key(*key))
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
}

/// `json` (a JSON object's text) with string fields appended before its closing brace:
/// the document's own text, key order and number formatting are kept as they are.
fn append_fields(json: &str, empty: bool, fields: &[(&str, String)]) -> String {
    let Some(open) = json
        .trim_end()
        .strip_suffix('}')
        .filter(|_| !fields.is_empty())
    else {
        return json.to_string();
    };
    let mut out = open.to_string();
    for (i, (key, value)) in fields.iter().enumerate() {
        if !(empty && i == 0) {
            out.push(',');
        }
        out.push_str(&Value::from(*key).to_string());
        out.push(':');
        out.push_str(&Value::from(value.as_str()).to_string());
    }
    out.push('}');
    out
}

/// The record's time in milliseconds: its own timestamp, else when it was observed, else
/// now (CloudWatch needs one).
pub fn record_timestamp_ms(record: &LogRecord, now_ms: i64) -> i64 {
    let nanos = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    if nanos == 0 {
        now_ms
    } else {
        i64::try_from(nanos / 1_000_000).unwrap_or(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::KeyValue;
    use aurastream_proto::otlp::common::{AnyValue, KeyValueList};

    fn kv(k: &str, v: AnyValueKind) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn record(body: AnyValueKind) -> LogRecord {
        LogRecord {
            body: Some(AnyValue { value: Some(body) }),
            ..Default::default()
        }
    }

    #[test]
    fn json_string_body_is_sent_as_the_document() {
        let body = r#"{"event_type":"api_response","request_id":"r1","status_code":200,"response_time":1500,"cache_hit":false}"#;
        let r = record(AnyValueKind::StringValue(body.into()));
        let msg = record_message(&r, None, false);
        let v: Value = serde_json::from_str(&msg).expect("json");
        assert_eq!(v["event_type"], "api_response");
        assert_eq!(v["response_time"], 1500);
    }

    #[test]
    fn json_document_gets_the_record_trace_context_appended() {
        let body = r#"{"event_type":"api_request","request_id":"r1","response_time":1.50}"#;
        let mut r = record(AnyValueKind::StringValue(body.into()));
        // Without ids the document goes out byte for byte.
        assert_eq!(record_message(&r, None, false), body);
        r.trace_id = vec![0xab; 16];
        r.span_id = vec![0x01; 8];
        let msg = record_message(&r, None, false);
        let prefix = body.strip_suffix('}').expect("an object");
        assert!(
            msg.starts_with(prefix),
            "the document's own text is kept: {msg}"
        );
        let v: Value = serde_json::from_str(&msg).expect("json");
        assert_eq!(v["event_type"], "api_request");
        assert_eq!(v["trace_id"], "ab".repeat(16));
        assert_eq!(v["span_id"], "01".repeat(8));
        assert_eq!(
            v["xray_trace_id"],
            format!("1-abababab-{}", "ab".repeat(12))
        );
        // A document's own `trace_id` wins; an empty object still becomes valid JSON.
        r.body = Some(AnyValue {
            value: Some(AnyValueKind::StringValue(r#"{"trace_id":"mine"} "#.into())),
        });
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        let xray = format!("1-abababab-{}", "ab".repeat(12));
        assert_eq!(
            v,
            serde_json::json!({"trace_id": "mine", "span_id": "01".repeat(8), "xray_trace_id": xray})
        );
        r.body = Some(AnyValue {
            value: Some(AnyValueKind::StringValue("{}".into())),
        });
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"trace_id": "ab".repeat(16), "span_id": "01".repeat(8), "xray_trace_id": xray})
        );
        r.body = Some(AnyValue {
            value: Some(AnyValueKind::KvlistValue(KeyValueList {
                values: vec![kv("event_type", AnyValueKind::StringValue("error".into()))],
            })),
        });
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        assert_eq!(v["trace_id"], "ab".repeat(16));
        assert_eq!(v["event_type"], "error");
    }

    #[test]
    fn records_without_a_trace_get_no_trace_fields() {
        let mut r = record(AnyValueKind::StringValue("no trace".into()));
        r.trace_id = vec![0; 16];
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        assert_eq!(v, serde_json::json!({"body": "no trace"}));
        // A malformed (short) id is kept in hex but has no X-Ray form.
        r.trace_id = vec![0xab; 4];
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"body": "no trace", "trace_id": "abababab"})
        );
    }

    #[test]
    fn kvlist_body_becomes_a_json_object() {
        let r = record(AnyValueKind::KvlistValue(KeyValueList {
            values: vec![
                kv("event_type", AnyValueKind::StringValue("error".into())),
                kv("response_time", AnyValueKind::IntValue(1200)),
            ],
        }));
        let v: Value = serde_json::from_str(&record_message(&r, None, false)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"event_type": "error", "response_time": 1200})
        );
    }

    #[test]
    fn plain_text_record_is_wrapped_with_metadata() {
        let mut r = record(AnyValueKind::StringValue("disk almost full".into()));
        r.severity_text = "WARN".into();
        r.severity_number = 13;
        r.trace_id = vec![0xab; 16];
        r.span_id = vec![0x01; 8];
        r.attributes = vec![kv(
            "log.category",
            AnyValueKind::StringValue("application".into()),
        )];
        let resource = Resource {
            attributes: vec![kv("service.name", AnyValueKind::StringValue("api".into()))],
            ..Default::default()
        };
        let v: Value =
            serde_json::from_str(&record_message(&r, Some(&resource), false)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "body": "disk almost full",
                "severity_text": "WARN",
                "severity_number": 13,
                "attributes": {"log.category": "application"},
                "trace_id": "ab".repeat(16),
                "span_id": "01".repeat(8),
                "xray_trace_id": format!("1-abababab-{}", "ab".repeat(12)),
                "resource": {"service.name": "api"}
            })
        );
        assert_eq!(
            crate::aws::cloudwatch_logs::routing::record_attribute(
                &r,
                Some(&resource),
                "service.name"
            ),
            Some("api")
        );
        assert_eq!(
            crate::aws::cloudwatch_logs::routing::record_attribute(
                &r,
                Some(&resource),
                "log.category"
            ),
            Some("application")
        );
    }

    #[test]
    fn raw_log_sends_the_body_verbatim() {
        let r = record(AnyValueKind::StringValue("2026-01-01 INFO hello".into()));
        assert_eq!(record_message(&r, None, true), "2026-01-01 INFO hello");
        let r = record(AnyValueKind::IntValue(5));
        assert_eq!(record_message(&r, None, true), "5");
    }

    #[test]
    fn timestamp_falls_back_to_observed_then_now() {
        let mut r = LogRecord::default();
        assert_eq!(record_timestamp_ms(&r, 42), 42);
        r.observed_time_unix_nano = 2_000_000;
        assert_eq!(record_timestamp_ms(&r, 42), 2);
        r.time_unix_nano = 5_000_000;
        assert_eq!(record_timestamp_ms(&r, 42), 5);
    }
}
