//! X-Ray segment document → OTLP spans, keeping the document itself.
//!
//! A document and every subsegment nested in it become one span each, so sampling,
//! attribute processors and non-X-Ray exporters see the whole call tree in the one model
//! the pipeline carries. The fields are mapped to semantic-convention attributes (HTTP,
//! AWS SDK, SQL, user, exceptions as `exception` events, annotations as attributes), and
//! each span also carries its own document as JSON in
//! [`SEGMENT_DOCUMENT_ATTRIBUTE`](crate::aws::xray::SEGMENT_DOCUMENT_ATTRIBUTE), which
//! the `awsxray` exporter sends unchanged: what the SDK wrote reaches X-Ray field for field,
//! including fields no attribute mapping knows.
//!
//! The stored document is the span's own part only: nested subsegments are taken out (they
//! are spans, and documents, of their own) and given `type: subsegment`, `trace_id` and
//! `parent_id`, which is exactly the form X-Ray documents for subsegments sent
//! separately. X-Ray assembles the tree from those links, so the trace reads the same as if
//! the segment had been sent whole, and the exporter keeps its rule of one span, one
//! document (so a refused document maps back to one span).
//!
//! `in_progress` documents (sent by SDKs when a segment starts, and replaced when it ends)
//! are forwarded as they are: X-Ray accepts them and replaces them with the final document
//! of the same id. Their span gets `end = start` and `aws.xray.in_progress = true`, so
//! other exporters can tell.

use serde_json::{Map, Value};

use aurastream_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind, status::StatusCode,
};
use aurastream_proto::xray::SUBSEGMENT_TYPE;

use super::packet::PacketError;
use crate::aws::xray::{METADATA_PREFIX, SEGMENT_DOCUMENT_ATTRIBUTE};

/// Set (to `true`) on spans of documents that were still in progress.
pub const IN_PROGRESS_ATTRIBUTE: &str = "aws.xray.in_progress";
/// Instrumentation scope of the spans this receiver makes.
const SCOPE_NAME: &str = "aurastream-collector/receiver/awsxray";

/// The ids every document of one datagram shares.
struct Trace {
    text: String,
    bytes: Vec<u8>,
}

/// The spans of one document (a segment or an independent subsegment).
pub fn to_resource_spans(body: &[u8]) -> Result<ResourceSpans, PacketError> {
    let Value::Object(mut doc) = serde_json::from_slice::<Value>(body)? else {
        return Err(invalid("the document is not a JSON object"));
    };
    let text = str_field(&doc, "trace_id")
        .ok_or_else(|| invalid("`trace_id` is missing"))?
        .to_owned();
    let trace = Trace {
        bytes: trace_id_bytes(&text)
            .ok_or_else(|| invalid(format!("`trace_id` `{text}` is not 1-xxxxxxxx-x{{24}}")))?,
        text,
    };
    let independent = str_field(&doc, "type") == Some(SUBSEGMENT_TYPE);
    let parent = match str_field(&doc, "parent_id") {
        Some(p) => {
            let bytes = span_id_bytes(p);
            Some(bytes.ok_or_else(|| invalid(format!("bad `parent_id` `{p}`")))?)
        }
        None if independent => return Err(invalid("a subsegment needs a `parent_id`")),
        None => None,
    };
    let resource = (!independent).then(|| resource(&doc));
    let mut spans = Vec::new();
    let root_kind = if independent {
        subsegment_kind(&doc)
    } else {
        SpanKind::Server
    };
    if let Some(children) = doc.remove("subsegments") {
        walk_children(children, &doc, &trace, &mut spans)?;
    }
    spans.insert(0, to_span(doc, parent, root_kind, &trace)?);
    Ok(ResourceSpans {
        resource,
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    })
}

/// Turns the subsegments nested in `parent` (its `subsegments` value) into spans, depth
/// first; serde_json's recursion limit bounds the depth.
fn walk_children(
    children: Value,
    parent: &Map<String, Value>,
    trace: &Trace,
    spans: &mut Vec<Span>,
) -> Result<(), PacketError> {
    let Value::Array(children) = children else {
        return Err(invalid("`subsegments` is not a list"));
    };
    let parent_id = str_field(parent, "id").ok_or_else(|| invalid("`id` is missing"))?;
    let parent_bytes =
        span_id_bytes(parent_id).ok_or_else(|| invalid(format!("bad `id` `{parent_id}`")))?;
    for child in children {
        let Value::Object(mut child) = child else {
            return Err(invalid("a subsegment is not a JSON object"));
        };
        child.insert("type".into(), Value::String(SUBSEGMENT_TYPE.into()));
        child.insert("trace_id".into(), Value::String(trace.text.clone()));
        child.insert("parent_id".into(), Value::String(parent_id.to_owned()));
        if let Some(grandchildren) = child.remove("subsegments") {
            walk_children(grandchildren, &child, trace, spans)?;
        }
        let kind = subsegment_kind(&child);
        let span = to_span(child, Some(parent_bytes.clone()), kind, trace)?;
        spans.push(span);
    }
    Ok(())
}

/// `aws` and `remote` subsegments are calls out; any other is work inside the service.
fn subsegment_kind(doc: &Map<String, Value>) -> SpanKind {
    match str_field(doc, "namespace") {
        Some("aws" | "remote") => SpanKind::Client,
        _ => SpanKind::Internal,
    }
}

/// One document (with its nested subsegments already taken out) as a span.
fn to_span(
    doc: Map<String, Value>,
    parent: Option<Vec<u8>>,
    kind: SpanKind,
    trace: &Trace,
) -> Result<Span, PacketError> {
    let name = str_field(&doc, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("`name` is missing"))?
        .to_owned();
    let id =
        str_field(&doc, "id").ok_or_else(|| invalid(format!("`id` of `{name}` is missing")))?;
    let span_id = span_id_bytes(id).ok_or_else(|| invalid(format!("bad `id` `{id}`")))?;
    let start = doc
        .get("start_time")
        .and_then(nanos)
        .ok_or_else(|| invalid(format!("`start_time` of `{name}` is missing or negative")))?;
    let in_progress = doc.get("in_progress").and_then(Value::as_bool) == Some(true);
    let end = match doc.get("end_time").and_then(nanos) {
        Some(end) => end.max(start),
        None if in_progress => start,
        None => {
            return Err(invalid(format!(
                "`{name}` has neither `end_time` nor `in_progress`"
            )));
        }
    };

    let mut attributes = Vec::new();
    http_attributes(&doc, &mut attributes);
    aws_attributes(&doc, &name, &mut attributes);
    if let Some(sql) = doc.get("sql") {
        push_str(
            &mut attributes,
            "db.query.text",
            path_str(sql, &["sanitized_query"]),
        );
        push_str(
            &mut attributes,
            "db.system.name",
            path_str(sql, &["database_type"]),
        );
        push_str(&mut attributes, "db.user", path_str(sql, &["user"]));
    }
    push_str(&mut attributes, "enduser.id", str_field(&doc, "user"));
    if let Some(Value::Object(annotations)) = doc.get("annotations") {
        for (key, value) in annotations {
            if let Some(value) = scalar(value) {
                attributes.push(kv(key, value));
            }
        }
    }
    if let Some(Value::Object(metadata)) = doc.get("metadata") {
        for (namespace, value) in metadata {
            attributes.push(kv(
                &format!("{METADATA_PREFIX}{namespace}"),
                any_value::Value::StringValue(value.to_string()),
            ));
        }
    }
    if in_progress {
        attributes.push(kv(IN_PROGRESS_ATTRIBUTE, any_value::Value::BoolValue(true)));
    }
    let events = exception_events(&doc, end);
    let fault = doc.get("fault").and_then(Value::as_bool) == Some(true);
    let error = doc.get("error").and_then(Value::as_bool) == Some(true);
    // A 4xx answered by this service is the client's mistake, not a failed span (the HTTP
    // semantic conventions leave server spans unset); a 4xx received by a call is.
    let failed = fault || (error && kind != SpanKind::Server);
    let status = failed.then(|| Status {
        code: StatusCode::Error as i32,
        message: events
            .first()
            .and_then(|e| e.attributes.iter().find(|a| a.key == "exception.message"))
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default(),
    });
    attributes.push(kv(
        SEGMENT_DOCUMENT_ATTRIBUTE,
        any_value::Value::StringValue(Value::Object(doc).to_string()),
    ));
    Ok(Span {
        trace_id: trace.bytes.clone(),
        span_id,
        parent_span_id: parent.unwrap_or_default(),
        name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events,
        status,
        ..Default::default()
    })
}

fn http_attributes(doc: &Map<String, Value>, out: &mut Vec<KeyValue>) {
    let Some(http) = doc.get("http") else {
        return;
    };
    push_str(
        out,
        "http.request.method",
        path_str(http, &["request", "method"]),
    );
    push_str(out, "url.full", path_str(http, &["request", "url"]));
    push_str(
        out,
        "user_agent.original",
        path_str(http, &["request", "user_agent"]),
    );
    push_str(
        out,
        "client.address",
        path_str(http, &["request", "client_ip"]),
    );
    push_int(
        out,
        "http.response.status_code",
        path(http, &["response", "status"]),
    );
    push_int(
        out,
        "http.response.body.size",
        path(http, &["response", "content_length"]),
    );
}

/// An AWS SDK call as the OpenTelemetry AWS SDK instrumentations describe it.
fn aws_attributes(doc: &Map<String, Value>, name: &str, out: &mut Vec<KeyValue>) {
    let Some(aws) = doc.get("aws") else {
        return;
    };
    if let Some(operation) = path_str(aws, &["operation"]) {
        push_str(out, "rpc.system", Some("aws-api"));
        push_str(out, "rpc.service", Some(name));
        push_str(out, "rpc.method", Some(operation));
    }
    push_str(out, "cloud.region", path_str(aws, &["region"]));
    push_str(out, "cloud.account.id", path_str(aws, &["account_id"]));
    push_str(out, "aws.request_id", path_str(aws, &["request_id"]));
    let mut tables: Vec<&str> = path_str(aws, &["table_name"]).into_iter().collect();
    if let Some(Value::Array(names)) = path(aws, &["table_names"]) {
        tables.extend(names.iter().filter_map(Value::as_str));
    }
    if !tables.is_empty() {
        out.push(kv(
            "aws.dynamodb.table_names",
            any_value::Value::ArrayValue(ArrayValue {
                values: tables
                    .into_iter()
                    .map(|t| AnyValue {
                        value: Some(any_value::Value::StringValue(t.to_owned())),
                    })
                    .collect(),
            }),
        ));
    }
}

/// `cause.exceptions` as `exception` events at the end of the span. A `cause` that is only
/// an exception id (pointing at another subsegment's exception) has nothing to add.
fn exception_events(doc: &Map<String, Value>, at: u64) -> Vec<Event> {
    let Some(Value::Array(exceptions)) = doc.get("cause").and_then(|c| c.get("exceptions")) else {
        return Vec::new();
    };
    exceptions
        .iter()
        .map(|e| {
            let mut attributes = Vec::new();
            push_str(&mut attributes, "exception.type", path_str(e, &["type"]));
            push_str(
                &mut attributes,
                "exception.message",
                path_str(e, &["message"]),
            );
            if let Some(Value::Array(frames)) = e.get("stack") {
                let trace: String = frames
                    .iter()
                    .map(|f| {
                        format!(
                            "  at {} ({}:{})\n",
                            path_str(f, &["label"]).unwrap_or("?"),
                            path_str(f, &["path"]).unwrap_or("?"),
                            path(f, &["line"]).and_then(Value::as_i64).unwrap_or(0)
                        )
                    })
                    .collect();
                push_str(&mut attributes, "exception.stacktrace", Some(&trace));
            }
            Event {
                time_unix_nano: at,
                name: "exception".into(),
                attributes,
                ..Default::default()
            }
        })
        .collect()
}

/// Who emitted the document: the service and, when the SDK said, where it runs.
fn resource(doc: &Map<String, Value>) -> Resource {
    let mut attributes = Vec::new();
    push_str(&mut attributes, "service.name", str_field(doc, "name"));
    push_str(
        &mut attributes,
        "service.version",
        doc.get("service").and_then(|s| path_str(s, &["version"])),
    );
    if let Some(aws) = doc.get("aws") {
        push_str(
            &mut attributes,
            "telemetry.sdk.name",
            path_str(aws, &["xray", "sdk"]),
        );
        push_str(
            &mut attributes,
            "telemetry.sdk.version",
            path_str(aws, &["xray", "sdk_version"]),
        );
        push_str(
            &mut attributes,
            "host.id",
            path_str(aws, &["ec2", "instance_id"]),
        );
        push_str(
            &mut attributes,
            "cloud.availability_zone",
            path_str(aws, &["ec2", "availability_zone"]),
        );
        push_str(
            &mut attributes,
            "aws.ecs.container.arn",
            path_str(aws, &["ecs", "container_arn"]),
        );
        push_str(
            &mut attributes,
            "k8s.cluster.name",
            path_str(aws, &["eks", "cluster_name"]),
        );
        push_str(
            &mut attributes,
            "k8s.pod.name",
            path_str(aws, &["eks", "pod"]),
        );
    }
    let origin = str_field(doc, "origin");
    let platform = match origin {
        Some("AWS::EC2::Instance") => Some("aws_ec2"),
        Some("AWS::ECS::Container" | "AWS::ECS::EC2" | "AWS::ECS::Fargate") => Some("aws_ecs"),
        Some("AWS::EKS::Container") => Some("aws_eks"),
        Some("AWS::ElasticBeanstalk::Environment") => Some("aws_elastic_beanstalk"),
        Some("AWS::Lambda::Function") => Some("aws_lambda"),
        Some("AWS::AppRunner::Service") => Some("aws_app_runner"),
        _ => None,
    };
    if platform.is_some() {
        push_str(&mut attributes, "cloud.provider", Some("aws"));
        push_str(&mut attributes, "cloud.platform", platform);
    }
    // The launch type is part of the origin; keep it so the exporter can give it back.
    let launch_type = match origin {
        Some("AWS::ECS::EC2") => Some("ec2"),
        Some("AWS::ECS::Fargate") => Some("fargate"),
        _ => None,
    };
    push_str(&mut attributes, "aws.ecs.launchtype", launch_type);
    Resource {
        attributes,
        ..Default::default()
    }
}

/// `1-5759e988-bd862e3fe1be46a994272793` as its 16 bytes.
pub fn trace_id_bytes(text: &str) -> Option<Vec<u8>> {
    let rest = text.strip_prefix("1-")?;
    let (epoch, random) = rest.split_once('-')?;
    if epoch.len() != 8 || random.len() != 24 {
        return None;
    }
    let mut bytes = hex_bytes(epoch)?;
    bytes.extend(hex_bytes(random)?);
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

/// 16 hex digits as 8 bytes; all zeros is not an id.
pub fn span_id_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() != 16 {
        return None;
    }
    hex_bytes(text).filter(|b| b.iter().any(|b| *b != 0))
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// Epoch seconds (X-Ray's JSON number) as epoch nanoseconds. The decimal digits are read
/// as written (`1795775725.5036223` is ...503_622_300 ns) because an f64 this large only
/// resolves about 240 ns; numbers in exponent form fall back to float arithmetic.
fn nanos(seconds: &Value) -> Option<u64> {
    let Value::Number(number) = seconds else {
        return None;
    };
    if let Some(whole) = number.as_u64() {
        return whole.checked_mul(1_000_000_000);
    }
    let text = number.to_string();
    if let Some((whole, fraction)) = text.split_once('.')
        && !fraction.contains(['e', 'E'])
        && !whole.starts_with('-')
    {
        let digits: String = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        let whole: u64 = whole.parse().ok()?;
        let fraction: u64 = digits.parse().ok()?;
        return whole.checked_mul(1_000_000_000)?.checked_add(fraction);
    }
    let float = number.as_f64()?;
    if !float.is_finite() || float < 0.0 || float >= (u64::MAX / 1_000_000_000) as f64 {
        return None;
    }
    Some((float * 1e9).round() as u64)
}

fn invalid(message: impl Into<String>) -> PacketError {
    PacketError::InvalidSegment(message.into())
}

fn str_field<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

fn path<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |v, k| v.get(k))
}

fn path_str<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    path(value, keys).and_then(Value::as_str)
}

/// Annotations are strings, numbers or booleans; anything else is not indexed by X-Ray
/// either, so it is not an attribute.
fn scalar(value: &Value) -> Option<any_value::Value> {
    Some(match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        _ => return None,
    })
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn push_str(out: &mut Vec<KeyValue>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push(kv(key, any_value::Value::StringValue(v.to_owned())));
    }
}

fn push_int(out: &mut Vec<KeyValue>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.and_then(Value::as_i64) {
        out.push(kv(key, any_value::Value::IntValue(v)));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    /// What the Python SDK sends for tests/python/xray_sdk_app.py (one datagram's body).
    pub(crate) fn python_sdk_segment() -> Value {
        json!({
            "id": "94914ce601f2fe34", "name": "aurastream-api",
            "start_time": 1795775725.5036223, "in_progress": false,
            "http": {"request": {"method": "POST",
                                 "url": "https://api.aurastream.example/analyze/sentiment"},
                     "response": {"status": 200}},
            "annotations": {"customer_tier": "premium"},
            "metadata": {"default": {"text_length": 36, "has_options": false,
                                     "cache_error": "AuraStream-SentimentCache is throttled"}},
            "aws": {"xray": {"sdk": "X-Ray for Python", "sdk_version": "2.15.0"}},
            "subsegments": [
                {"id": "9d654ad591b6912a", "name": "comprehend_api",
                 "start_time": 1795775725.5037236, "parent_id": "94914ce601f2fe34",
                 "in_progress": false, "annotations": {"sentiment": "POSITIVE"},
                 "metadata": {"default": {"sentiment": "POSITIVE",
                                          "confidence": {"Positive": 0.98, "Negative": 0.01}}},
                 "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "type": "subsegment",
                 "namespace": "local", "end_time": 1795775725.5037525},
                {"id": "a55557168a87244a", "name": "cache_operation",
                 "start_time": 1795775725.5037696, "parent_id": "94914ce601f2fe34",
                 "in_progress": false, "metadata": {"default": {"cache_key": "sha256:3f2a"}},
                 "cause": {"working_directory": "/work/main", "exceptions": [
                     {"id": "e6d03aeb310a01bc", "message": "AuraStream-SentimentCache is throttled",
                      "type": "CacheUnavailable", "remote": false,
                      "stack": [{"path": "xray_sdk_app.py", "line": 46, "label": "analyze_sentiment"},
                                {"path": "xray_sdk_app.py", "line": 32, "label": "check_cache"}]}]},
                 "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "type": "subsegment",
                 "namespace": "local", "fault": true, "end_time": 1795775725.5039954}],
            "trace_id": "1-6b095ced-d0636880d34858533bca10fd", "user": "user-42",
            "service": {"runtime": "CPython", "runtime_version": "3.11.7"},
            "end_time": 1795775725.5040102
        })
    }

    fn spans_of(doc: &Value) -> ResourceSpans {
        to_resource_spans(doc.to_string().as_bytes()).unwrap()
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn string(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.into())
    }

    #[test]
    fn python_sdk_segment_becomes_a_span_tree() {
        let rs = spans_of(&python_sdk_segment());
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(
            attr(&resource.attributes, "service.name"),
            Some(&string("aurastream-api"))
        );
        assert_eq!(
            attr(&resource.attributes, "telemetry.sdk.name"),
            Some(&string("X-Ray for Python"))
        );
        let spans = &rs.scope_spans[0].spans;
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["aurastream-api", "comprehend_api", "cache_operation"]
        );
        let root = &spans[0];
        assert_eq!(
            root.trace_id,
            trace_id_bytes("1-6b095ced-d0636880d34858533bca10fd").unwrap()
        );
        assert_eq!(root.span_id, span_id_bytes("94914ce601f2fe34").unwrap());
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.kind, SpanKind::Server as i32);
        assert_eq!(root.start_time_unix_nano, 1_795_775_725_503_622_300);
        assert_eq!(root.end_time_unix_nano, 1_795_775_725_504_010_200);
        assert_eq!(root.status, None);
        for (key, want) in [
            ("http.request.method", string("POST")),
            (
                "url.full",
                string("https://api.aurastream.example/analyze/sentiment"),
            ),
            ("http.response.status_code", any_value::Value::IntValue(200)),
            ("enduser.id", string("user-42")),
            ("customer_tier", string("premium")),
        ] {
            assert_eq!(attr(&root.attributes, key), Some(&want), "{key}");
        }
        let Some(any_value::Value::StringValue(metadata)) =
            attr(&root.attributes, "aws.xray.metadata.default")
        else {
            panic!("metadata attribute");
        };
        let metadata: Value = serde_json::from_str(metadata).unwrap();
        assert_eq!(metadata["text_length"], 36);

        for child in &spans[1..] {
            assert_eq!(child.parent_span_id, root.span_id, "{}", child.name);
            assert_eq!(child.trace_id, root.trace_id);
            assert_eq!(child.kind, SpanKind::Internal as i32, "namespace local");
        }
        assert_eq!(
            attr(&spans[1].attributes, "sentiment"),
            Some(&string("POSITIVE"))
        );
        let cache = &spans[2];
        let status = cache.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "AuraStream-SentimentCache is throttled");
        let event = &cache.events[0];
        assert_eq!(event.name, "exception");
        assert_eq!(event.time_unix_nano, cache.end_time_unix_nano);
        assert_eq!(
            attr(&event.attributes, "exception.type"),
            Some(&string("CacheUnavailable"))
        );
        assert_eq!(
            attr(&event.attributes, "exception.stacktrace"),
            Some(&string(
                "  at analyze_sentiment (xray_sdk_app.py:46)\n  at check_cache (xray_sdk_app.py:32)\n"
            ))
        );
    }

    #[test]
    fn ecs_origins_keep_their_launch_type_in_semantic_convention_names() {
        for (origin, platform, launch_type) in [
            ("AWS::ECS::Fargate", Some("aws_ecs"), Some("fargate")),
            ("AWS::ECS::EC2", Some("aws_ecs"), Some("ec2")),
            ("AWS::ECS::Container", Some("aws_ecs"), None),
            ("AWS::AppRunner::Service", Some("aws_app_runner"), None),
            ("AWS::Unknown", None, None),
        ] {
            let mut doc = python_sdk_segment();
            doc["origin"] = json!(origin);
            let rs = spans_of(&doc);
            let resource = rs.resource.as_ref().unwrap();
            assert_eq!(
                attr(&resource.attributes, "cloud.platform"),
                platform.map(string).as_ref(),
                "{origin}"
            );
            assert_eq!(
                attr(&resource.attributes, "aws.ecs.launchtype"),
                launch_type.map(string).as_ref(),
                "{origin}"
            );
        }
    }

    #[test]
    fn each_span_keeps_its_own_document() {
        let original = python_sdk_segment();
        let rs = spans_of(&original);
        let doc = |i: usize| -> Value {
            let span = &rs.scope_spans[0].spans[i];
            let Some(any_value::Value::StringValue(text)) =
                attr(&span.attributes, SEGMENT_DOCUMENT_ATTRIBUTE)
            else {
                panic!("document attribute on {}", span.name);
            };
            serde_json::from_str(text).unwrap()
        };
        let mut root = original.clone();
        let children = root.as_object_mut().unwrap().remove("subsegments").unwrap();
        assert_eq!(doc(0), root, "the segment without its subsegments");
        assert_eq!(doc(1), children[0], "already in independent form");
        assert_eq!(doc(2), children[1]);
    }

    #[test]
    fn nested_subsegments_get_their_links() {
        let doc = json!({
            "name": "api", "id": "0000000000000001",
            "trace_id": "1-581cf771-a006649127e371903a2de979",
            "start_time": 10.0, "end_time": 11.0,
            "subsegments": [{
                "name": "DynamoDB", "id": "0000000000000002", "namespace": "aws",
                "start_time": 10.1, "end_time": 10.2, "error": true, "throttle": true,
                "aws": {"operation": "GetItem", "region": "eu-west-1",
                        "table_name": "AuraStream-SentimentCache", "request_id": "R1"},
                "http": {"response": {"status": 400}},
                "subsegments": [{"name": "marshal", "id": "0000000000000003",
                                 "start_time": 10.1, "end_time": 10.15}]
            }]
        });
        let rs = spans_of(&doc);
        let spans = &rs.scope_spans[0].spans;
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["api", "marshal", "DynamoDB"]);
        assert_eq!(spans[1].parent_span_id, spans[2].span_id);
        assert_eq!(spans[2].parent_span_id, spans[0].span_id);
        let dynamo = &spans[2];
        assert_eq!(dynamo.kind, SpanKind::Client as i32);
        assert_eq!(
            dynamo.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32),
            "a 4xx received by a call is an error"
        );
        for (key, want) in [
            ("rpc.system", string("aws-api")),
            ("rpc.service", string("DynamoDB")),
            ("rpc.method", string("GetItem")),
            ("cloud.region", string("eu-west-1")),
            ("aws.request_id", string("R1")),
        ] {
            assert_eq!(attr(&dynamo.attributes, key), Some(&want), "{key}");
        }
        let Some(any_value::Value::StringValue(text)) =
            attr(&spans[1].attributes, SEGMENT_DOCUMENT_ATTRIBUTE)
        else {
            panic!("document");
        };
        let marshal: Value = serde_json::from_str(text).unwrap();
        assert_eq!(marshal["type"], "subsegment");
        assert_eq!(marshal["parent_id"], "0000000000000002");
        assert_eq!(marshal["trace_id"], "1-581cf771-a006649127e371903a2de979");
    }

    #[test]
    fn in_progress_and_independent_documents() {
        let rs = spans_of(&json!({
            "name": "api", "id": "0000000000000001", "in_progress": true,
            "trace_id": "1-581cf771-a006649127e371903a2de979", "start_time": 10.5,
            "http": {"response": {"status": 404}}, "error": true
        }));
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(span.end_time_unix_nano, span.start_time_unix_nano);
        assert_eq!(
            attr(&span.attributes, IN_PROGRESS_ATTRIBUTE),
            Some(&any_value::Value::BoolValue(true))
        );
        assert_eq!(
            span.status, None,
            "a 4xx answered by a service is not a failure"
        );

        let rs = spans_of(&json!({
            "type": "subsegment", "name": "payments", "id": "0000000000000005",
            "parent_id": "0000000000000001", "namespace": "remote",
            "trace_id": "1-581cf771-a006649127e371903a2de979",
            "start_time": 10.5, "end_time": 10.75
        }));
        assert_eq!(
            rs.resource.as_ref(),
            None,
            "the sender of a lone subsegment is unknown"
        );
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(
            span.parent_span_id,
            span_id_bytes("0000000000000001").unwrap()
        );
    }

    #[test]
    fn invalid_documents_are_refused() {
        let base = json!({"name": "api", "id": "0000000000000001",
            "trace_id": "1-581cf771-a006649127e371903a2de979",
            "start_time": 10.0, "end_time": 11.0});
        let with = |key: &str, value: Value| {
            let mut doc = base.clone();
            doc[key] = value;
            doc
        };
        let without = |key: &str| {
            let mut doc = base.clone();
            doc.as_object_mut().unwrap().remove(key);
            doc
        };
        for (doc, want) in [
            (without("trace_id"), "`trace_id` is missing"),
            (with("trace_id", json!("1-581cf771-zz")), "is not 1-"),
            (without("id"), "`id` of `api` is missing"),
            (with("id", json!("xyz")), "bad `id`"),
            (without("name"), "`name` is missing"),
            (without("start_time"), "`start_time`"),
            (with("start_time", json!(-1.0)), "`start_time`"),
            (without("end_time"), "neither `end_time` nor `in_progress`"),
            (with("parent_id", json!("12")), "bad `parent_id`"),
            (with("type", json!("subsegment")), "needs a `parent_id`"),
            (
                with("subsegments", json!({})),
                "`subsegments` is not a list",
            ),
            (with("subsegments", json!([1])), "not a JSON object"),
            (
                with(
                    "subsegments",
                    json!([{"id": "0000000000000002", "start_time": 1.0}]),
                ),
                "`name` is missing",
            ),
        ] {
            let err = to_resource_spans(doc.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.reason(), "invalid_segment");
            assert!(err.to_string().contains(want), "{doc}: {err}");
        }
    }

    #[test]
    fn ids_and_times_convert_exactly() {
        assert_eq!(
            trace_id_bytes("1-01020304-05060708090a0b0c0d0e0f10").unwrap(),
            (1..=16).collect::<Vec<u8>>()
        );
        for bad in [
            "",
            "1-0102030-405060708090a0b0c0d0e0f10",
            "2-01020304-05060708090a0b0c0d0e0f10",
            "1-00000000-000000000000000000000000",
            "1-0102030g-05060708090a0b0c0d0e0f10",
        ] {
            assert_eq!(trace_id_bytes(bad), None, "{bad}");
        }
        assert_eq!(
            span_id_bytes("00000000000000ff").unwrap(),
            [0, 0, 0, 0, 0, 0, 0, 255]
        );
        assert_eq!(span_id_bytes("0000000000000000"), None);
        assert_eq!(span_id_bytes("ééééééééé"), None);
        for (seconds, want) in [
            (json!(1.5), Some(1_500_000_000)),
            (json!(1795775725.5036223), Some(1_795_775_725_503_622_300)),
            (json!(1700000000), Some(1_700_000_000_000_000_000)),
            (json!(1.5e3), Some(1_500_000_000_000)),
            (json!(-1.5), None),
            (json!(1e30), None),
            (json!("1.5"), None),
        ] {
            assert_eq!(nanos(&seconds), want, "{seconds}");
        }
    }
}
