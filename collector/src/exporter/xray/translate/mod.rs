//! OTLP span → X-Ray segment document.
//!
//! Each span becomes exactly one document, so a document that X-Ray fails to take maps
//! back to exactly one span to retry or count. A span with no parent, or a server span, is
//! a *segment* (the work a service did for one request); every other span is a
//! *subsegment* sent as its own document, linked to its parent by `parent_id`. X-Ray
//! assembles the tree from those links, so the documents need not arrive together.

mod attrs;
mod aws;
mod cause;
mod http;
pub(crate) mod ids;
mod name;
mod stack;

use std::collections::{BTreeMap, BTreeSet};

use aurastream_proto::otlp::common::{AnyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{Span, span::SpanKind, status::StatusCode};
use aurastream_proto::xray::{
    AnnotationValue, SUBSEGMENT_TYPE, SegmentDocument, ServiceData, SpanLink,
};

use self::attrs::{Attrs, to_json, to_json_object};
use super::config::XrayExporterConfig;
use crate::aws::cloudwatch_logs::template::{NameKind, Template};

/// Metadata namespace for everything that is not a segment field.
pub(crate) const METADATA_NAMESPACE: &str = "default";
/// Metadata key of span events other than exceptions.
pub(crate) const EVENTS_KEY: &str = "otel.events";
/// Prefix of resource attributes copied to a segment's metadata.
pub(crate) const RESOURCE_PREFIX: &str = "otel.resource.";
/// X-Ray's limit on string annotation values, in characters.
const MAX_ANNOTATION_CHARS: usize = 1000;
/// X-Ray indexes at most 50 annotations; further indexed attributes stay metadata.
const MAX_ANNOTATIONS: usize = 50;

/// Why a span was not turned into a document; the strings are the `reason` label of the
/// failed-items counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Skip {
    InvalidTraceId,
    InvalidSpanId,
    TraceIdEpoch,
}

impl Skip {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Skip::InvalidTraceId => "invalid_trace_id",
            Skip::InvalidSpanId => "invalid_span_id",
            Skip::TraceIdEpoch => "invalid_trace_id_epoch",
        }
    }
}

/// The translation options of one exporter.
#[derive(Debug, Clone)]
pub(crate) struct Translator {
    indexed: BTreeSet<String>,
    index_all: bool,
    /// `aws_log_groups` as templates over resource attributes.
    log_groups: Vec<Template>,
    enforce_epoch: bool,
}

impl Translator {
    pub(crate) fn new(config: &XrayExporterConfig) -> Translator {
        Translator {
            indexed: config.indexed_attributes.iter().cloned().collect(),
            index_all: config.index_all_attributes,
            log_groups: config
                .aws_log_groups
                .iter()
                .map(|g| Template::new(g, NameKind::Group))
                .collect(),
            enforce_epoch: config.enforce_legacy_trace_id_epoch,
        }
    }

    /// The document for `span`, which came with `resource`. `now_secs` is the wall clock,
    /// for the optional legacy trace-id epoch check.
    pub(crate) fn translate(
        &self,
        resource: Option<&Resource>,
        span: &Span,
        now_secs: u64,
    ) -> Result<SegmentDocument, Skip> {
        let trace_id = ids::trace_id(&span.trace_id).ok_or(Skip::InvalidTraceId)?;
        let id = ids::span_id(&span.span_id).ok_or(Skip::InvalidSpanId)?;
        if self.enforce_epoch && !ids::has_recent_epoch(&span.trace_id, now_secs) {
            return Err(Skip::TraceIdEpoch);
        }
        let resource_attrs = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let attrs = Attrs::new(&span.attributes, resource_attrs);
        let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
        // A subsegment without a valid parent id would be refused, so a span whose parent
        // id is missing, all zeros (some SDKs send that for roots) or malformed is a root.
        let parent_id = ids::span_id(&span.parent_span_id);
        let is_segment = parent_id.is_none() || kind == SpanKind::Server;
        let outgoing = matches!(kind, SpanKind::Client | SpanKind::Producer);
        let aws_call = aws::is_aws_call(&attrs);
        let failed = span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32);

        let start_time = ids::seconds(span.start_time_unix_nano);
        let end_time = ids::seconds(span.end_time_unix_nano.max(span.start_time_unix_nano));
        let name = name::sanitize_name(&segment_name(span, &attrs, is_segment, outgoing, aws_call));
        let (http, status) = http::http(&attrs, kind == SpanKind::Server);
        let (error, throttle, fault) = http::flags(status, failed);
        let language = attrs.res("telemetry.sdk.language");

        let mut doc = SegmentDocument {
            name,
            id,
            trace_id,
            start_time,
            end_time,
            kind: (!is_segment).then(|| SUBSEGMENT_TYPE.to_owned()),
            parent_id,
            links: links(span),
            namespace: (!is_segment && outgoing)
                .then(|| if aws_call { "aws" } else { "remote" }.to_owned()),
            http,
            aws: aws::aws(&attrs, is_segment, aws_call, &self.log_groups),
            sql: aws::sql(&attrs),
            error,
            throttle,
            fault,
            cause: cause::cause(span, failed, outgoing, language),
            ..Default::default()
        };
        if is_segment {
            doc.origin = aws::origin(&attrs).map(str::to_owned);
            doc.user = attrs.str("enduser.id").map(str::to_owned);
            doc.service = attrs.res("service.version").map(|v| ServiceData {
                version: Some(v.to_owned()),
            });
        }
        self.annotations_and_metadata(span, &attrs, is_segment, &mut doc);
        Ok(doc)
    }

    /// Span attributes not already shown as segment fields become annotations (when
    /// indexed and scalar) or metadata; resource attributes and events go to metadata.
    fn annotations_and_metadata(
        &self,
        span: &Span,
        attrs: &Attrs<'_>,
        is_segment: bool,
        doc: &mut SegmentDocument,
    ) {
        let mut metadata = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for kv in attrs.span_attributes() {
            if !seen.insert(kv.key.as_str()) {
                continue;
            }
            let used = attrs.is_used(&kv.key);
            let index = (self.indexed.contains(&kv.key) || (self.index_all && !used))
                && doc.annotations.len() < MAX_ANNOTATIONS;
            // Two keys may sanitize alike (`a.b`, `a_b`): the second stays metadata.
            if index
                && let Some(value) = annotation_value(kv.value.as_ref())
                && let key = name::sanitize_annotation_key(&kv.key)
                && !doc.annotations.contains_key(&key)
            {
                doc.annotations.insert(key, value);
                continue;
            }
            if !used {
                metadata.insert(kv.key.clone(), to_json(kv.value.as_ref()));
            }
        }
        for kv in attrs.resource_attributes() {
            if self.indexed.contains(&kv.key)
                && !seen.contains(kv.key.as_str())
                && doc.annotations.len() < MAX_ANNOTATIONS
                && let Some(value) = annotation_value(kv.value.as_ref())
            {
                doc.annotations
                    .entry(name::sanitize_annotation_key(&kv.key))
                    .or_insert(value);
            }
            if is_segment {
                metadata.insert(
                    format!("{RESOURCE_PREFIX}{}", kv.key),
                    to_json(kv.value.as_ref()),
                );
            }
        }
        let events: Vec<serde_json::Value> = span
            .events
            .iter()
            .filter(|e| e.name != cause::EXCEPTION_EVENT)
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "timestamp": ids::seconds(e.time_unix_nano),
                    "attributes": to_json_object(&e.attributes),
                })
            })
            .collect();
        if !events.is_empty() {
            metadata.insert(EVENTS_KEY.to_owned(), serde_json::Value::Array(events));
        }
        if !metadata.is_empty() {
            doc.metadata.insert(METADATA_NAMESPACE.to_owned(), metadata);
        }
    }
}

/// The span's OTLP links as X-Ray `links`, in the span's order. A link whose trace or span
/// id is missing, all zeros or malformed points nowhere X-Ray could show, so it is left out.
fn links(span: &Span) -> Vec<SpanLink> {
    span.links
        .iter()
        .filter_map(|l| {
            Some(SpanLink {
                trace_id: ids::trace_id(&l.trace_id)?,
                id: ids::span_id(&l.span_id)?,
                attributes: to_json_object(&l.attributes).into_iter().collect(),
            })
        })
        .collect()
}

/// The name X-Ray shows on the service map: the service itself for segments; for calls
/// out, the thing called (peer service, AWS service, database, RPC service, host).
fn segment_name(
    span: &Span,
    attrs: &Attrs<'_>,
    is_segment: bool,
    outgoing: bool,
    aws_call: bool,
) -> String {
    if is_segment {
        return attrs
            .res("service.name")
            .unwrap_or(span.name.as_str())
            .to_owned();
    }
    if !outgoing {
        return span.name.clone();
    }
    if let Some(peer) = attrs.str("peer.service") {
        return peer.to_owned();
    }
    if aws_call && let Some(service) = aws::aws_service(attrs) {
        return service.to_owned();
    }
    let host = attrs
        .peek("server.address")
        .or_else(|| attrs.peek("net.peer.name"));
    if let Some(db) = attrs.peek("db.namespace").or_else(|| attrs.peek("db.name")) {
        return match host {
            Some(host) => format!("{db}@{host}"),
            None => db.to_owned(),
        };
    }
    if let Some(service) = attrs.peek("rpc.service") {
        return service.to_owned();
    }
    if let Some(host) = host.or_else(|| url_host(attrs)) {
        return host.to_owned();
    }
    span.name.clone()
}

/// The host of `url.full` / `http.url`.
fn url_host<'a>(attrs: &Attrs<'a>) -> Option<&'a str> {
    let url = attrs.peek("url.full").or_else(|| attrs.peek("http.url"))?;
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// Strings, numbers and booleans can be annotations; anything else cannot.
fn annotation_value(value: Option<&AnyValue>) -> Option<AnnotationValue> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(AnnotationValue::String(
            s.chars().take(MAX_ANNOTATION_CHARS).collect(),
        )),
        Value::BoolValue(b) => Some(AnnotationValue::Bool(*b)),
        Value::IntValue(i) => Some(AnnotationValue::Int(*i)),
        Value::DoubleValue(d) if d.is_finite() => Some(AnnotationValue::Float(*d)),
        _ => None,
    }
}
