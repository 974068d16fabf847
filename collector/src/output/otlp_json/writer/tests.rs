//! The hand-written lines against serde_json's rendering of opentelemetry-proto's derives:
//! equal byte for byte, on every value kind and on arbitrary strings.

use aurastream_proto::otlp::common::any_value::Value;
use aurastream_proto::otlp::common::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::span::{Event, Link};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use serde::Serialize;

/// The lines as the serde derives write them: what the writer must reproduce.
#[derive(Serialize)]
enum Line<'a> {
    #[serde(rename = "resourceSpans")]
    Spans(&'a [ResourceSpans]),
    #[serde(rename = "resourceLogs")]
    Logs(&'a [ResourceLogs]),
}

fn kv(key: &str, value: Option<Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.map(|value| AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// One attribute of every kind, nested ones included, and strings that need escaping.
fn every_kind() -> Vec<KeyValue> {
    vec![
        kv("s", Some(Value::StringValue("plain".into()))),
        kv(
            "escapes",
            Some(Value::StringValue(
                "quote \" backslash \\ newline \n tab \t nul \0 bell \u{7} del \u{7f} é 日本 🎉 </script>"
                    .into(),
            )),
        ),
        kv("b", Some(Value::BoolValue(true))),
        kv("f", Some(Value::BoolValue(false))),
        kv("i", Some(Value::IntValue(-9_007_199_254_740_993))),
        kv("d", Some(Value::DoubleValue(0.1))),
        kv("whole", Some(Value::DoubleValue(3.0))),
        kv("tiny", Some(Value::DoubleValue(1e-300))),
        kv("nan", Some(Value::DoubleValue(f64::NAN))),
        kv("inf", Some(Value::DoubleValue(f64::NEG_INFINITY))),
        kv(
            "array",
            Some(Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::IntValue(7)),
                    },
                    AnyValue { value: None },
                    AnyValue {
                        value: Some(Value::StringValue("x".into())),
                    },
                ],
            })),
        ),
        kv(
            "map",
            Some(Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("inner", Some(Value::BoolValue(false))),
                    kv("empty", None),
                ],
            })),
        ),
        kv("bytes", Some(Value::BytesValue(vec![0, 1, 2, 250, 255]))),
        kv("strindex", Some(Value::StringValueStrindex(3))),
        kv("none", None),
        KeyValue {
            key: String::new(),
            value: None,
            key_strindex: 5,
        },
    ]
}

fn resource() -> Resource {
    Resource {
        attributes: every_kind(),
        dropped_attributes_count: 2,
        entity_refs: vec![EntityRef {
            schema_url: "https://example.com".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into()],
            description_keys: vec![],
        }],
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "lib".into(),
        version: "1.0".into(),
        attributes: every_kind(),
        dropped_attributes_count: 1,
    }
}

fn serde_line(line: &Line<'_>) -> String {
    String::from_utf8(serde_json::to_vec(line).unwrap()).unwrap()
}

fn ours(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn spans_are_written_as_serde_writes_them() {
    let span = Span {
        trace_id: vec![
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c,
        ],
        span_id: vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74],
        trace_state: "vendor=a,b=c".into(),
        parent_span_id: vec![],
        flags: 257,
        name: "GET /orders/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_765_000_000_000_000_000,
        end_time_unix_nano: u64::MAX,
        attributes: every_kind(),
        dropped_attributes_count: 3,
        events: vec![Event {
            time_unix_nano: 1,
            name: "exception".into(),
            attributes: every_kind(),
            dropped_attributes_count: 4,
        }],
        dropped_events_count: 5,
        links: vec![Link {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: String::new(),
            attributes: every_kind(),
            dropped_attributes_count: 6,
            flags: 1,
        }],
        dropped_links_count: 7,
        status: Some(Status {
            message: "boom \"here\"".into(),
            code: 2,
        }),
    };
    let data = vec![
        ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope()),
                    spans: vec![span.clone(), Span::default()],
                    schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
                },
                ScopeSpans::default(),
            ],
            schema_url: String::new(),
        },
        ResourceSpans::default(),
    ];
    assert_eq!(
        ours(|out| super::traces(out, &data)),
        serde_line(&Line::Spans(&data))
    );
    assert_eq!(
        ours(|out| super::traces(out, &[])),
        serde_line(&Line::Spans(&[]))
    );
}

#[test]
fn log_records_are_written_as_serde_writes_them() {
    let bodies = [
        None,
        Some(AnyValue { value: None }),
        Some(AnyValue {
            value: Some(Value::StringValue(
                r#"{"event":"order.placed","customer_id":"c-42","note":"line\nbreak"}"#.into(),
            )),
        }),
        Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: every_kind(),
            })),
        }),
        Some(AnyValue {
            value: Some(Value::BytesValue(b"raw".to_vec())),
        }),
    ];
    let records: Vec<LogRecord> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| LogRecord {
            time_unix_nano: i as u64,
            observed_time_unix_nano: 1_765_000_000_123_456_789,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body,
            attributes: every_kind(),
            dropped_attributes_count: 1,
            flags: 1,
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            event_name: "order.placed".into(),
        })
        .collect();
    let data = vec![
        ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                schema_url: "s".into(),
            }],
            schema_url: "r".into(),
        },
        ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord::default()],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        },
    ];
    assert_eq!(
        ours(|out| super::logs(out, &data)),
        serde_line(&Line::Logs(&data))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every string, control characters and all, escapes as serde_json escapes it, at
    /// every length around the eight-byte steps.
    #[test]
    fn strings_escape_as_serde_json_does(s in "(?s).{0,40}", prefix in 0usize..9) {
        let s = format!("{}{s}", "a".repeat(prefix));
        let ours = ours(|out| super::string(out, &s));
        prop_assert_eq!(ours, serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn control_heavy_strings_escape_as_serde_json_does(
        bytes in proptest::collection::vec(prop_oneof![0u8..0x20, Just(b'"'), Just(b'\\'), 0x20u8..0x7f], 0..40)
    ) {
        let s = String::from_utf8(bytes).unwrap();
        let ours = ours(|out| super::string(out, &s));
        prop_assert_eq!(ours, serde_json::to_string(&s).unwrap());
    }
}
