//! OTLP/JSON for traces and logs written straight into the line's buffer.
//!
//! Why by hand: the `file` exporter (the default local destination) spent a third of its
//! core in serde's OTLP/JSON (BENCHMARKS.md, "OTLP/HTTP traces → file"): a `String` for
//! every id and timestamp, a map serializer per attribute value, and serde_json's
//! byte-at-a-time escaping. Here ids are hex-encoded, integers formatted and strings
//! escaped eight bytes at a time, into the one output buffer.
//!
//! The output is byte for byte what `serde_json` makes of opentelemetry-proto's serde
//! derives (`tests` compares the two on every value kind and on arbitrary strings). The
//! rare shapes (`bytesValue`, `stringValueStrindex`, entity references) go through those
//! derives.

use aurastream_proto::otlp::common::any_value::Value;
use aurastream_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::span::{Event, Link};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

/// `{"resourceSpans":[...]}`.
pub fn traces(out: &mut Vec<u8>, resources: &[ResourceSpans]) {
    let shape = Shape {
        resources_key: b"{\"resourceSpans\":",
        scopes_key: b",\"scopeSpans\":",
        items_key: b",\"spans\":",
        resource: |r: &ResourceSpans| (r.resource.as_ref(), &r.scope_spans[..], &r.schema_url[..]),
        scope: |s: &ScopeSpans| (s.scope.as_ref(), &s.spans[..], &s.schema_url[..]),
        item: span,
    };
    shape.write(out, resources);
}

/// `{"resourceLogs":[...]}`.
pub fn logs(out: &mut Vec<u8>, resources: &[ResourceLogs]) {
    let shape = Shape {
        resources_key: b"{\"resourceLogs\":",
        scopes_key: b",\"scopeLogs\":",
        items_key: b",\"logRecords\":",
        resource: |r: &ResourceLogs| (r.resource.as_ref(), &r.scope_logs[..], &r.schema_url[..]),
        scope: |s: &ScopeLogs| (s.scope.as_ref(), &s.log_records[..], &s.schema_url[..]),
        item: log_record,
    };
    shape.write(out, resources);
}

/// One level of the nesting: its header (resource or scope), what it holds, its schema URL.
type Level<'a, H, C> = (Option<&'a H>, &'a [C], &'a str);

/// The resource → scope → item nesting that traces and logs share, with their field names.
struct Shape<R, S, I> {
    resources_key: &'static [u8],
    scopes_key: &'static [u8],
    items_key: &'static [u8],
    resource: fn(&R) -> Level<'_, Resource, S>,
    scope: fn(&S) -> Level<'_, InstrumentationScope, I>,
    item: fn(&mut Vec<u8>, &I),
}

impl<R, S, I> Shape<R, S, I> {
    fn write(&self, out: &mut Vec<u8>, resources: &[R]) {
        out.extend_from_slice(self.resources_key);
        list(out, resources, |out, r| {
            let (res, scopes, schema_url) = (self.resource)(r);
            out.extend_from_slice(b"{\"resource\":");
            resource(out, res);
            out.extend_from_slice(self.scopes_key);
            list(out, scopes, |out, s| {
                let (sc, items, schema_url) = (self.scope)(s);
                out.extend_from_slice(b"{\"scope\":");
                scope(out, sc);
                out.extend_from_slice(self.items_key);
                list(out, items, self.item);
                out.extend_from_slice(b",\"schemaUrl\":");
                string(out, schema_url);
                out.push(b'}');
            });
            out.extend_from_slice(b",\"schemaUrl\":");
            string(out, schema_url);
            out.push(b'}');
        });
        out.push(b'}');
    }
}

/// `{"traceId":…,"spanId":…,"traceState":…`, how spans and links begin.
fn open_with_ids(out: &mut Vec<u8>, trace_id: &[u8], span_id: &[u8], trace_state: &str) {
    out.extend_from_slice(b"{\"traceId\":");
    hex(out, trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, span_id);
    out.extend_from_slice(b",\"traceState\":");
    string(out, trace_state);
}

fn span(out: &mut Vec<u8>, s: &Span) {
    open_with_ids(out, &s.trace_id, &s.span_id, &s.trace_state);
    out.extend_from_slice(b",\"parentSpanId\":");
    hex(out, &s.parent_span_id);
    out.extend_from_slice(b",\"flags\":");
    number(out, s.flags);
    out.extend_from_slice(b",\"name\":");
    string(out, &s.name);
    out.extend_from_slice(b",\"kind\":");
    number(out, s.kind);
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    quoted_number(out, s.start_time_unix_nano);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    quoted_number(out, s.end_time_unix_nano);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &s.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, s.dropped_attributes_count);
    out.extend_from_slice(b",\"events\":");
    list(out, &s.events, event);
    out.extend_from_slice(b",\"droppedEventsCount\":");
    number(out, s.dropped_events_count);
    out.extend_from_slice(b",\"links\":");
    list(out, &s.links, link);
    out.extend_from_slice(b",\"droppedLinksCount\":");
    number(out, s.dropped_links_count);
    out.extend_from_slice(b",\"status\":");
    match &s.status {
        Some(Status { message, code }) => {
            out.extend_from_slice(b"{\"message\":");
            string(out, message);
            out.extend_from_slice(b",\"code\":");
            number(out, *code);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(b"{\"timeUnixNano\":");
    quoted_number(out, e.time_unix_nano);
    out.extend_from_slice(b",\"name\":");
    string(out, &e.name);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &e.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, e.dropped_attributes_count);
    out.push(b'}');
}

fn link(out: &mut Vec<u8>, l: &Link) {
    open_with_ids(out, &l.trace_id, &l.span_id, &l.trace_state);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &l.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, l.dropped_attributes_count);
    out.extend_from_slice(b",\"flags\":");
    number(out, l.flags);
    out.push(b'}');
}

fn log_record(out: &mut Vec<u8>, r: &LogRecord) {
    out.extend_from_slice(b"{\"timeUnixNano\":");
    quoted_number(out, r.time_unix_nano);
    out.extend_from_slice(b",\"observedTimeUnixNano\":");
    quoted_number(out, r.observed_time_unix_nano);
    out.extend_from_slice(b",\"severityNumber\":");
    number(out, r.severity_number);
    out.extend_from_slice(b",\"severityText\":");
    string(out, &r.severity_text);
    out.extend_from_slice(b",\"body\":");
    match &r.body {
        Some(v) => any_value(out, v),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"attributes\":");
    list(out, &r.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, r.dropped_attributes_count);
    out.extend_from_slice(b",\"flags\":");
    number(out, r.flags);
    out.extend_from_slice(b",\"traceId\":");
    hex(out, &r.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex(out, &r.span_id);
    out.extend_from_slice(b",\"eventName\":");
    string(out, &r.event_name);
    out.push(b'}');
}

fn resource(out: &mut Vec<u8>, r: Option<&Resource>) {
    let Some(r) = r else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"attributes\":");
    list(out, &r.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, r.dropped_attributes_count);
    out.extend_from_slice(b",\"entityRefs\":");
    if r.entity_refs.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        derived(out, &r.entity_refs);
    }
    out.push(b'}');
}

fn scope(out: &mut Vec<u8>, s: Option<&InstrumentationScope>) {
    let Some(s) = s else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"name\":");
    string(out, &s.name);
    out.extend_from_slice(b",\"version\":");
    string(out, &s.version);
    out.extend_from_slice(b",\"attributes\":");
    list(out, &s.attributes, key_value);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    number(out, s.dropped_attributes_count);
    out.push(b'}');
}

fn key_value(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(b"{\"key\":");
    string(out, &kv.key);
    out.extend_from_slice(b",\"value\":");
    match &kv.value {
        Some(v) => any_value(out, v),
        None => out.extend_from_slice(b"null"),
    }
    if kv.key_strindex != 0 {
        out.extend_from_slice(b",\"keyStrindex\":");
        number(out, kv.key_strindex);
    }
    out.push(b'}');
}

fn any_value(out: &mut Vec<u8>, v: &AnyValue) {
    match &v.value {
        Some(Value::StringValue(s)) => {
            out.extend_from_slice(b"{\"stringValue\":");
            string(out, s);
        }
        Some(Value::BoolValue(b)) => {
            out.extend_from_slice(b"{\"boolValue\":");
            out.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        Some(Value::IntValue(i)) => {
            out.extend_from_slice(b"{\"intValue\":");
            quoted_number(out, *i);
        }
        Some(Value::DoubleValue(d)) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            double(out, *d);
        }
        Some(Value::ArrayValue(a)) => {
            out.extend_from_slice(b"{\"arrayValue\":{\"values\":");
            list(out, &a.values, any_value);
            out.push(b'}');
        }
        Some(Value::KvlistValue(l)) => {
            out.extend_from_slice(b"{\"kvlistValue\":{\"values\":");
            list(out, &l.values, key_value);
            out.push(b'}');
        }
        Some(Value::BytesValue(_) | Value::StringValueStrindex(_)) => {
            derived(out, v);
            return;
        }
        None => out.push(b'{'),
    }
    out.push(b'}');
}

/// `[a,b,...]`, each item written by `item`.
fn list<T>(out: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

/// A rare shape through opentelemetry-proto's serde derive. Writing to a `Vec` cannot fail,
/// and the derives have no other failure.
fn derived(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *out, value);
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// 64-bit integers are strings in OTLP/JSON.
fn quoted_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.push(b'"');
    number(out, n);
    out.push(b'"');
}

/// As serde_json writes an `f64`: shortest round-trip form, `null` when not finite.
fn double(out: &mut Vec<u8>, d: f64) {
    if d.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(d).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex in quotes (trace and span ids).
fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'"');
}

/// The escape of each byte as serde_json writes it: 0 for none, `u` for `\u00XX`, else
/// the letter after the backslash.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of the eight bytes is a control character, `"` or `\` (the bit tricks of
/// "Bit Twiddling Hacks": a byte below 0x20, and a zero byte after XOR with the quote or the
/// backslash). Exact for "is there one", which is all it is asked.
fn needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero(quote) | zero(backslash)) & HIGHS != 0
}

/// A JSON string: clean runs are copied whole, eight bytes are checked at a time.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let word = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let escape = ESCAPE[usize::from(b)];
            if escape != 0 {
                out.extend_from_slice(&bytes[start..i]);
                out.push(b'\\');
                out.push(escape);
                if escape == b'u' {
                    out.extend_from_slice(b"00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
                start = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests;
