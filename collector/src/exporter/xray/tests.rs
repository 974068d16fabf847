//! Translation rules, one table row per rule, asserting on the document's fields.

use serde_json::{Value as J, json};

use crate::component::Reason;
use aurastream_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, Link, SpanKind},
    status::StatusCode,
};
use aurastream_proto::xray::{MAX_DOCUMENT_BYTES, SegmentDocument};

use super::config::{OutputDestination, XrayExporterConfig};
use super::translate::{Skip, Translator, ids};
use super::{ExportError, Exporter, XrayExporter, trim};
use crate::model::SignalData;
use crate::telemetry::metrics::SelfMetrics;

const TRACE_ID: [u8; 16] = [
    0x58, 0x1c, 0xf7, 0x71, 0xa0, 0x06, 0x64, 0x91, 0x27, 0xe3, 0x71, 0x90, 0x3a, 0x2d, 0xe9, 0x79,
];
const SPAN_ID: [u8; 8] = [0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8];
const PARENT_ID: [u8; 8] = [0xde, 0xfd, 0xae, 0x91, 0x2c, 0x34, 0x0b, 0x4a];
const START: u64 = 1_700_000_000_123_456_789;
const END: u64 = 1_700_000_000_623_456_000;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}
fn f(key: &str, v: f64) -> KeyValue {
    kv(key, Value::DoubleValue(v))
}
fn b(key: &str, v: bool) -> KeyValue {
    kv(key, Value::BoolValue(v))
}
fn list(key: &str, v: &[&str]) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: v
                .iter()
                .map(|s| AnyValue {
                    value: Some(Value::StringValue((*s).into())),
                })
                .collect(),
        }),
    )
}

fn span(kind: SpanKind, has_parent: bool, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        parent_span_id: if has_parent {
            PARENT_ID.to_vec()
        } else {
            Vec::new()
        },
        name: "GET /orders/{id}".into(),
        kind: kind as i32,
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        attributes,
        ..Default::default()
    }
}

fn failed(mut span: Span, message: &str) -> Span {
    span.status = Some(Status {
        code: StatusCode::Error as i32,
        message: message.into(),
    });
    span
}

fn resource(attributes: Vec<KeyValue>) -> Resource {
    Resource {
        attributes,
        ..Default::default()
    }
}

fn service_resource() -> Vec<KeyValue> {
    vec![
        s("service.name", "checkout"),
        s("cloud.region", "eu-west-1"),
    ]
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The rules X-Ray checks on every document, applied to every document these tests make.
fn assert_valid(doc: &J) {
    let text = serde_json::to_string(doc).unwrap();
    assert!(text.len() <= MAX_DOCUMENT_BYTES, "{} bytes", text.len());
    assert!(is_hex(doc["id"].as_str().unwrap(), 16), "id in {doc}");
    let trace_id = doc["trace_id"].as_str().unwrap();
    let parts: Vec<&str> = trace_id.split('-').collect();
    assert!(
        parts.len() == 3 && parts[0] == "1" && is_hex(parts[1], 8) && is_hex(parts[2], 24),
        "trace_id {trace_id}"
    );
    let name = doc["name"].as_str().unwrap();
    assert!(
        !name.trim().is_empty() && name.chars().count() <= 200,
        "name {name:?}"
    );
    assert!(
        name.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)),
        "name {name:?}"
    );
    assert!(doc["start_time"].as_f64().unwrap() <= doc["end_time"].as_f64().unwrap());
    assert!(doc.get("in_progress").is_none());
    if doc.get("type").is_some() {
        assert_eq!(doc["type"], "subsegment");
        assert!(
            is_hex(doc["parent_id"].as_str().unwrap(), 16),
            "parent_id in {doc}"
        );
    }
    if let Some(annotations) = doc.get("annotations").and_then(J::as_object) {
        assert!(annotations.len() <= 50);
        for (k, v) in annotations {
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "key {k}"
            );
            assert!(v.is_string() || v.is_number() || v.is_boolean(), "{k}: {v}");
        }
    }
    if let Some(exceptions) = doc.pointer("/cause/exceptions").and_then(J::as_array) {
        for e in exceptions {
            assert!(is_hex(e["id"].as_str().unwrap(), 16), "exception id in {e}");
        }
    }
}

fn translate_with(config: &XrayExporterConfig, res: Vec<KeyValue>, span: &Span) -> J {
    let doc = Translator::new(config)
        .translate(Some(&resource(res)), span, now())
        .expect("translated");
    let doc = serde_json::to_value(doc).unwrap();
    assert_valid(&doc);
    doc
}

fn translate(res: Vec<KeyValue>, span: &Span) -> J {
    translate_with(&XrayExporterConfig::default(), res, span)
}

/// `(json pointer, expected value)` pairs.
type Expect = Vec<(&'static str, J)>;

/// Checks `(json pointer, expected)` pairs; `J::Null` means "absent".
fn check(case: &str, doc: &J, expect: &[(&str, J)]) {
    for (pointer, want) in expect {
        let got = doc.pointer(pointer).cloned().unwrap_or(J::Null);
        assert_eq!(&got, want, "{case}: {pointer} in {doc:#}");
    }
}

#[test]
fn ids_times_and_segment_kinds() {
    let cases: Vec<(&str, Span, Expect)> = vec![
        (
            "root span is a segment named after the service",
            span(SpanKind::Internal, false, vec![]),
            vec![
                ("/trace_id", json!("1-581cf771-a006649127e371903a2de979")),
                ("/id", json!("53995c3f42cd8ad8")),
                ("/start_time", json!(1_700_000_000.123_456)),
                ("/end_time", json!(1_700_000_000.623_456)),
                ("/name", json!("checkout")),
                ("/type", J::Null),
                ("/parent_id", J::Null),
                ("/in_progress", J::Null),
                ("/namespace", J::Null),
            ],
        ),
        (
            "server span with a remote parent is a segment with parent_id",
            span(SpanKind::Server, true, vec![]),
            vec![
                ("/name", json!("checkout")),
                ("/type", J::Null),
                ("/parent_id", json!("defdae912c340b4a")),
            ],
        ),
        (
            "internal child is a subsegment named after the span",
            span(SpanKind::Internal, true, vec![]),
            vec![
                ("/type", json!("subsegment")),
                ("/parent_id", json!("defdae912c340b4a")),
                ("/trace_id", json!("1-581cf771-a006649127e371903a2de979")),
                ("/name", json!("GET /orders/id")),
                ("/namespace", J::Null),
            ],
        ),
        (
            "consumer child is a subsegment without namespace",
            span(SpanKind::Consumer, true, vec![]),
            vec![("/type", json!("subsegment")), ("/namespace", J::Null)],
        ),
    ];
    for (case, span, expect) in cases {
        check(case, &translate(service_resource(), &span), &expect);
    }
}

#[test]
fn end_before_start_is_clamped() {
    let mut sp = span(SpanKind::Internal, false, vec![]);
    sp.end_time_unix_nano = 0;
    let doc = translate(service_resource(), &sp);
    assert_eq!(doc["end_time"], doc["start_time"]);
}

#[test]
fn names_of_outgoing_calls() {
    let cases: Vec<(&str, Vec<KeyValue>, &str)> = vec![
        (
            "peer.service wins",
            vec![
                s("peer.service", "inventory"),
                s("server.address", "10.0.0.1"),
            ],
            "inventory",
        ),
        (
            "AWS SDK call: aws.service",
            vec![s("aws.service", "S3"), s("rpc.service", "Other")],
            "S3",
        ),
        (
            "AWS SDK call: rpc.service with rpc.system aws-api",
            vec![s("rpc.system", "aws-api"), s("rpc.service", "DynamoDB")],
            "DynamoDB",
        ),
        (
            "database: db.name@host",
            vec![
                s("db.system", "postgresql"),
                s("db.name", "orders"),
                s("net.peer.name", "db.internal"),
            ],
            "orders@db.internal",
        ),
        (
            "database, new conventions",
            vec![
                s("db.system.name", "mysql"),
                s("db.namespace", "shop"),
                s("server.address", "mysql"),
            ],
            "shop@mysql",
        ),
        (
            "rpc.service",
            vec![s("rpc.system", "grpc"), s("rpc.service", "shop.Cart")],
            "shop.Cart",
        ),
        (
            "server.address",
            vec![s("server.address", "api.example.com")],
            "api.example.com",
        ),
        (
            "host of http.url",
            vec![s(
                "http.url",
                "https://user@pay.example.com:8443/charge?x=1",
            )],
            "pay.example.com",
        ),
        ("span name as the last resort", vec![], "GET /orders/id"),
    ];
    for (case, attrs, want) in cases {
        for kind in [SpanKind::Client, SpanKind::Producer] {
            let doc = translate(service_resource(), &span(kind, true, attrs.clone()));
            assert_eq!(doc["name"], want, "{case} ({kind:?})");
        }
    }
}

#[test]
fn names_are_sanitized_and_bounded() {
    let mut sp = span(SpanKind::Internal, true, vec![]);
    sp.name = format!("<select>*{}", "n".repeat(300));
    let doc = translate(vec![], &sp);
    let name = doc["name"].as_str().unwrap();
    assert!(name.starts_with("selectn"), "{name}");
    assert_eq!(name.chars().count(), 200);
    let root = translate(vec![], &span(SpanKind::Server, false, vec![]));
    assert_eq!(root["name"], "GET /orders/id", "no service.name: span name");
}

#[test]
fn namespaces() {
    let cases = [
        (
            vec![s("rpc.system", "aws-api"), s("rpc.service", "SQS")],
            "aws",
        ),
        (vec![s("aws.service", "SNS")], "aws"),
        (vec![s("http.request.method", "GET")], "remote"),
        (vec![s("db.system", "postgresql")], "remote"),
    ];
    for (attrs, want) in cases {
        let doc = translate(
            service_resource(),
            &span(SpanKind::Client, true, attrs.clone()),
        );
        assert_eq!(doc["namespace"], want, "{attrs:?}");
    }
}

#[test]
fn http_block_from_old_and_new_conventions() {
    let cases: Vec<(&str, SpanKind, Vec<KeyValue>, Expect)> = vec![
        (
            "new client conventions, URL rebuilt with port and query",
            SpanKind::Client,
            vec![
                s("http.request.method", "GET"),
                s("url.scheme", "https"),
                s("server.address", "api.example.com"),
                i("server.port", 8443),
                s("url.path", "/v1/items"),
                s("url.query", "page=2"),
                i("http.response.status_code", 200),
                i("http.response.body.size", 512),
            ],
            vec![
                ("/http/request/method", json!("GET")),
                (
                    "/http/request/url",
                    json!("https://api.example.com:8443/v1/items?page=2"),
                ),
                ("/http/response/status", json!(200)),
                ("/http/response/content_length", json!(512)),
                ("/error", J::Null),
                ("/fault", J::Null),
                ("/metadata/default/url.path", J::Null),
                ("/metadata/default/http.request.method", J::Null),
            ],
        ),
        (
            "url.full wins; default port left out",
            SpanKind::Client,
            vec![
                s("http.request.method", "POST"),
                s("url.full", "https://pay.example.com/charge"),
                s("server.address", "pay.example.com"),
                i("server.port", 443),
            ],
            vec![
                ("/http/request/method", json!("POST")),
                ("/http/request/url", json!("https://pay.example.com/charge")),
                ("/http/response", J::Null),
            ],
        ),
        (
            "old client conventions",
            SpanKind::Client,
            vec![
                s("http.method", "PUT"),
                s("http.url", "http://inventory:8080/items/7"),
                i("http.status_code", 201),
                i("http.response_content_length", 17),
            ],
            vec![
                ("/http/request/method", json!("PUT")),
                ("/http/request/url", json!("http://inventory:8080/items/7")),
                ("/http/response/status", json!(201)),
                ("/http/response/content_length", json!(17)),
            ],
        ),
        (
            "new server conventions",
            SpanKind::Server,
            vec![
                s("http.request.method", "GET"),
                s("url.scheme", "http"),
                s("server.address", "shop.example.com"),
                i("server.port", 80),
                s("url.path", "/orders/7"),
                s("client.address", "203.0.113.9"),
                s("user_agent.original", "curl/8.5"),
                i("http.response.status_code", 200),
            ],
            vec![
                (
                    "/http/request/url",
                    json!("http://shop.example.com/orders/7"),
                ),
                ("/http/request/client_ip", json!("203.0.113.9")),
                ("/http/request/x_forwarded_for", J::Null),
                ("/http/request/user_agent", json!("curl/8.5")),
            ],
        ),
        (
            "old server conventions: http.target + http.host, forwarded client ip",
            SpanKind::Server,
            vec![
                s("http.method", "GET"),
                s("http.scheme", "https"),
                s("http.host", "shop.example.com:8443"),
                s("http.target", "/orders?id=7"),
                s("http.client_ip", "198.51.100.7"),
                s("http.user_agent", "Mozilla/5.0"),
                kv("http.status_code", Value::StringValue("200".into())),
            ],
            vec![
                (
                    "/http/request/url",
                    json!("https://shop.example.com:8443/orders?id=7"),
                ),
                ("/http/request/client_ip", json!("198.51.100.7")),
                ("/http/request/x_forwarded_for", json!(true)),
                ("/http/request/user_agent", json!("Mozilla/5.0")),
                ("/http/response/status", json!(200)),
            ],
        ),
        (
            "server peer address as client ip",
            SpanKind::Server,
            vec![s("http.method", "GET"), s("net.sock.peer.addr", "10.1.2.3")],
            vec![("/http/request/client_ip", json!("10.1.2.3"))],
        ),
        (
            "unknown method: the original is shown",
            SpanKind::Client,
            vec![
                s("http.request.method", "_OTHER"),
                s("http.request.method_original", "PURGE"),
            ],
            vec![
                ("/http/request/method", json!("PURGE")),
                ("/metadata/default/http.request.method_original", J::Null),
            ],
        ),
        (
            "no HTTP attributes, no http block",
            SpanKind::Client,
            vec![s("user_agent.original", "x")],
            vec![("/http", J::Null)],
        ),
        (
            "a database call's server address is not an HTTP call",
            SpanKind::Client,
            vec![
                s("db.system", "postgresql"),
                s("server.address", "db.internal"),
                i("server.port", 5432),
            ],
            vec![("/http", J::Null), ("/sql/url", json!("db.internal:5432"))],
        ),
        (
            "an RPC call's old peer name is not an HTTP call",
            SpanKind::Client,
            vec![
                s("rpc.system", "grpc"),
                s("net.peer.name", "ledger"),
                i("net.peer.port", 50051),
            ],
            vec![
                ("/http", J::Null),
                ("/metadata/default/net.peer.name", json!("ledger")),
            ],
        ),
        (
            "a path alone is enough",
            SpanKind::Server,
            vec![s("url.path", "/health")],
            vec![("/http/request/url", json!("/health"))],
        ),
    ];
    for (case, kind, attrs, expect) in cases {
        check(
            case,
            &translate(service_resource(), &span(kind, true, attrs)),
            &expect,
        );
    }
}

#[test]
fn error_throttle_fault_flags() {
    let cases: Vec<(&str, Span, bool, bool, bool)> = vec![
        (
            "200",
            span(
                SpanKind::Server,
                false,
                vec![i("http.response.status_code", 200)],
            ),
            false,
            false,
            false,
        ),
        (
            "404",
            span(
                SpanKind::Server,
                false,
                vec![i("http.response.status_code", 404)],
            ),
            true,
            false,
            false,
        ),
        (
            "429",
            span(SpanKind::Client, true, vec![i("http.status_code", 429)]),
            true,
            true,
            false,
        ),
        (
            "503",
            span(SpanKind::Server, false, vec![i("http.status_code", 503)]),
            false,
            false,
            true,
        ),
        (
            "500 as a string",
            span(
                SpanKind::Server,
                false,
                vec![s("http.response.status_code", "500")],
            ),
            false,
            false,
            true,
        ),
        (
            "ERROR without a code",
            failed(span(SpanKind::Internal, true, vec![]), ""),
            false,
            false,
            true,
        ),
        (
            "ERROR with a 4xx code stays a client error",
            failed(
                span(
                    SpanKind::Server,
                    false,
                    vec![i("http.response.status_code", 400)],
                ),
                "",
            ),
            true,
            false,
            false,
        ),
    ];
    for (case, sp, error, throttle, fault) in cases {
        let doc = translate(service_resource(), &sp);
        let flag = |k: &str| doc.get(k).and_then(J::as_bool).unwrap_or(false);
        assert_eq!(
            (flag("error"), flag("throttle"), flag("fault")),
            (error, throttle, fault),
            "{case}"
        );
    }
}

fn exception(kind: &str, message: &str, stacktrace: &str) -> Event {
    Event {
        name: "exception".into(),
        time_unix_nano: START + 1,
        attributes: vec![
            s("exception.type", kind),
            s("exception.message", message),
            s("exception.stacktrace", stacktrace),
        ],
        ..Default::default()
    }
}

#[test]
fn exceptions_become_the_cause() {
    let mut sp = failed(
        span(SpanKind::Client, true, vec![s("http.method", "GET")]),
        "boom",
    );
    sp.events = vec![
        exception(
            "java.lang.IllegalStateException",
            "no card",
            "java.lang.IllegalStateException: no card\n\tat com.shop.Checkout.pay(Checkout.java:42)\n",
        ),
        exception("ValueError", "second", ""),
    ];
    let doc = translate(
        vec![
            s("service.name", "checkout"),
            s("telemetry.sdk.language", "java"),
        ],
        &sp,
    );
    let exceptions = doc["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 2);
    let first = &exceptions[0];
    assert_eq!(first["type"], "java.lang.IllegalStateException");
    assert_eq!(first["message"], "no card");
    assert_eq!(
        first["remote"], true,
        "client spans record remote exceptions"
    );
    assert_eq!(
        first["stack"],
        json!([{"path": "Checkout.java", "line": 42, "label": "com.shop.Checkout.pay"}])
    );
    let id = first["id"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first["id"], exceptions[1]["id"]);
    assert_eq!(exceptions[1]["stack"], J::Null);
    assert_eq!(doc["fault"], true);
    assert!(
        doc.pointer("/metadata/default/otel.events").is_none(),
        "exception events are not repeated as metadata"
    );
    // Same span, same ids: a retried document is identical.
    assert_eq!(
        translate(vec![s("service.name", "checkout")], &sp)["cause"]["exceptions"][0]["id"],
        first["id"]
    );
}

#[test]
fn status_message_is_the_cause_without_exception_events() {
    let doc = translate(
        service_resource(),
        &failed(span(SpanKind::Server, false, vec![]), "db down"),
    );
    assert_eq!(doc["cause"]["exceptions"][0]["message"], "db down");
    assert_eq!(doc["cause"]["exceptions"][0]["remote"], J::Null);
    let ok = translate(service_resource(), &span(SpanKind::Server, false, vec![]));
    assert_eq!(ok["cause"], J::Null);
}

#[test]
fn long_stacks_are_truncated() {
    let text: String = (0..80)
        .map(|n| format!("    at f{n} (/app/x.js:{n}:1)\n"))
        .collect();
    let mut sp = span(SpanKind::Internal, true, vec![]);
    sp.events = vec![exception("Error", "deep", &text)];
    let doc = translate(vec![s("telemetry.sdk.language", "nodejs")], &sp);
    let e = &doc["cause"]["exceptions"][0];
    assert_eq!(e["stack"].as_array().unwrap().len(), 50);
    assert_eq!(e["truncated"], 30);
    assert_eq!(
        e["stack"][0],
        json!({"path": "/app/x.js", "line": 0, "label": "f0"})
    );
}

#[test]
fn aws_sdk_calls() {
    let cases: Vec<(&str, Vec<KeyValue>, Expect)> = vec![
        (
            "DynamoDB, rpc conventions",
            vec![
                s("rpc.system", "aws-api"),
                s("rpc.service", "DynamoDB"),
                s("rpc.method", "GetItem"),
                list("aws.dynamodb.table_names", &["orders"]),
                s("aws.request_id", "REQ123"),
            ],
            vec![
                ("/name", json!("DynamoDB")),
                ("/namespace", json!("aws")),
                ("/aws/operation", json!("GetItem")),
                ("/aws/table_name", json!("orders")),
                ("/aws/table_names", J::Null),
                ("/aws/request_id", json!("REQ123")),
                ("/aws/region", json!("eu-west-1")),
                ("/metadata/default/rpc.method", J::Null),
            ],
        ),
        (
            "SQS with aws.* attributes and an explicit region",
            vec![
                s("aws.service", "SQS"),
                s("aws.operation", "SendMessage"),
                s("aws.region", "us-east-2"),
                s("aws.account_id", "210987654321"),
                s(
                    "aws.sqs.queue_url",
                    "https://sqs.us-east-2.amazonaws.com/123/q",
                ),
            ],
            vec![
                ("/name", json!("SQS")),
                ("/aws/operation", json!("SendMessage")),
                ("/aws/region", json!("us-east-2")),
                ("/aws/account_id", json!("210987654321")),
                (
                    "/aws/queue_url",
                    json!("https://sqs.us-east-2.amazonaws.com/123/q"),
                ),
            ],
        ),
        (
            "legacy messaging.url and several tables",
            vec![
                s("rpc.system", "aws-api"),
                s("rpc.service", "DynamoDB"),
                s("messaging.url", "https://sqs/q"),
                list("aws.dynamodb.table_names", &["a", "b"]),
            ],
            vec![
                ("/aws/queue_url", json!("https://sqs/q")),
                ("/aws/table_name", J::Null),
                ("/aws/table_names", json!(["a", "b"])),
            ],
        ),
        (
            "not an AWS call: no aws block on a subsegment",
            vec![s("http.method", "GET")],
            vec![("/aws", J::Null)],
        ),
    ];
    for (case, attrs, expect) in cases {
        check(
            case,
            &translate(service_resource(), &span(SpanKind::Client, true, attrs)),
            &expect,
        );
    }
}

#[test]
fn sql_block_for_sql_databases_only() {
    let cases: Vec<(&str, Vec<KeyValue>, Expect)> = vec![
        (
            "old conventions",
            vec![
                s("db.system", "postgresql"),
                s("db.name", "orders"),
                s("net.peer.name", "db.internal"),
                i("net.peer.port", 5432),
                s("db.statement", "SELECT * FROM orders WHERE id = ?"),
                s("db.user", "app"),
            ],
            vec![
                ("/sql/url", json!("db.internal:5432/orders")),
                (
                    "/sql/sanitized_query",
                    json!("SELECT * FROM orders WHERE id = ?"),
                ),
                ("/sql/database_type", json!("postgresql")),
                ("/sql/user", json!("app")),
                ("/metadata/default/db.statement", J::Null),
            ],
        ),
        (
            "new conventions",
            vec![
                s("db.system.name", "mysql"),
                s("db.namespace", "shop"),
                s("server.address", "mysql"),
                s("db.query.text", "UPDATE cart SET n = ?"),
            ],
            vec![
                ("/sql/url", json!("mysql/shop")),
                ("/sql/sanitized_query", json!("UPDATE cart SET n = ?")),
                ("/sql/database_type", json!("mysql")),
            ],
        ),
        (
            "connection string wins",
            vec![
                s("db.system", "mssql"),
                s("db.connection_string", "Server=sql;Database=x"),
            ],
            vec![("/sql/url", json!("Server=sql;Database=x"))],
        ),
        (
            "redis is not SQL",
            vec![s("db.system", "redis"), s("db.statement", "GET k")],
            vec![
                ("/sql", J::Null),
                ("/metadata/default/db.statement", json!("GET k")),
            ],
        ),
    ];
    for (case, attrs, expect) in cases {
        check(
            case,
            &translate(service_resource(), &span(SpanKind::Client, true, attrs)),
            &expect,
        );
    }
}

#[test]
fn origin_from_cloud_platform() {
    let cases = [
        (
            vec![s("cloud.platform", "aws_lambda")],
            json!("AWS::Lambda::Function"),
        ),
        (
            vec![
                s("cloud.platform", "aws_ecs"),
                s("aws.ecs.launchtype", "fargate"),
            ],
            json!("AWS::ECS::Fargate"),
        ),
        (
            vec![
                s("cloud.platform", "aws_ecs"),
                s("aws.ecs.launchtype", "ec2"),
            ],
            json!("AWS::ECS::EC2"),
        ),
        // The name this translator used to read is still understood.
        (
            vec![
                s("cloud.platform", "aws_ecs"),
                s("aws.ecs.launch_type", "fargate"),
            ],
            json!("AWS::ECS::Fargate"),
        ),
        (
            vec![s("cloud.platform", "aws_ecs")],
            json!("AWS::ECS::Container"),
        ),
        (
            vec![s("cloud.platform", "aws_app_runner")],
            json!("AWS::AppRunner::Service"),
        ),
        (
            vec![s("cloud.platform", "aws_ec2")],
            json!("AWS::EC2::Instance"),
        ),
        (
            vec![s("cloud.platform", "aws_eks")],
            json!("AWS::EKS::Container"),
        ),
        (
            vec![s("cloud.platform", "aws_elastic_beanstalk")],
            json!("AWS::ElasticBeanstalk::Environment"),
        ),
        (vec![s("cloud.platform", "gcp_compute_engine")], J::Null),
        (vec![], J::Null),
    ];
    for (res, want) in cases {
        let doc = translate(res.clone(), &span(SpanKind::Server, false, vec![]));
        assert_eq!(doc["origin"], want, "{res:?}");
        let sub = translate(res.clone(), &span(SpanKind::Internal, true, vec![]));
        assert_eq!(sub["origin"], J::Null, "subsegments have no origin");
    }
}

#[test]
fn aws_resource_context_on_segments() {
    let common = || {
        vec![
            s("service.name", "checkout"),
            s("cloud.account.id", "123456789012"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "rust"),
            s("telemetry.sdk.version", "0.33.0"),
        ]
    };
    let with = |extra: Vec<KeyValue>| {
        let mut r = common();
        r.extend(extra);
        r
    };
    let cases: Vec<(&str, Vec<KeyValue>, Vec<KeyValue>, Expect)> = vec![
        (
            "EC2",
            with(vec![
                s("cloud.platform", "aws_ec2"),
                s("host.id", "i-0abc"),
                s("cloud.availability_zone", "eu-west-1a"),
                s("host.type", "m7g.large"),
                s("host.image.id", "ami-1"),
            ]),
            vec![],
            vec![
                ("/aws/account_id", json!("123456789012")),
                (
                    "/aws/ec2",
                    json!({"instance_id": "i-0abc", "availability_zone": "eu-west-1a", "instance_size": "m7g.large", "ami_id": "ami-1"}),
                ),
                ("/aws/xray/sdk", json!("opentelemetry for rust")),
                ("/aws/xray/sdk_version", json!("0.33.0")),
            ],
        ),
        (
            "ECS",
            with(vec![
                s("cloud.platform", "aws_ecs"),
                s("container.name", "web"),
                s("container.id", "c0ffee"),
                s(
                    "aws.ecs.cluster.arn",
                    "arn:aws:ecs:eu-west-1:123:cluster/shop",
                ),
                s("aws.ecs.task.arn", "arn:task"),
                s("aws.ecs.container.arn", "arn:container-instance"),
                s("aws.ecs.launchtype", "fargate"),
            ]),
            vec![],
            vec![
                ("/aws/ecs/container", json!("web")),
                ("/aws/ecs/container_id", json!("c0ffee")),
                ("/aws/ecs/container_arn", json!("arn:container-instance")),
                (
                    "/aws/ecs/cluster",
                    json!("arn:aws:ecs:eu-west-1:123:cluster/shop"),
                ),
                ("/aws/ecs/task_arn", json!("arn:task")),
                ("/aws/ecs/launch_type", json!("fargate")),
            ],
        ),
        (
            "EKS",
            with(vec![
                s("cloud.platform", "aws_eks"),
                s("k8s.cluster.name", "prod"),
                s("k8s.pod.name", "web-1"),
                s("container.id", "abc"),
            ]),
            vec![],
            vec![(
                "/aws/eks",
                json!({"cluster_name": "prod", "pod": "web-1", "container_id": "abc"}),
            )],
        ),
        (
            "Elastic Beanstalk",
            with(vec![
                s("cloud.platform", "aws_elastic_beanstalk"),
                s("service.namespace", "prod-env"),
                s("service.version", "v42"),
                s("service.instance.id", "17"),
            ]),
            vec![],
            vec![
                (
                    "/aws/elastic_beanstalk",
                    json!({"environment_name": "prod-env", "version_label": "v42", "deployment_id": 17}),
                ),
                ("/service/version", json!("v42")),
            ],
        ),
        (
            "Lambda: function, invocation id as request id",
            with(vec![
                s("cloud.platform", "aws_lambda"),
                s("faas.name", "pay"),
                s(
                    "cloud.resource_id",
                    "arn:aws:lambda:eu-west-1:123:function:pay",
                ),
            ]),
            vec![s("faas.invocation_id", "af9c3b"), b("faas.coldstart", true)],
            vec![
                (
                    "/aws/function_arn",
                    json!("arn:aws:lambda:eu-west-1:123:function:pay"),
                ),
                ("/aws/resource_names", json!(["pay"])),
                ("/aws/request_id", json!("af9c3b")),
                ("/metadata/default/faas.coldstart", json!(true)),
            ],
        ),
        (
            "log groups from the resource",
            with(vec![
                list("aws.log.group.names", &["/app/a"]),
                list("aws.log.group.arns", &["arn:logs:a"]),
            ]),
            vec![],
            vec![(
                "/aws/cloudwatch_logs",
                json!([{"log_group": "/app/a", "arn": "arn:logs:a"}]),
            )],
        ),
        (
            "user and service version",
            with(vec![s("service.version", "1.2.3")]),
            vec![s("enduser.id", "alice")],
            vec![
                ("/user", json!("alice")),
                ("/service/version", json!("1.2.3")),
            ],
        ),
    ];
    for (case, res, attrs, expect) in cases {
        check(
            case,
            &translate(res, &span(SpanKind::Server, false, attrs)),
            &expect,
        );
    }
    // The resource's environment is not repeated on every subsegment.
    let sub = translate(
        with(vec![s("cloud.platform", "aws_ec2"), s("host.id", "i-0abc")]),
        &span(SpanKind::Internal, true, vec![s("enduser.id", "alice")]),
    );
    assert_eq!(sub["aws"], J::Null);
    assert_eq!(sub["user"], J::Null);
    assert_eq!(sub["metadata"]["default"]["enduser.id"], "alice");
}

#[test]
fn log_groups_from_config() {
    let config = XrayExporterConfig {
        aws_log_groups: vec!["/ecs/checkout".into()],
        ..Default::default()
    };
    let doc = translate_with(
        &config,
        service_resource(),
        &span(SpanKind::Server, false, vec![]),
    );
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/ecs/checkout"}])
    );
}

#[test]
fn log_group_templates_are_filled_from_the_resource() {
    let config = XrayExporterConfig {
        aws_log_groups: vec![
            "/aws/aurastream/{service.name}".into(),
            "/aws/ecs/{aws.ecs.cluster.name}".into(),
            "/aws/k8s/{k8s.namespace.name:-default}".into(),
            "/aws/aurastream/checkout".into(),
        ],
        ..Default::default()
    };
    let server = span(SpanKind::Server, false, vec![]);
    // The cluster is unknown, so its group is left out; the others are listed once.
    let doc = translate_with(&config, service_resource(), &server);
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([
            {"log_group": "/aws/aurastream/checkout"},
            {"log_group": "/aws/k8s/default"},
        ])
    );
    let mut res = service_resource();
    res.push(s("aws.ecs.cluster.name", "shop"));
    let doc = translate_with(&config, res.clone(), &server);
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([
            {"log_group": "/aws/aurastream/checkout"},
            {"log_group": "/aws/ecs/shop"},
            {"log_group": "/aws/k8s/default"},
        ])
    );
    // The resource's own list wins over the configured one.
    res.push(list("aws.log.group.names", &["/app/own"]));
    let doc = translate_with(&config, res, &server);
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/app/own"}])
    );
}

/// Every resource-derived segment field, from a resource built with the semantic
/// conventions' own attribute names: a key the translator misspells (as it once read
/// `aws.ecs.launch_type` for `aws.ecs.launchtype`) leaves a field empty and fails here.
#[test]
fn resource_fields_come_from_semantic_convention_names() {
    use opentelemetry_semantic_conventions::attribute as sc;
    let base = |platform: &str| {
        vec![
            s(sc::SERVICE_NAME, "checkout"),
            s(sc::CLOUD_PLATFORM, platform),
            s(sc::CLOUD_ACCOUNT_ID, "123456789012"),
            s(sc::TELEMETRY_SDK_NAME, "opentelemetry"),
            s(sc::TELEMETRY_SDK_LANGUAGE, "python"),
            s(sc::TELEMETRY_SDK_VERSION, "1.45.2"),
            list(sc::AWS_LOG_GROUP_NAMES, &["/app/a"]),
            list(sc::AWS_LOG_GROUP_ARNS, &["arn:logs:a"]),
        ]
    };
    let with = |platform: &str, extra: Vec<KeyValue>| {
        let mut r = base(platform);
        r.extend(extra);
        r
    };
    let common = |mut expect: Expect| {
        expect.extend([
            ("/aws/account_id", json!("123456789012")),
            ("/aws/xray/sdk", json!("opentelemetry for python")),
            ("/aws/xray/sdk_version", json!("1.45.2")),
            (
                "/aws/cloudwatch_logs",
                json!([{"log_group": "/app/a", "arn": "arn:logs:a"}]),
            ),
        ]);
        expect
    };
    let cases: Vec<(&str, Vec<KeyValue>, Expect)> = vec![
        (
            "EC2",
            with(
                "aws_ec2",
                vec![
                    s(sc::HOST_ID, "i-0abc"),
                    s(sc::CLOUD_AVAILABILITY_ZONE, "eu-west-1a"),
                    s(sc::HOST_TYPE, "m7g.large"),
                    s(sc::HOST_IMAGE_ID, "ami-1"),
                ],
            ),
            common(vec![
                ("/origin", json!("AWS::EC2::Instance")),
                (
                    "/aws/ec2",
                    json!({"instance_id": "i-0abc", "availability_zone": "eu-west-1a",
                           "instance_size": "m7g.large", "ami_id": "ami-1"}),
                ),
            ]),
        ),
        (
            "ECS on Fargate",
            with(
                "aws_ecs",
                vec![
                    s(sc::CONTAINER_NAME, "web"),
                    s(sc::CONTAINER_ID, "c0ffee"),
                    s(sc::AWS_ECS_CLUSTER_ARN, "arn:cluster/shop"),
                    s(sc::AWS_ECS_TASK_ARN, "arn:task"),
                    s(sc::AWS_ECS_TASK_FAMILY, "web-task"),
                    s(sc::AWS_ECS_CONTAINER_ARN, "arn:container-instance"),
                    s(sc::AWS_ECS_LAUNCHTYPE, "fargate"),
                ],
            ),
            common(vec![
                ("/origin", json!("AWS::ECS::Fargate")),
                (
                    "/aws/ecs",
                    json!({"container": "web", "container_id": "c0ffee",
                           "container_arn": "arn:container-instance",
                           "cluster": "arn:cluster/shop", "task_arn": "arn:task",
                           "task_family": "web-task", "launch_type": "fargate"}),
                ),
            ]),
        ),
        (
            "EKS",
            with(
                "aws_eks",
                vec![
                    s(sc::K8S_CLUSTER_NAME, "prod"),
                    s(sc::K8S_POD_NAME, "web-1"),
                    s(sc::CONTAINER_ID, "abc"),
                ],
            ),
            common(vec![
                ("/origin", json!("AWS::EKS::Container")),
                (
                    "/aws/eks",
                    json!({"cluster_name": "prod", "pod": "web-1", "container_id": "abc"}),
                ),
            ]),
        ),
        (
            "Elastic Beanstalk",
            with(
                "aws_elastic_beanstalk",
                vec![
                    s(sc::SERVICE_NAMESPACE, "prod-env"),
                    s(sc::SERVICE_VERSION, "v42"),
                    s(sc::SERVICE_INSTANCE_ID, "17"),
                ],
            ),
            common(vec![
                ("/origin", json!("AWS::ElasticBeanstalk::Environment")),
                (
                    "/aws/elastic_beanstalk",
                    json!({"environment_name": "prod-env", "version_label": "v42",
                           "deployment_id": 17}),
                ),
                ("/service/version", json!("v42")),
            ]),
        ),
        (
            "Lambda",
            with(
                "aws_lambda",
                vec![
                    s(sc::FAAS_NAME, "pay"),
                    s(
                        sc::CLOUD_RESOURCE_ID,
                        "arn:aws:lambda:eu-west-1:1:function:pay",
                    ),
                ],
            ),
            common(vec![
                ("/origin", json!("AWS::Lambda::Function")),
                (
                    "/aws/function_arn",
                    json!("arn:aws:lambda:eu-west-1:1:function:pay"),
                ),
                ("/aws/resource_names", json!(["pay"])),
            ]),
        ),
    ];
    for (case, res, expect) in cases {
        check(
            case,
            &translate(res, &span(SpanKind::Server, false, vec![])),
            &expect,
        );
    }
}

#[test]
fn annotations_and_metadata() {
    let attrs = vec![
        s("order.id", "o-17"),
        i("cart.items", 3),
        f("cart.total", 12.5),
        b("vip", true),
        list("tags", &["a", "b"]),
        f("ratio", f64::NAN),
        s("http.request.method", "GET"),
        s("note", "free text"),
    ];
    let indexed = XrayExporterConfig {
        indexed_attributes: vec![
            "order.id".into(),
            "tags".into(),
            "http.request.method".into(),
            "deployment.environment".into(),
        ],
        ..Default::default()
    };
    let res = vec![
        s("service.name", "checkout"),
        s("deployment.environment", "prod"),
    ];
    let doc = translate_with(
        &indexed,
        res.clone(),
        &span(SpanKind::Server, false, attrs.clone()),
    );
    assert_eq!(
        doc["annotations"],
        json!({"order_id": "o-17", "http_request_method": "GET", "deployment_environment": "prod"}),
        "listed scalars become annotations with sanitized keys, resource attributes too"
    );
    let meta = &doc["metadata"]["default"];
    assert_eq!(
        meta["tags"],
        json!(["a", "b"]),
        "a list cannot be an annotation"
    );
    assert_eq!(meta["cart.items"], 3);
    assert_eq!(meta["cart.total"], 12.5);
    assert_eq!(meta["vip"], true);
    assert_eq!(meta["ratio"], "NaN");
    assert_eq!(meta["note"], "free text");
    assert_eq!(meta["order.id"], J::Null, "annotations are not repeated");
    assert_eq!(
        meta["http.request.method"],
        J::Null,
        "mapped to http.request.method"
    );
    assert_eq!(meta["otel.resource.service.name"], "checkout");
    assert_eq!(meta["otel.resource.deployment.environment"], "prod");

    let all = XrayExporterConfig {
        index_all_attributes: true,
        ..Default::default()
    };
    let doc = translate_with(
        &all,
        res.clone(),
        &span(SpanKind::Server, false, attrs.clone()),
    );
    assert_eq!(
        doc["annotations"],
        json!({"order_id": "o-17", "cart_items": 3, "cart_total": 12.5, "vip": true, "note": "free text"}),
        "every unmapped scalar; NaN and lists stay metadata"
    );
    assert_eq!(doc["metadata"]["default"]["ratio"], "NaN");

    let none = translate(res.clone(), &span(SpanKind::Internal, true, attrs));
    assert_eq!(none["annotations"], J::Null);
    assert_eq!(
        none["metadata"]["default"]["otel.resource.service.name"],
        J::Null,
        "resource attributes only on segments"
    );
}

#[test]
fn events_go_to_metadata() {
    let mut sp = span(SpanKind::Internal, true, vec![]);
    sp.events = vec![Event {
        name: "cache.miss".into(),
        time_unix_nano: START,
        attributes: vec![s("key", "k1")],
        ..Default::default()
    }];
    let doc = translate(vec![], &sp);
    assert_eq!(
        doc["metadata"]["default"]["otel.events"],
        json!([{"name": "cache.miss", "timestamp": 1_700_000_000.123_456, "attributes": {"key": "k1"}}])
    );
}

fn link(trace_id: &[u8], span_id: &[u8], attributes: Vec<KeyValue>) -> Link {
    Link {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        attributes,
        ..Default::default()
    }
}

#[test]
fn span_links_become_xray_links() {
    const OTHER_TRACE: [u8; 16] = [
        0x57, 0x59, 0xe9, 0x88, 0xbd, 0x86, 0x2e, 0x3f, 0xe1, 0xbe, 0x46, 0xa9, 0x94, 0x27, 0x27,
        0x93,
    ];
    const OTHER_SPAN: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    // (case, span kind, has parent, links, expected `links`)
    let cases: Vec<(&str, SpanKind, bool, Vec<Link>, J)> = vec![
        (
            "no links, no field",
            SpanKind::Server,
            false,
            vec![],
            J::Null,
        ),
        (
            "a link in the same trace keeps its attributes as JSON values",
            SpanKind::Server,
            false,
            vec![link(
                &TRACE_ID,
                &PARENT_ID,
                vec![
                    s("messaging.operation", "process"),
                    i("attempt", 2),
                    b("retry", true),
                    f("weight", 0.5),
                    list("tags", &["a", "b"]),
                ],
            )],
            json!([{
                "trace_id": "1-581cf771-a006649127e371903a2de979",
                "id": "defdae912c340b4a",
                "attributes": {
                    "messaging.operation": "process", "attempt": 2, "retry": true,
                    "weight": 0.5, "tags": ["a", "b"],
                },
            }]),
        ),
        (
            "a link to another trace, without attributes, has no attributes field",
            SpanKind::Consumer,
            true,
            vec![link(&OTHER_TRACE, &OTHER_SPAN, vec![])],
            json!([{"trace_id": "1-5759e988-bd862e3fe1be46a994272793", "id": "0123456789abcdef"}]),
        ),
        (
            "links with missing, zero or malformed ids are left out; the order is kept",
            SpanKind::Internal,
            true,
            vec![
                link(&OTHER_TRACE, &OTHER_SPAN, vec![s("n", "first")]),
                link(&[0; 16], &OTHER_SPAN, vec![]),
                link(&TRACE_ID, &[0; 8], vec![]),
                link(&TRACE_ID[..8], &OTHER_SPAN, vec![]),
                link(&TRACE_ID, &[1, 2, 3], vec![]),
                link(&[], &[], vec![]),
                link(&TRACE_ID, &PARENT_ID, vec![s("n", "last")]),
            ],
            json!([
                {"trace_id": "1-5759e988-bd862e3fe1be46a994272793", "id": "0123456789abcdef",
                 "attributes": {"n": "first"}},
                {"trace_id": "1-581cf771-a006649127e371903a2de979", "id": "defdae912c340b4a",
                 "attributes": {"n": "last"}},
            ]),
        ),
        (
            "only invalid links: no field",
            SpanKind::Producer,
            true,
            vec![link(&[0; 16], &[0; 8], vec![s("n", "x")])],
            J::Null,
        ),
    ];
    for (case, kind, has_parent, links, want) in cases {
        let mut sp = span(kind, has_parent, vec![]);
        sp.links = links;
        let doc = translate(service_resource(), &sp);
        check(
            case,
            &doc,
            &[("/links", want), ("/metadata/default/otel.links", J::Null)],
        );
        // The document parses back into the model, links included.
        let back: SegmentDocument = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), doc, "{case}");
    }
}

#[test]
fn invalid_ids_and_legacy_epoch() {
    let translator = Translator::new(&XrayExporterConfig::default());
    let mut zero_trace = span(SpanKind::Server, false, vec![]);
    zero_trace.trace_id = vec![0; 16];
    assert_eq!(
        translator.translate(None, &zero_trace, now()),
        Err(Skip::InvalidTraceId)
    );
    let mut short_span = span(SpanKind::Server, false, vec![]);
    short_span.span_id = vec![1, 2, 3];
    assert_eq!(
        translator.translate(None, &short_span, now()),
        Err(Skip::InvalidSpanId)
    );
    let mut bad_parent = span(SpanKind::Internal, true, vec![]);
    bad_parent.parent_span_id = vec![1, 2];
    let doc = translator.translate(None, &bad_parent, now()).unwrap();
    assert_eq!(
        doc.parent_id, None,
        "a malformed parent id is left out, not sent"
    );
    assert_eq!(
        doc.kind, None,
        "and the span becomes a segment, not an orphan subsegment"
    );
    let mut zero_parent = span(SpanKind::Client, true, vec![]);
    zero_parent.parent_span_id = vec![0; 8];
    let doc = translator.translate(None, &zero_parent, now()).unwrap();
    assert_eq!((doc.kind, doc.parent_id, doc.namespace), (None, None, None));

    // A W3C (random) id passes by default and fails the legacy epoch check.
    let random = span(SpanKind::Server, false, vec![]);
    assert!(translator.translate(None, &random, now()).is_ok());
    let legacy = Translator::new(&XrayExporterConfig {
        enforce_legacy_trace_id_epoch: true,
        ..Default::default()
    });
    assert_eq!(
        legacy.translate(None, &random, now()),
        Err(Skip::TraceIdEpoch)
    );
    let mut recent = random.clone();
    recent.trace_id[..4].copy_from_slice(&(now() as u32 - 60).to_be_bytes());
    assert!(legacy.translate(None, &recent, now()).is_ok());
    assert_eq!(Skip::TraceIdEpoch.reason(), "invalid_trace_id_epoch");
}

/// An oversize-able document with two small links (whose attributes are `link_attr_bytes`
/// long).
fn big_doc(attrs: usize, events: usize, annotations: usize, stack: usize) -> SegmentDocument {
    big_doc_with_links(attrs, events, annotations, stack, 2, 10)
}

/// `links` links to distinct spans, in span-id order `1, 2, ...`, each with one attribute
/// of `link_attr_bytes` bytes (none when 0).
fn big_doc_with_links(
    attrs: usize,
    events: usize,
    annotations: usize,
    stack: usize,
    links: u64,
    link_attr_bytes: usize,
) -> SegmentDocument {
    let mut sp = span(
        SpanKind::Server,
        false,
        (0..attrs)
            .map(|n| s(&format!("attr.{n}"), &"a".repeat(1000)))
            .collect(),
    );
    sp.attributes
        .extend((0..annotations).map(|n| s(&format!("ann.{n}"), &"n".repeat(900))));
    sp.attributes.push(i("http.response.status_code", 500));
    sp.events = (0..events)
        .map(|n| Event {
            name: format!("event {n}"),
            attributes: vec![s("payload", &"e".repeat(1000))],
            ..Default::default()
        })
        .collect();
    if stack > 0 {
        let text: String = (0..stack)
            .map(|n| {
                format!(
                    "   {n}: app::f{n}{}\n             at ./src/lib.rs:{n}:1\n",
                    "x".repeat(1500)
                )
            })
            .collect();
        sp.events.push(exception("Panic", "boom", &text));
    }
    sp.links = (1..=links)
        .map(|n| {
            let attrs = if link_attr_bytes > 0 {
                vec![s("payload", &"l".repeat(link_attr_bytes))]
            } else {
                vec![]
            };
            link(&TRACE_ID, &n.to_be_bytes(), attrs)
        })
        .collect();
    let config = XrayExporterConfig {
        indexed_attributes: (0..annotations).map(|n| format!("ann.{n}")).collect(),
        ..Default::default()
    };
    Translator::new(&config)
        .translate(Some(&resource(service_resource())), &sp, now())
        .unwrap()
}

#[test]
fn oversize_documents_are_trimmed_in_order() {
    // (case, attrs, events, annotations, stack frames, what must survive, what must go)
    let cases: Vec<(&str, SegmentDocument, Vec<&str>, Vec<&str>)> = vec![
        (
            "metadata goes first, events and links stay",
            big_doc(70, 3, 2, 0),
            vec![
                "/metadata/default/otel.events",
                "/annotations/ann_0",
                "/links/1/attributes/payload",
            ],
            vec![],
        ),
        (
            "then events",
            big_doc(10, 80, 2, 0),
            vec!["/annotations/ann_1", "/links/1/attributes/payload"],
            vec!["/metadata/default/otel.events"],
        ),
        (
            "then the attributes of links, the links stay",
            big_doc_with_links(0, 0, 2, 3, 70, 1000),
            vec![
                "/annotations/ann_1",
                "/cause/exceptions/0/stack",
                "/links/69/id",
            ],
            vec!["/links/0/attributes"],
        ),
        (
            "then stack frames",
            big_doc(0, 0, 2, 50),
            vec![
                "/annotations/ann_1",
                "/cause/exceptions/0/truncated",
                "/links/1/id",
            ],
            vec!["/cause/exceptions/0/stack", "/links/1/attributes"],
        ),
        (
            "then annotations",
            big_doc(0, 0, 100, 0),
            vec!["/links/1/id"],
            vec![],
        ),
        (
            "then links",
            big_doc_with_links(0, 0, 2, 0, 1200, 0),
            vec!["/links/0/id"],
            vec!["/annotations", "/links/1199"],
        ),
    ];
    for (case, mut doc, kept, gone) in cases {
        let before = serde_json::to_vec(&doc).unwrap().len();
        assert!(
            before > MAX_DOCUMENT_BYTES,
            "{case}: {before} bytes is not oversize"
        );
        let (body, trimmed) = trim::fit(&mut doc).unwrap();
        assert!(trimmed, "{case}");
        assert!(
            body.len() <= MAX_DOCUMENT_BYTES,
            "{case}: {} bytes",
            body.len()
        );
        let back: J = serde_json::from_str(&body).expect("still valid JSON");
        assert_valid(&back);
        for k in kept {
            assert!(back.pointer(k).is_some(), "{case}: {k} should be kept");
        }
        for k in gone {
            assert!(back.pointer(k).is_none(), "{case}: {k} should be gone");
        }
        assert_eq!(
            back["trace_id"], "1-581cf771-a006649127e371903a2de979",
            "{case}"
        );
        assert_eq!(back["id"], "53995c3f42cd8ad8", "{case}");
        assert_eq!(back["fault"], true, "{case}");
        assert_eq!(back["http"]["response"]["status"], 500, "{case}");
        // Documents parse back into the model, so they have X-Ray's shape.
        let _: SegmentDocument = serde_json::from_str(&body).unwrap();
    }
}

#[test]
fn links_are_dropped_from_the_end_and_only_as_many_as_needed() {
    // (case, links, link attribute bytes)
    let cases: Vec<(&str, u64, usize)> = vec![
        ("many plain links", 1200, 0),
        ("many links with attributes", 1000, 100),
    ];
    for (case, links, attr_bytes) in cases {
        let mut doc = big_doc_with_links(0, 0, 0, 0, links, attr_bytes);
        let original: Vec<String> = doc.links.iter().map(|l| l.id.clone()).collect();
        let (body, trimmed) = trim::fit(&mut doc).unwrap();
        assert!(trimmed, "{case}");
        assert!(body.len() <= MAX_DOCUMENT_BYTES, "{case}: {}", body.len());
        let back: SegmentDocument = serde_json::from_str(&body).unwrap();
        let kept: Vec<String> = back.links.iter().map(|l| l.id.clone()).collect();
        assert!(
            !kept.is_empty() && kept.len() < original.len(),
            "{case}: kept {} of {}",
            kept.len(),
            original.len()
        );
        assert_eq!(
            kept[..],
            original[..kept.len()],
            "{case}: the first links stay"
        );
        assert!(
            back.links.iter().all(|l| l.attributes.is_empty()),
            "{case}: link attributes went before any link"
        );
        // Only about the excess went: the document is still close to the limit.
        assert!(
            body.len() > MAX_DOCUMENT_BYTES - 1024,
            "{case}: trimmed too much, {} bytes left",
            body.len()
        );
    }
}

#[test]
fn huge_strings_are_shortened_as_a_last_resort() {
    let sp = span(
        SpanKind::Client,
        true,
        vec![
            s("url.full", &"u".repeat(40_000)),
            s("db.system", "mysql"),
            s("db.statement", &"q".repeat(40_000)),
        ],
    );
    let mut doc = Translator::new(&XrayExporterConfig::default())
        .translate(None, &sp, now())
        .unwrap();
    let (body, trimmed) = trim::fit(&mut doc).unwrap();
    assert!(trimmed);
    assert!(body.len() <= MAX_DOCUMENT_BYTES);
    let back: J = serde_json::from_str(&body).unwrap();
    assert_eq!(back["http"]["request"]["url"].as_str().unwrap().len(), 1024);
    assert_eq!(back["sql"]["sanitized_query"].as_str().unwrap().len(), 1024);
}

#[test]
fn small_documents_are_untouched() {
    let mut doc = big_doc(3, 1, 1, 2);
    let copy = doc.clone();
    let (body, trimmed) = trim::fit(&mut doc).unwrap();
    assert!(!trimmed);
    assert_eq!(doc, copy);
    assert_eq!(body, serde_json::to_string(&copy).unwrap());
}

fn batch(spans: Vec<Span>) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        resource: Some(resource(service_resource())),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }])
}

#[tokio::test]
async fn file_output_holds_exactly_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.jsonl");
    let config = XrayExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(path.clone()),
        enforce_legacy_trace_id_epoch: true,
        ..Default::default()
    };
    let metrics = SelfMetrics::new();
    let exporter = XrayExporter::new("awsxray/test", &config, &metrics);
    let mut recent = span(
        SpanKind::Server,
        false,
        vec![i("http.response.status_code", 200)],
    );
    recent.trace_id[..4].copy_from_slice(&(now() as u32).to_be_bytes());
    let mut child = recent.clone();
    child.span_id = PARENT_ID.to_vec();
    child.parent_span_id = SPAN_ID.to_vec();
    child.kind = SpanKind::Internal as i32;
    child.attributes = (0..80)
        .map(|n| s(&format!("big.{n}"), &"z".repeat(1000)))
        .collect();
    let stale = span(SpanKind::Server, false, vec![]);
    let report = exporter
        .export(&batch(vec![recent.clone(), child, stale]))
        .await
        .unwrap();
    assert_eq!(
        report.dropped,
        vec![(Reason::Named("invalid_trace_id_epoch"), 1)]
    );
    exporter.flush().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<SegmentDocument> = text
        .lines()
        .map(|l| {
            assert!(l.len() <= MAX_DOCUMENT_BYTES);
            serde_json::from_str(l).unwrap()
        })
        .collect();
    assert_eq!(lines.len(), 2);
    let expected_trace = ids::trace_id(&recent.trace_id).unwrap();
    assert_eq!(lines[0].trace_id, expected_trace);
    assert_eq!(lines[0].kind, None);
    assert_eq!(
        lines[0]
            .http
            .as_ref()
            .unwrap()
            .response
            .as_ref()
            .unwrap()
            .status,
        Some(200)
    );
    assert_eq!(lines[1].kind.as_deref(), Some("subsegment"));
    assert_eq!(lines[1].parent_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert!(
        metrics
            .encode()
            .contains(r#"aurastream_component_events_total{component="awsxray/test",signal="traces",event="document_trimmed"} 1"#),
        "{}",
        metrics.encode()
    );
}

#[tokio::test]
async fn other_signals_are_refused() {
    let exporter = XrayExporter::new(
        "awsxray",
        &XrayExporterConfig {
            output_destination: OutputDestination::Stdout,
            ..Default::default()
        },
        &SelfMetrics::new(),
    );
    let err = exporter
        .export(&SignalData::Logs(vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Permanent { .. }));
    assert_eq!(err.reason(), "unsupported_signal");
    assert_eq!(
        exporter.export(&batch(vec![])).await.unwrap().dropped,
        vec![]
    );
}

#[test]
fn collector_config_builds_the_exporter() {
    use crate::config::{ConfigSource, ExporterConfig, load_sources};
    let yaml = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  awsxray/local:\n    output_destination: file\n    \
                path: /tmp/aurastream-xray-test.jsonl\n    indexed_attributes: [order.id]\n\
                service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [awsxray/local]\n";
    let config = load_sources(
        &[ConfigSource {
            name: "test.yaml".into(),
            text: yaml.into(),
        }],
        |_| None,
    )
    .expect("valid config");
    let exporter = &config.exporters.0["awsxray/local"];
    let ExporterConfig::AwsXray(c) = exporter else {
        panic!("not an awsxray config: {exporter:?}");
    };
    assert_eq!(c.output_destination, OutputDestination::File);
    assert_eq!(c.indexed_attributes, ["order.id"]);
    assert_eq!(exporter.factory().signals(), [crate::model::Signal::Traces]);
    let metrics = std::sync::Arc::new(SelfMetrics::new());
    let built = exporter
        .factory()
        .build(&crate::component::factory::ExporterContext {
            id: "awsxray/local",
            metrics: &metrics,
            auth: &Default::default(),
        })
        .unwrap();
    assert_eq!(
        built.health_detail().as_deref(),
        Some("/tmp/aurastream-xray-test.jsonl")
    );

    let bad = yaml.replace("indexed_attributes", "index_attributes");
    let err = load_sources(
        &[ConfigSource {
            name: "test.yaml".into(),
            text: bad,
        }],
        |_| None,
    )
    .expect_err("unknown option refused")
    .to_string();
    assert!(err.contains("index_attributes"), "{err}");
}

#[test]
fn annotation_keys_that_sanitize_alike_do_not_collide() {
    let config = XrayExporterConfig {
        index_all_attributes: true,
        ..Default::default()
    };
    let sp = span(
        SpanKind::Server,
        false,
        vec![s("a.b", "first"), s("a_b", "second")],
    );
    let doc = translate_with(&config, vec![], &sp);
    assert_eq!(doc["annotations"], json!({"a_b": "first"}));
    assert_eq!(doc["metadata"]["default"]["a_b"], "second");
}

#[test]
fn at_most_fifty_annotations_per_document() {
    let attrs: Vec<KeyValue> = (0..70).map(|n| i(&format!("k{n:02}"), n)).collect();
    let config = XrayExporterConfig {
        index_all_attributes: true,
        ..Default::default()
    };
    let doc = translate_with(&config, vec![], &span(SpanKind::Server, false, attrs));
    assert_eq!(doc["annotations"].as_object().unwrap().len(), 50);
    assert_eq!(doc["annotations"]["k49"], 49);
    assert_eq!(
        doc["metadata"]["default"]["k50"], 50,
        "the rest stays as metadata"
    );
    assert_eq!(doc["metadata"]["default"]["k69"], 69);
}

#[tokio::test]
async fn a_missing_region_is_permanent_and_says_what_to_do() {
    // Building the exporter touches neither credentials nor the network; the first export
    // resolves the client and finds no region.
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let exporter = XrayExporter::new(
        "awsxray",
        &XrayExporterConfig::default(),
        &SelfMetrics::new(),
    )
    .with_sdk_config(sdk);
    let err = exporter
        .export(&batch(vec![span(SpanKind::Server, false, vec![])]))
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Permanent { .. }), "{err:?}");
    assert_eq!(err.reason(), "no_region");
    assert!(err.to_string().contains("`region`"), "{err}");
}
