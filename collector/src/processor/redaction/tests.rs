use aurastream_proto::otlp::common::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::metrics::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::Event, span::Link};
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use serde_json::json;

use super::config::{HashFunction, RedactionConfig, Summary};
use super::error::RedactionError;
use super::summary::*;
use super::*;
use crate::aws::xray::SEGMENT_DOCUMENT_ATTRIBUTE;
use crate::model::{ItemBudget, SignalData};

const CARD: &str = "4111111111111111";
const CARD_PATTERN: &str = "4[0-9]{12}(?:[0-9]{3})?";
const EMAIL_PATTERN: &str = r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}";
/// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> &'a str {
    match get(attributes, key) {
        Some(Value::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

fn int(attributes: &[KeyValue], key: &str) -> i64 {
    match get(attributes, key) {
        Some(Value::IntValue(i)) => *i,
        other => panic!("{key}: {other:?}"),
    }
}

fn rules(config: RedactionConfig) -> Rules {
    Rules::compile(&config).expect("valid options")
}

fn allow_all() -> RedactionConfig {
    RedactionConfig {
        allow_all_keys: true,
        ..Default::default()
    }
}

/// Redacts one attribute list as a span's and returns it with the summary written.
fn redact_span_attributes(rules: &Rules, attributes: Vec<KeyValue>) -> Vec<KeyValue> {
    let mut data = traces(Span {
        attributes,
        ..Default::default()
    });
    rules.redact(&mut data);
    only_span(data).attributes
}

fn traces(span: Span) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn only_span(data: SignalData) -> Span {
    let SignalData::Traces(mut rs) = data else {
        panic!("traces")
    };
    rs.remove(0).scope_spans.remove(0).spans.remove(0)
}

fn key_file(key: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, key).expect("write key");
    f
}

#[test]
fn allowed_keys_fail_closed_and_keep_only_what_is_listed() {
    let r = rules(RedactionConfig {
        allowed_keys: vec!["http.route".into()],
        summary: Summary::Debug,
        ..Default::default()
    });
    let out = redact_span_attributes(
        &r,
        vec![s("http.route", "/analyze"), s("secret", "x"), s("b", "y")],
    );
    assert_eq!(text(&out, "http.route"), "/analyze");
    assert!(get(&out, "secret").is_none() && get(&out, "b").is_none());
    assert_eq!(int(&out, REDACTED_COUNT), 2);
    assert_eq!(text(&out, REDACTED_KEYS), "b,secret");

    // No options at all: every attribute goes, as in the contrib processor.
    let out = redact_span_attributes(&rules(RedactionConfig::default()), vec![s("a", "1")]);
    assert!(get(&out, "a").is_none());
    assert_eq!(int(&out, REDACTED_COUNT), 1);
}

#[test]
fn allow_all_keys_with_nothing_blocked_changes_nothing() {
    let r = rules(RedactionConfig {
        blocked_values: vec![CARD_PATTERN.into()],
        ..allow_all()
    });
    let span = Span {
        attributes: vec![s("a", "plain"), kv("n", Value::IntValue(4111111111111111))],
        events: vec![Event {
            attributes: vec![s("e", "text")],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut data = traces(span.clone());
    r.redact(&mut data);
    assert_eq!(only_span(data), span, "untouched, and no summary added");
}

#[test]
fn ignored_keys_pass_untouched_even_when_blocked_or_not_allowed() {
    let r = rules(RedactionConfig {
        ignored_keys: vec!["note".into()],
        blocked_values: vec![CARD_PATTERN.into()],
        blocked_key_patterns: vec!["note".into()],
        ..Default::default()
    });
    let out = redact_span_attributes(&r, vec![s("note", CARD), s("other", "x")]);
    assert_eq!(text(&out, "note"), CARD);
    assert!(get(&out, "other").is_none());
    assert_eq!(int(&out, IGNORED_COUNT), 1);
    assert_eq!(int(&out, REDACTED_COUNT), 1);
}

#[test]
fn blocked_key_patterns_mask_the_whole_value_of_any_type() {
    let r = rules(RedactionConfig {
        blocked_key_patterns: vec![".*token.*".into(), "^client\\.address$".into()],
        summary: Summary::Debug,
        ..allow_all()
    });
    let out = redact_span_attributes(
        &r,
        vec![
            s("auth.token", "abc"),
            s("client.address", "203.0.113.9"),
            kv("api_token_id", Value::IntValue(42)),
            s("client.address.kind", "ipv4"),
        ],
    );
    assert_eq!(text(&out, "auth.token"), "****");
    assert_eq!(text(&out, "client.address"), "****");
    assert_eq!(text(&out, "api_token_id"), "****");
    assert_eq!(
        text(&out, "client.address.kind"),
        "ipv4",
        "anchored pattern"
    );
    assert_eq!(int(&out, MASKED_COUNT), 3);
    assert_eq!(
        text(&out, MASKED_KEYS),
        "api_token_id,auth.token,client.address"
    );
}

#[test]
fn blocked_values_mask_only_the_matching_part() {
    let r = rules(RedactionConfig {
        blocked_values: vec![CARD_PATTERN.into(), EMAIL_PATTERN.into()],
        ..allow_all()
    });
    let out = redact_span_attributes(
        &r,
        vec![
            s("note", &format!("paid with {CARD} by ann@example.com")),
            s("plain", "nothing here"),
        ],
    );
    assert_eq!(text(&out, "note"), "paid with **** by ****");
    assert_eq!(text(&out, "plain"), "nothing here");
    assert_eq!(int(&out, MASKED_COUNT), 1);
    assert!(get(&out, MASKED_KEYS).is_none(), "info: counts only");
}

#[test]
fn allowed_values_exempt_a_value_from_blocked_values() {
    let r = rules(RedactionConfig {
        blocked_values: vec![EMAIL_PATTERN.into()],
        allowed_values: vec![r".+@aurastream\.example$".into()],
        summary: Summary::Debug,
        ..allow_all()
    });
    let out = redact_span_attributes(
        &r,
        vec![
            s("ops", "oncall@aurastream.example"),
            s("user", "ann@example.com"),
        ],
    );
    assert_eq!(text(&out, "ops"), "oncall@aurastream.example");
    assert_eq!(text(&out, "user"), "****");
    assert_eq!(text(&out, ALLOWED_KEYS), "ops");
    assert_eq!(int(&out, ALLOWED_COUNT), 1);
}

#[test]
fn sha256_replaces_values_with_their_hex_digest() {
    let r = rules(RedactionConfig {
        blocked_key_patterns: vec!["^customer_id$".into()],
        blocked_values: vec!["abc".into()],
        hash_function: Some(HashFunction::Sha256),
        ..allow_all()
    });
    let out = redact_span_attributes(&r, vec![s("customer_id", "abc"), s("note", "x abc y")]);
    assert_eq!(text(&out, "customer_id"), SHA256_ABC);
    assert_eq!(text(&out, "note"), format!("x {SHA256_ABC} y"));
}

#[test]
fn hmac_sha256_is_keyed_and_stable_for_one_key() {
    // RFC 4231 test case 1: key 0x0b x 20, data "Hi There".
    let key = key_file(&[0x0b; 20]);
    let config = RedactionConfig {
        blocked_key_patterns: vec!["^user_id$".into()],
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_file: Some(key.path().to_owned()),
        ..allow_all()
    };
    let out = redact_span_attributes(&rules(config.clone()), vec![s("user_id", "Hi There")]);
    assert_eq!(
        text(&out, "user_id"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    // Compiled again (a restart) with the same key: the same token.
    let again = redact_span_attributes(&rules(config.clone()), vec![s("user_id", "Hi There")]);
    assert_eq!(text(&again, "user_id"), text(&out, "user_id"));
    // A trailing line break in the file is not part of the key.
    let with_newline = key_file(&[[0x0b; 20].as_slice(), b"\n"].concat());
    let same = redact_span_attributes(
        &rules(RedactionConfig {
            hmac_key_file: Some(with_newline.path().to_owned()),
            ..config.clone()
        }),
        vec![s("user_id", "Hi There")],
    );
    assert_eq!(text(&same, "user_id"), text(&out, "user_id"));
    // Another key: another token.
    let other = key_file(&[0x0c; 20]);
    let different = redact_span_attributes(
        &rules(RedactionConfig {
            hmac_key_file: Some(other.path().to_owned()),
            ..config
        }),
        vec![s("user_id", "Hi There")],
    );
    assert_ne!(text(&different, "user_id"), text(&out, "user_id"));
}

#[test]
fn the_hmac_key_can_come_from_the_environment() {
    // cargo sets CARGO_MANIFEST_DIR for test runs; it is long enough to be a key.
    let from_env = rules(RedactionConfig {
        blocked_key_patterns: vec!["^k$".into()],
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_env: Some("CARGO_MANIFEST_DIR".into()),
        ..allow_all()
    });
    let key = key_file(env!("CARGO_MANIFEST_DIR").as_bytes());
    let from_file = rules(RedactionConfig {
        blocked_key_patterns: vec!["^k$".into()],
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_file: Some(key.path().to_owned()),
        ..allow_all()
    });
    let a = redact_span_attributes(&from_env, vec![s("k", "v")]);
    let b = redact_span_attributes(&from_file, vec![s("k", "v")]);
    assert_eq!(text(&a, "k"), text(&b, "k"));
    assert_eq!(text(&a, "k").len(), 64);
}

#[test]
fn summary_levels() {
    let attrs = || vec![s("secret", "x"), s("card", CARD), s("keep", "k")];
    let config = |summary| RedactionConfig {
        allowed_keys: vec!["card".into(), "keep".into()],
        blocked_values: vec![CARD_PATTERN.into()],
        summary,
        ..Default::default()
    };
    let debug = redact_span_attributes(&rules(config(Summary::Debug)), attrs());
    assert_eq!(text(&debug, REDACTED_KEYS), "secret");
    assert_eq!(int(&debug, REDACTED_COUNT), 1);
    assert_eq!(text(&debug, MASKED_KEYS), "card");
    assert_eq!(int(&debug, MASKED_COUNT), 1);

    let info = redact_span_attributes(&rules(config(Summary::Info)), attrs());
    assert_eq!(int(&info, REDACTED_COUNT), 1);
    assert_eq!(int(&info, MASKED_COUNT), 1);
    assert!(get(&info, REDACTED_KEYS).is_none() && get(&info, MASKED_KEYS).is_none());

    let silent = redact_span_attributes(&rules(config(Summary::Silent)), attrs());
    assert_eq!(silent.len(), 2);
    assert!(silent.iter().all(|kv| !kv.key.starts_with("redaction.")));
}

#[test]
fn summary_counts_add_to_those_already_on_the_item() {
    let r = rules(RedactionConfig {
        blocked_values: vec![CARD_PATTERN.into()],
        summary: Summary::Debug,
        ..allow_all()
    });
    let out = redact_span_attributes(
        &r,
        vec![
            s("card", CARD),
            kv(MASKED_COUNT, Value::IntValue(2)),
            s(MASKED_KEYS, "a,b"),
        ],
    );
    assert_eq!(int(&out, MASKED_COUNT), 3);
    assert_eq!(text(&out, MASKED_KEYS), "a,b,card");
}

#[test]
fn events_links_and_resources_are_redacted_too() {
    let r = rules(RedactionConfig {
        blocked_key_patterns: vec!["^enduser\\.id$".into()],
        blocked_values: vec![CARD_PATTERN.into()],
        ..allow_all()
    });
    let mut data = SignalData::Traces(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![s("enduser.id", "u-1"), s("service.name", "api")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                events: vec![Event {
                    name: "payment".into(),
                    attributes: vec![s("card", CARD)],
                    ..Default::default()
                }],
                links: vec![Link {
                    attributes: vec![s("enduser.id", "u-2")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    r.redact(&mut data);
    let SignalData::Traces(rs) = data else {
        panic!()
    };
    let resource = rs[0].resource.as_ref().unwrap();
    assert_eq!(text(&resource.attributes, "enduser.id"), "****");
    assert_eq!(text(&resource.attributes, "service.name"), "api");
    assert_eq!(int(&resource.attributes, MASKED_COUNT), 1);
    let span = &rs[0].scope_spans[0].spans[0];
    assert_eq!(text(&span.events[0].attributes, "card"), "****");
    assert_eq!(text(&span.links[0].attributes, "enduser.id"), "****");
    assert_eq!(
        int(&span.attributes, MASKED_COUNT),
        2,
        "the span counts its events and links"
    );
}

#[test]
fn metric_dimensions_are_hashed() {
    let r = rules(RedactionConfig {
        blocked_key_patterns: vec!["^CustomerId$".into()],
        hash_function: Some(HashFunction::Sha256),
        ..allow_all()
    });
    let mut data = SignalData::Metrics(vec![ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: "APIRequestCount".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        attributes: vec![s("CustomerId", "abc"), s("Endpoint", "/analyze")],
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    r.redact(&mut data);
    let SignalData::Metrics(rm) = data else {
        panic!()
    };
    let Some(Data::Gauge(g)) = &rm[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    let point = &g.data_points[0].attributes;
    assert_eq!(text(point, "CustomerId"), SHA256_ABC);
    assert_eq!(text(point, "Endpoint"), "/analyze");
    assert_eq!(int(point, MASKED_COUNT), 1);
}

fn log(body: Value, attributes: Vec<KeyValue>) -> SignalData {
    SignalData::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord {
                body: Some(AnyValue { value: Some(body) }),
                attributes,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn only_log(data: SignalData) -> LogRecord {
    let SignalData::Logs(mut rl) = data else {
        panic!("logs")
    };
    rl.remove(0).scope_logs.remove(0).log_records.remove(0)
}

fn seed_rules() -> Rules {
    rules(RedactionConfig {
        blocked_key_patterns: vec!["^(ip_address|user_agent|customer_id|user_id)$".into()],
        blocked_values: vec![CARD_PATTERN.into()],
        summary: Summary::Debug,
        ..allow_all()
    })
}

#[test]
fn string_bodies_have_blocked_values_masked() {
    let mut data = log(
        Value::StringValue(format!("charged card {CARD}")),
        vec![s("user_id", "u-1")],
    );
    seed_rules().redact(&mut data);
    let record = only_log(data);
    assert_eq!(
        record.body.unwrap().value,
        Some(Value::StringValue("charged card ****".into()))
    );
    assert_eq!(text(&record.attributes, "user_id"), "****");
    assert_eq!(text(&record.attributes, MASKED_KEYS), "body,user_id");
}

#[test]
fn json_string_bodies_are_redacted_by_key_as_the_guide_logs_them() {
    // The monitoring guide's log_request: json.dumps(...) as the message.
    let body = json!({
        "event_type": "api_request",
        "customer_id": "customer_123",
        "user_agent": "curl/8.5",
        "ip_address": "203.0.113.9",
        "note": format!("card {CARD}"),
    })
    .to_string();
    let mut data = log(Value::StringValue(body), vec![]);
    seed_rules().redact(&mut data);
    let record = only_log(data);
    let Some(Value::StringValue(text_body)) = record.body.unwrap().value else {
        panic!()
    };
    let parsed: serde_json::Value = serde_json::from_str(&text_body).unwrap();
    assert_eq!(
        parsed,
        json!({
            "event_type": "api_request",
            "customer_id": "****",
            "user_agent": "****",
            "ip_address": "****",
            "note": "card ****",
        })
    );
    assert_eq!(int(&record.attributes, MASKED_COUNT), 4);
}

#[test]
fn structured_bodies_are_redacted_like_attributes() {
    let body = Value::KvlistValue(KeyValueList {
        values: vec![
            s("event_type", "login"),
            s("ip_address", "203.0.113.9"),
            kv(
                "user",
                Value::KvlistValue(KeyValueList {
                    values: vec![s("user_id", "u-1"), s("plan", "pro")],
                }),
            ),
            kv(
                "cards",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue(CARD.into())),
                    }],
                }),
            ),
        ],
    });
    let mut data = log(body, vec![]);
    seed_rules().redact(&mut data);
    let record = only_log(data);
    let Some(Value::KvlistValue(list)) = record.body.unwrap().value else {
        panic!()
    };
    assert_eq!(text(&list.values, "ip_address"), "****");
    assert_eq!(text(&list.values, "event_type"), "login");
    let Some(Value::KvlistValue(user)) = get(&list.values, "user") else {
        panic!()
    };
    assert_eq!(text(&user.values, "user_id"), "****");
    assert_eq!(text(&user.values, "plan"), "pro");
    let Some(Value::ArrayValue(cards)) = get(&list.values, "cards") else {
        panic!()
    };
    assert_eq!(
        cards.values[0].value,
        Some(Value::StringValue("****".into()))
    );
    assert_eq!(
        text(&record.attributes, MASKED_KEYS),
        "cards,ip_address,user_id"
    );
}

/// A document as the `awsxray` receiver stores it on its span.
fn xray_span(document: &serde_json::Value) -> Span {
    Span {
        attributes: vec![
            s("client.address", "203.0.113.9"),
            s(
                "aws.xray.metadata.default",
                &document["metadata"]["default"].to_string(),
            ),
            s(SEGMENT_DOCUMENT_ATTRIBUTE, &document.to_string()),
        ],
        ..Default::default()
    }
}

#[test]
fn xray_documents_are_redacted_field_by_field() {
    let doc = json!({
        "name": "aurastream-api",
        "id": "70de5b6f19ff9a0a",
        "trace_id": "1-581cf771-a006649127e371903a2de979",
        "start_time": 1.0, "end_time": 2.0,
        "http": {
            "request": {"method": "GET", "url": "https://api/analyze", "client_ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
            "response": {"status": 200}
        },
        "user": "u-1",
        "annotations": {"customer_id": "customer_123", "tier": "gold"},
        "metadata": {"default": {"ip_address": "203.0.113.9", "note": format!("card {CARD}")}},
        "cause": {"exceptions": [{"id": "e1", "message": format!("declined {CARD}")}]},
        "aws": {"xray": {"sdk": "X-Ray for Python"}}
    });
    let r = rules(RedactionConfig {
        blocked_key_patterns: vec![
            "^(ip_address|customer_id|client\\.address|user_agent\\.original|enduser\\.id)$".into(),
        ],
        blocked_values: vec![CARD_PATTERN.into()],
        ..allow_all()
    });
    let mut data = traces(xray_span(&doc));
    r.redact(&mut data);
    let span = only_span(data);
    let redacted: serde_json::Value =
        serde_json::from_str(text(&span.attributes, SEGMENT_DOCUMENT_ATTRIBUTE)).unwrap();
    let mut expected = doc.clone();
    expected["http"]["request"]["client_ip"] = json!("****");
    expected["http"]["request"]["user_agent"] = json!("****");
    expected["user"] = json!("****");
    expected["annotations"]["customer_id"] = json!("****");
    expected["metadata"]["default"]["ip_address"] = json!("****");
    expected["metadata"]["default"]["note"] = json!("card ****");
    expected["cause"]["exceptions"][0]["message"] = json!("declined ****");
    assert_eq!(redacted, expected);

    let metadata: serde_json::Value =
        serde_json::from_str(text(&span.attributes, "aws.xray.metadata.default")).unwrap();
    assert_eq!(metadata, expected["metadata"]["default"]);
    assert_eq!(text(&span.attributes, "client.address"), "****");
    // The span attribute, the metadata attribute (two fields), and seven in the document.
    assert_eq!(int(&span.attributes, MASKED_COUNT), 10);
}

#[test]
fn xray_fields_of_keys_that_are_not_allowed_are_removed_but_ids_stay() {
    let doc = json!({
        "name": "api", "id": "70de5b6f19ff9a0a",
        "trace_id": "1-581cf771-a006649127e371903a2de979", "start_time": 1.0, "end_time": 2.0,
        "http": {"request": {"method": "GET", "client_ip": "203.0.113.9"}},
        "user": "u-1",
        "annotations": {"tier": "gold", "customer_id": "c"},
    });
    let r = rules(RedactionConfig {
        allowed_keys: vec!["http.request.method".into(), "tier".into()],
        ..Default::default()
    });
    let mut data = traces(xray_span(&doc));
    r.redact(&mut data);
    let span = only_span(data);
    let redacted: serde_json::Value =
        serde_json::from_str(text(&span.attributes, SEGMENT_DOCUMENT_ATTRIBUTE)).unwrap();
    assert_eq!(
        redacted,
        json!({
            "name": "api", "id": "70de5b6f19ff9a0a",
            "trace_id": "1-581cf771-a006649127e371903a2de979", "start_time": 1.0, "end_time": 2.0,
            "http": {"request": {"method": "GET"}},
            "annotations": {"tier": "gold"},
        })
    );
}

#[test]
fn an_unchanged_xray_document_keeps_its_exact_text() {
    let doc = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0,"annotations":{"z":1,"a":2}}"#;
    let span = Span {
        attributes: vec![s(SEGMENT_DOCUMENT_ATTRIBUTE, doc)],
        ..Default::default()
    };
    let mut data = traces(span);
    seed_rules().redact(&mut data);
    assert_eq!(
        text(&only_span(data).attributes, SEGMENT_DOCUMENT_ATTRIBUTE),
        doc
    );
}

#[test]
fn options_that_cannot_work_fail_naming_the_option() {
    let missing = std::env::temp_dir().join("aurastream-no-such-key-file");
    let short = key_file(b"short\n");
    let cases: Vec<(RedactionConfig, &str)> = vec![
        (
            RedactionConfig {
                blocked_values: vec!["(".into()],
                ..allow_all()
            },
            "`blocked_values`: `(` is not a valid regular expression",
        ),
        (
            RedactionConfig {
                blocked_key_patterns: vec!["[a-".into()],
                ..allow_all()
            },
            "`blocked_key_patterns`: `[a-`",
        ),
        (
            RedactionConfig {
                allowed_values: vec!["*".into()],
                ..allow_all()
            },
            "`allowed_values`",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::HmacSha256),
                hmac_key_file: Some(missing.clone()),
                hmac_key_env: Some("X".into()),
                ..allow_all()
            },
            "set one of `hmac_key_file` and `hmac_key_env`, not both",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::HmacSha256),
                hmac_key_file: Some(missing),
                ..allow_all()
            },
            "`hmac_key_file`: cannot read",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::HmacSha256),
                hmac_key_env: Some("AURASTREAM_TEST_UNSET_REDACTION_KEY".into()),
                ..allow_all()
            },
            "`hmac_key_env`: the environment variable AURASTREAM_TEST_UNSET_REDACTION_KEY is not set",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::HmacSha256),
                hmac_key_file: Some(short.path().to_owned()),
                ..allow_all()
            },
            "`hmac_key_file`: the HMAC key is 5 bytes; use at least 16",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::HmacSha256),
                ..allow_all()
            },
            "`hash_function: hmac-sha256` needs a key",
        ),
        (
            RedactionConfig {
                hash_function: Some(HashFunction::Sha256),
                hmac_key_env: Some("X".into()),
                ..allow_all()
            },
            "`hmac_key_env` is set but only `hash_function: hmac-sha256` uses a key",
        ),
    ];
    for (config, expected) in cases {
        let err = ProcessorFactory::validate(&config).expect_err(expected);
        assert!(
            err.to_string().contains(expected),
            "{err}\n  expected: {expected}"
        );
    }
    // The same errors, typed, from the rules themselves.
    let too_short = Rules::compile(&RedactionConfig {
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_file: Some(short.path().to_owned()),
        ..allow_all()
    });
    assert!(matches!(
        too_short,
        Err(RedactionError::KeyTooShort {
            option: "hmac_key_file",
            bytes: 5
        })
    ));
    let bad = Rules::compile(&RedactionConfig {
        blocked_values: vec!["ok".into(), "(".into()],
        ..allow_all()
    });
    assert!(matches!(
        bad,
        Err(RedactionError::BadPattern { option: "blocked_values", ref pattern, .. }) if pattern == "("
    ));
}

#[test]
fn options_are_read_with_the_contrib_names() {
    let yaml = "allow_all_keys: true\nallowed_keys: [a]\nignored_keys: [b]\n\
                blocked_key_patterns: ['^c$']\nblocked_values: ['d']\nallowed_values: ['e']\n\
                hash_function: hmac-sha256\nhmac_key_env: K\nsummary: debug\n";
    let config: RedactionConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert!(config.allow_all_keys);
    assert_eq!(config.hash_function, Some(HashFunction::HmacSha256));
    assert_eq!(config.summary, Summary::Debug);
    assert_eq!(config.hmac_key_env.as_deref(), Some("K"));
    let err = serde_yaml_ng::from_str::<RedactionConfig>("hash_function: md4\n").unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    let err = serde_yaml_ng::from_str::<RedactionConfig>("summary: loud\n").unwrap_err();
    assert!(err.to_string().contains("silent"), "{err}");
}

#[tokio::test]
async fn the_processor_redacts_every_batch_and_passes_every_item_on() {
    let config = RedactionConfig {
        blocked_key_patterns: vec!["^user_id$".into()],
        ..allow_all()
    };
    let processor = Box::new(RedactionProcessor {
        rules: Rules::compile(&config).unwrap(),
        lost: Counter::default(),
    });
    let (in_tx, in_rx) = mpsc::channel(4);
    let (out_tx, mut out_rx) = mpsc::channel(4);
    tokio::spawn(processor.run(in_rx, out_tx));
    let budget = ItemBudget::new(100, PromGauge::default(), PromGauge::default());
    for i in 0..3 {
        let data = traces(Span {
            name: format!("s{i}"),
            attributes: vec![s("user_id", "u-1")],
            ..Default::default()
        });
        in_tx
            .send(Batch {
                ticket: budget.try_admit(1).unwrap(),
                data,
            })
            .await
            .unwrap();
    }
    drop(in_tx);
    let mut names = Vec::new();
    while let Some(batch) = out_rx.recv().await {
        let span = only_span(batch.data);
        assert_eq!(text(&span.attributes, "user_id"), "****");
        names.push(span.name);
    }
    assert_eq!(names, ["s0", "s1", "s2"]);
}

/// The scan that lets an untouchable JSON body skip the parse must not let through a
/// blocked key that only occurs inside a nested object or an array.
#[test]
fn json_bodies_with_a_blocked_key_only_in_a_nested_object_are_redacted() {
    let body = r#"{"event_type":"login","data":{"items":[{"customer_id":"customer_7"}]}}"#;
    let mut data = log(Value::StringValue(body.into()), vec![]);
    seed_rules().redact(&mut data);
    let Some(Value::StringValue(out)) = only_log(data).body.unwrap().value else {
        panic!()
    };
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        parsed,
        json!({"event_type": "login", "data": {"items": [{"customer_id": "****"}]}})
    );
}

/// A JSON body without any sensitive key still has `blocked_values` masked in its values,
/// including values written with JSON escapes.
#[test]
fn json_bodies_with_a_sensitive_value_but_no_sensitive_key_are_masked() {
    let escaped = CARD.replacen('4', "\\u0034", 1);
    for body in [
        format!(r#"{{"note":"card {CARD}","n":[1,2.5,null,true]}}"#),
        format!(r#"{{"note":"card {escaped}"}}"#),
    ] {
        let mut data = log(Value::StringValue(body), vec![]);
        seed_rules().redact(&mut data);
        let record = only_log(data);
        let Some(Value::StringValue(out)) = record.body.unwrap().value else {
            panic!()
        };
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["note"], json!("card ****"));
        assert_eq!(int(&record.attributes, MASKED_COUNT), 1);
    }
}

/// A body the rules cannot touch keeps its exact text (not re-serialized) and gets no
/// summary; an ignored key in it is still counted.
#[test]
fn untouched_json_bodies_keep_their_exact_text() {
    let body = r#"{ "b": 1, "a": {"x": [true, null, "text"]} }"#;
    let mut data = log(Value::StringValue(body.into()), vec![]);
    seed_rules().redact(&mut data);
    let record = only_log(data);
    assert_eq!(
        record.body.unwrap().value,
        Some(Value::StringValue(body.into()))
    );
    assert!(record.attributes.is_empty());

    let ignoring = rules(RedactionConfig {
        ignored_keys: vec!["a".into()],
        ..allow_all()
    });
    let mut data = log(Value::StringValue(body.into()), vec![]);
    ignoring.redact(&mut data);
    let record = only_log(data);
    assert_eq!(int(&record.attributes, IGNORED_COUNT), 1);
}

/// Cached tokens are the tokens: the same value hashed twice in one batch, and again in
/// the next batch, gives the same HMAC as a fresh processor.
#[test]
fn cached_tokens_equal_fresh_hmacs() {
    let key = key_file(b"0123456789abcdef0123");
    let config = RedactionConfig {
        blocked_key_patterns: vec!["^user_id$".into()],
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_file: Some(key.path().to_path_buf()),
        ..allow_all()
    };
    let shared = rules(config.clone());
    let attributes = vec![s("user_id", "u-1"), s("x", "y")];
    let first = redact_span_attributes(&shared, attributes.clone());
    let again = redact_span_attributes(&shared, attributes.clone());
    let fresh = redact_span_attributes(&rules(config), attributes);
    assert_eq!(text(&first, "user_id"), text(&fresh, "user_id"));
    assert_eq!(text(&again, "user_id"), text(&fresh, "user_id"));
    assert_eq!(text(&fresh, "user_id").len(), 64);
}

fn redacted_body(rules: &Rules, body: &str) -> (String, Vec<KeyValue>) {
    let mut data = log(Value::StringValue(body.into()), vec![]);
    rules.redact(&mut data);
    let record = only_log(data);
    let Some(Value::StringValue(out)) = record.body.unwrap().value else {
        panic!("a text body")
    };
    (out, record.attributes)
}

/// A JSON body is rewritten where the rules change it and nowhere else: key order,
/// spacing and untouched escapes stay as sent.
#[test]
fn json_bodies_are_rewritten_only_where_a_value_changes() {
    let body = "{ \"z\": 1,  \"customer_id\" : \"c-9\",\n \"n\\u0061me\": \"caf\\u00e9\", \
                \"ip_address\": {\"v4\": [1, 2]}, \"user_id\": 42, \"note\": \"card \\u0034111111111111111\" }";
    let (out, attributes) = redacted_body(&seed_rules(), body);
    assert_eq!(
        out,
        "{ \"z\": 1,  \"customer_id\" : \"****\",\n \"n\\u0061me\": \"caf\\u00e9\", \
         \"ip_address\": \"****\", \"user_id\": \"****\", \"note\": \"card ****\" }"
    );
    assert_eq!(int(&attributes, MASKED_COUNT), 4);
    assert_eq!(
        text(&attributes, MASKED_KEYS),
        "customer_id,ip_address,note,user_id"
    );
}

/// Whole values masked by hash are the hash of the same text the map path hashes (a
/// string's contents, other values' compact JSON), so tokens join across both paths.
#[test]
fn json_bodies_hash_the_same_text_in_place_as_in_a_map() {
    let key = key_file(b"0123456789abcdef0123");
    let hashing = rules(RedactionConfig {
        blocked_key_patterns: vec!["^(customer_id|ip_address)$".into()],
        hash_function: Some(HashFunction::HmacSha256),
        hmac_key_file: Some(key.path().to_path_buf()),
        ..allow_all()
    });
    let (out, _) = redacted_body(
        &hashing,
        r#"{"customer_id": "c\u002d9", "ip_address": { "v4" : [1,2] }}"#,
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut attributes = vec![s("customer_id", "c-9"), s("ip_address", r#"{"v4":[1,2]}"#)];
    hashing.redact_attributes(&mut attributes, &mut hashing.tally());
    assert_eq!(
        parsed["customer_id"],
        json!(text(&attributes, "customer_id"))
    );
    assert_eq!(parsed["ip_address"], json!(text(&attributes, "ip_address")));
}

/// A body that needs a key removed, or is not one JSON object, takes the other paths, and
/// what the in-place walk counted before it gave up is not counted twice.
#[test]
fn json_bodies_the_in_place_walk_cannot_take_are_redacted_all_the_same() {
    let strict = rules(RedactionConfig {
        allowed_keys: vec!["event_type".into(), "customer_id".into()],
        blocked_key_patterns: vec!["^customer_id$".into()],
        summary: Summary::Debug,
        ..Default::default()
    });
    let (out, attributes) = redacted_body(
        &strict,
        r#"{"customer_id":"c-1","event_type":"login","secret":"s"}"#,
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        parsed,
        json!({"customer_id": "****", "event_type": "login"})
    );
    assert_eq!(int(&attributes, MASKED_COUNT), 1);
    assert_eq!(int(&attributes, REDACTED_COUNT), 1);

    for (body, expected) in [
        (
            format!(r#"{{"note":"{CARD}"}} trailing {CARD}"#),
            "{\"note\":\"****\"} trailing ****".to_owned(),
        ),
        (format!(r#"["{CARD}"]"#), r#"["****"]"#.to_owned()),
        (
            format!(r#"{{"note":"{CARD}""#),
            r#"{"note":"****""#.to_owned(),
        ),
    ] {
        let (out, attributes) = redacted_body(&seed_rules(), &body);
        assert_eq!(out, expected, "{body}");
        assert_eq!(int(&attributes, MASKED_COUNT), 1, "{body}");
    }
}

/// The one scan of a whole JSON body that lets its strings skip `blocked_values` must
/// never hide a match: an anchored pattern matches a string but not the whole text, an
/// escaped value reads differently in the text, and `\b` must see a string's edges.
#[test]
fn json_body_strings_are_checked_even_when_the_whole_text_shows_no_match() {
    let anchored = rules(RedactionConfig {
        blocked_values: vec!["^secret$".into(), "(?m)^tok-[0-9]+$".into()],
        ..allow_all()
    });
    let (out, attributes) = redacted_body(&anchored, r#"{"a":"secret","b":"tok-42","c":"x"}"#);
    assert_eq!(out, r#"{"a":"****","b":"****","c":"x"}"#);
    assert_eq!(int(&attributes, MASKED_COUNT), 2);

    // The shipped patterns: a card number between word boundaries, an e-mail address.
    let shipped = rules(RedactionConfig {
        blocked_values: vec![
            r"\b(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14})\b".into(),
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}".into(),
        ],
        ..allow_all()
    });
    let (out, _) = redacted_body(&shipped, r#"{"mail":"ann\u0040example.com","n":1}"#);
    assert_eq!(out, r#"{"mail":"****","n":1}"#);

    let (out, _) = redacted_body(&shipped, &format!(r#"{{"card":"{CARD}","n":"x{CARD}"}}"#));
    assert_eq!(out, format!(r#"{{"card":"****","n":"x{CARD}"}}"#));

    let (out, attributes) = redacted_body(&shipped, r#"{"event":"login","n":7}"#);
    assert_eq!(out, r#"{"event":"login","n":7}"#);
    assert!(get(&attributes, MASKED_COUNT).is_none());
}
