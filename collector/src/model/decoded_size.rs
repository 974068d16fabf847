//! An upper bound on the memory an OTLP request takes once decoded, from its size on the
//! wire alone, so a receiver can reserve it ([`super::memory`]) before decoding anything.
//!
//! Decoding inflates: an empty span is 2 bytes in protobuf (its field tag and a zero
//! length) and a few hundred bytes as a decoded struct, so a 20 MiB body can ask for
//! gigabytes. The bound follows from protobuf's minimum encoded sizes:
//!
//! - every element of a repeated message field costs at least 2 wire bytes (tag + length)
//!   and `size_of::<T>()` decoded, twice over while its `Vec` grows by doubling, and four
//!   times over for the first (a `Vec`'s first allocation holds 4 elements);
//! - a string or bytes field of n bytes costs n + 2 wire bytes and n decoded (plus the
//!   allocator's smallest chunk, [`MIN_ALLOCATION`], for every non-empty one);
//! - a packed repeated integer costs at least 1 wire byte and 8 decoded, twice over;
//! - a non-repeated submessage lives inside its parent's struct: no extra memory.
//!
//! So decoded bytes ≤ wire bytes × the largest of those ratios ([`bound`]), plus the wire
//! buffer itself. OTLP/JSON is bounded by the same ratio: its smallest element (`{}` and a
//! separator) is no shorter than protobuf's.
//!
//! Real telemetry decodes to far less than that (strings and ids dominate it): a 1 MiB
//! request of 20 KB log bodies is about 1 MiB decoded, not hundreds. So [`bound`] is only
//! the fast path, free to compute from a `Content-Length`; when it does not fit in the
//! budget, [`scan`] walks the protobuf's tags without allocating and adds up what each
//! element will take (the structs, their `Vec`s' growth, the strings), which is a bound
//! too, and a tight one. Only what does not fit even then is refused.

use std::mem::size_of;

use aurastream_proto::otlp::common::{AnyValue, KeyValue};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::metrics::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, SummaryDataPoint, summary_data_point::ValueAtQuantile,
};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span};

use super::{Signal, SignalData};

/// The smallest chunk glibc's allocator hands out: what a 1-byte string really costs.
const MIN_ALLOCATION: usize = 32;
/// Wire bytes of the smallest repeated element (tag + zero length) and of the smallest
/// non-empty string field (tag + length + 1 byte).
const MIN_ELEMENT_WIRE: usize = 2;
const MIN_STRING_WIRE: usize = 3;

const fn max(values: &[usize]) -> usize {
    let mut m = 0;
    let mut i = 0;
    while i < values.len() {
        if values[i] > m {
            m = values[i];
        }
        i += 1;
    }
    m
}

/// Decoded bytes per wire byte, at most, for the largest element a signal's messages repeat.
const fn ratio(largest_element: usize) -> usize {
    let element = 4 * largest_element / MIN_ELEMENT_WIRE;
    let string = MIN_ALLOCATION.div_ceil(MIN_STRING_WIRE);
    let packed = 2 * size_of::<u64>();
    max(&[element, string, packed])
}

const COMMON: [usize; 2] = [size_of::<KeyValue>(), size_of::<AnyValue>()];

const TRACES: usize = ratio(max(&[
    max(&COMMON),
    size_of::<ResourceSpans>(),
    size_of::<ScopeSpans>(),
    size_of::<Span>(),
    size_of::<span::Event>(),
    size_of::<span::Link>(),
]));

const METRICS: usize = ratio(max(&[
    max(&COMMON),
    size_of::<ResourceMetrics>(),
    size_of::<ScopeMetrics>(),
    size_of::<Metric>(),
    size_of::<NumberDataPoint>(),
    size_of::<HistogramDataPoint>(),
    size_of::<ExponentialHistogramDataPoint>(),
    size_of::<SummaryDataPoint>(),
    size_of::<ValueAtQuantile>(),
    size_of::<Exemplar>(),
]));

const LOGS: usize = ratio(max(&[
    max(&COMMON),
    size_of::<ResourceLogs>(),
    size_of::<ScopeLogs>(),
    size_of::<LogRecord>(),
]));

/// Decoded bytes per wire byte, at most, for a request of `signal`.
pub const fn ratio_for(signal: Signal) -> usize {
    match signal {
        Signal::Traces => TRACES,
        Signal::Metrics => METRICS,
        Signal::Logs => LOGS,
    }
}

/// At most how many bytes a request of `wire_len` bytes holds while and after it is
/// decoded: the decoded message and the (decompressed) body it is decoded from.
pub fn bound(signal: Signal, wire_len: usize) -> usize {
    wire_len.saturating_mul(ratio_for(signal) + 1)
}

/// The message types of OTLP, as the scan walks them.
#[derive(Debug, Clone, Copy)]
enum Msg {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    Gauge,
    Histogram,
    ExponentialHistogram,
    Summary,
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint,
    Buckets,
    SummaryDataPoint,
    ValueAtQuantile,
    Exemplar,
    Resource,
    Scope,
    EntityRef,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a field of a message decodes to.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// A message inside its parent's struct.
    One(Msg),
    /// A message in a `Vec`.
    Many(Msg),
    /// A string or bytes.
    Bytes,
    /// A string in a `Vec`.
    ManyStrings,
    /// 8-byte numbers in a `Vec`, packed or not.
    Numbers,
    /// Numbers, enums, booleans, unknown fields: nothing beyond the parent's struct.
    Inline,
}

impl Msg {
    fn size(self) -> usize {
        use aurastream_proto::otlp::common::{ArrayValue, InstrumentationScope, KeyValueList};
        use aurastream_proto::otlp::metrics::{
            ExponentialHistogram, Gauge, Histogram, Summary, exponential_histogram_data_point,
        };
        use aurastream_proto::otlp::resource::Resource;
        match self {
            Msg::TraceRequest | Msg::LogsRequest | Msg::MetricsRequest => size_of::<Vec<u8>>(),
            Msg::ResourceSpans => size_of::<ResourceSpans>(),
            Msg::ScopeSpans => size_of::<ScopeSpans>(),
            Msg::Span => size_of::<Span>(),
            Msg::Event => size_of::<span::Event>(),
            Msg::Link => size_of::<span::Link>(),
            Msg::Status => size_of::<aurastream_proto::otlp::trace::Status>(),
            Msg::ResourceLogs => size_of::<ResourceLogs>(),
            Msg::ScopeLogs => size_of::<ScopeLogs>(),
            Msg::LogRecord => size_of::<LogRecord>(),
            Msg::ResourceMetrics => size_of::<ResourceMetrics>(),
            Msg::ScopeMetrics => size_of::<ScopeMetrics>(),
            Msg::Metric => size_of::<Metric>(),
            Msg::Gauge => size_of::<Gauge>(),
            Msg::Histogram => size_of::<Histogram>(),
            Msg::ExponentialHistogram => size_of::<ExponentialHistogram>(),
            Msg::Summary => size_of::<Summary>(),
            Msg::NumberDataPoint => size_of::<NumberDataPoint>(),
            Msg::HistogramDataPoint => size_of::<HistogramDataPoint>(),
            Msg::ExponentialHistogramDataPoint => size_of::<ExponentialHistogramDataPoint>(),
            Msg::Buckets => size_of::<exponential_histogram_data_point::Buckets>(),
            Msg::SummaryDataPoint => size_of::<SummaryDataPoint>(),
            Msg::ValueAtQuantile => size_of::<ValueAtQuantile>(),
            Msg::Exemplar => size_of::<Exemplar>(),
            Msg::Resource => size_of::<Resource>(),
            Msg::Scope => size_of::<InstrumentationScope>(),
            Msg::EntityRef => size_of::<aurastream_proto::otlp::common::EntityRef>(),
            Msg::KeyValue => size_of::<KeyValue>(),
            Msg::AnyValue => size_of::<AnyValue>(),
            Msg::ArrayValue => size_of::<ArrayValue>(),
            Msg::KeyValueList => size_of::<KeyValueList>(),
        }
    }

    /// The OTLP schema (opentelemetry-proto's field numbers), as far as memory goes.
    fn field(self, tag: u32) -> Field {
        use Field::*;
        match (self, tag) {
            (Msg::TraceRequest, 1) => Many(Msg::ResourceSpans),
            (Msg::LogsRequest, 1) => Many(Msg::ResourceLogs),
            (Msg::MetricsRequest, 1) => Many(Msg::ResourceMetrics),
            (Msg::ResourceSpans | Msg::ResourceLogs | Msg::ResourceMetrics, 1) => {
                One(Msg::Resource)
            }
            (Msg::ResourceSpans, 2) => Many(Msg::ScopeSpans),
            (Msg::ResourceLogs, 2) => Many(Msg::ScopeLogs),
            (Msg::ResourceMetrics, 2) => Many(Msg::ScopeMetrics),
            (Msg::ScopeSpans | Msg::ScopeLogs | Msg::ScopeMetrics, 1) => One(Msg::Scope),
            (Msg::ScopeSpans, 2) => Many(Msg::Span),
            (Msg::ScopeLogs, 2) => Many(Msg::LogRecord),
            (Msg::ScopeMetrics, 2) => Many(Msg::Metric),
            (
                Msg::ResourceSpans
                | Msg::ResourceLogs
                | Msg::ResourceMetrics
                | Msg::ScopeSpans
                | Msg::ScopeLogs
                | Msg::ScopeMetrics,
                3,
            ) => Bytes,
            (Msg::Span, 1..=5) => Bytes,
            (Msg::Span, 9) => Many(Msg::KeyValue),
            (Msg::Span, 11) => Many(Msg::Event),
            (Msg::Span, 13) => Many(Msg::Link),
            (Msg::Span, 15) => One(Msg::Status),
            (Msg::Event, 2) => Bytes,
            (Msg::Event, 3) => Many(Msg::KeyValue),
            (Msg::Link, 1..=3) => Bytes,
            (Msg::Link, 4) => Many(Msg::KeyValue),
            (Msg::Status, 2) => Bytes,
            (Msg::LogRecord, 3 | 9 | 10 | 12) => Bytes,
            (Msg::LogRecord, 5) => One(Msg::AnyValue),
            (Msg::LogRecord, 6) => Many(Msg::KeyValue),
            (Msg::Metric, 1..=3) => Bytes,
            (Msg::Metric, 12) => Many(Msg::KeyValue),
            (Msg::Metric, 5 | 7) => One(Msg::Gauge),
            (Msg::Metric, 9) => One(Msg::Histogram),
            (Msg::Metric, 10) => One(Msg::ExponentialHistogram),
            (Msg::Metric, 11) => One(Msg::Summary),
            (Msg::Gauge, 1) => Many(Msg::NumberDataPoint),
            (Msg::Histogram, 1) => Many(Msg::HistogramDataPoint),
            (Msg::ExponentialHistogram, 1) => Many(Msg::ExponentialHistogramDataPoint),
            (Msg::Summary, 1) => Many(Msg::SummaryDataPoint),
            (Msg::NumberDataPoint, 7) => Many(Msg::KeyValue),
            (Msg::NumberDataPoint, 5) => Many(Msg::Exemplar),
            (Msg::HistogramDataPoint, 9) => Many(Msg::KeyValue),
            (Msg::HistogramDataPoint, 6 | 7) => Numbers,
            (Msg::HistogramDataPoint, 8) => Many(Msg::Exemplar),
            (Msg::ExponentialHistogramDataPoint, 1) => Many(Msg::KeyValue),
            (Msg::ExponentialHistogramDataPoint, 8 | 9) => One(Msg::Buckets),
            (Msg::ExponentialHistogramDataPoint, 11) => Many(Msg::Exemplar),
            (Msg::Buckets, 2) => Numbers,
            (Msg::SummaryDataPoint, 7) => Many(Msg::KeyValue),
            (Msg::SummaryDataPoint, 6) => Many(Msg::ValueAtQuantile),
            (Msg::Exemplar, 7) => Many(Msg::KeyValue),
            (Msg::Exemplar, 4 | 5) => Bytes,
            (Msg::Resource, 1) => Many(Msg::KeyValue),
            (Msg::Resource, 3) => Many(Msg::EntityRef),
            (Msg::Scope, 1 | 2) => Bytes,
            (Msg::Scope, 3) => Many(Msg::KeyValue),
            (Msg::EntityRef, 1 | 2) => Bytes,
            (Msg::EntityRef, 3 | 4) => ManyStrings,
            (Msg::KeyValue, 1) => Bytes,
            (Msg::KeyValue, 2) => One(Msg::AnyValue),
            (Msg::AnyValue, 1 | 7) => Bytes,
            (Msg::AnyValue, 5) => One(Msg::ArrayValue),
            (Msg::AnyValue, 6) => One(Msg::KeyValueList),
            (Msg::ArrayValue, 1) => Many(Msg::AnyValue),
            (Msg::KeyValueList, 1) => Many(Msg::KeyValue),
            _ => Inline,
        }
    }
}

/// Deeper than prost decodes: such a message fails to decode anyway.
const MAX_DEPTH: u32 = 100;

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Bytes the fields of one message of kind `msg` allocate, at most (not counting the
/// message's own struct, which its parent counts).
fn fields(msg: Msg, mut buf: &[u8], depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut total = 0usize;
    // Repeated fields seen so far in this message: the first element of each pays for
    // its `Vec`'s first allocation (4 elements), the others for doubling (2 each).
    let mut started = 0u64;
    let mut first = |tag: u32| {
        let bit = 1u64 << (tag % 64);
        let new = started & bit == 0;
        started |= bit;
        new
    };
    let allocation = |len: usize| if len == 0 { 0 } else { len.max(MIN_ALLOCATION) };
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let tag = u32::try_from(key >> 3).ok()?;
        let payload: &[u8] = match key & 7 {
            0 => {
                varint(&mut buf)?;
                &[]
            }
            1 => {
                buf = buf.get(8..)?;
                &[]
            }
            5 => {
                buf = buf.get(4..)?;
                &[]
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (payload, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                payload
            }
            _ => return None,
        };
        let wire_type = key & 7;
        total = total.saturating_add(match msg.field(tag) {
            Field::Inline => 0,
            Field::Bytes => allocation(payload.len()),
            Field::ManyStrings => {
                let slots = if first(tag) { 4 } else { 2 };
                slots * size_of::<String>() + allocation(payload.len())
            }
            Field::Numbers => {
                let count = if wire_type == 2 {
                    // Packed: at most one number per byte (varints), fewer if fixed.
                    payload.len()
                } else {
                    1
                };
                let slots = if first(tag) { 2 * count + 4 } else { 2 * count };
                slots * size_of::<u64>()
            }
            Field::One(child) => fields(child, payload, depth + 1)?,
            Field::Many(child) => {
                let slots = if first(tag) { 4 } else { 2 };
                (slots * child.size()).saturating_add(fields(child, payload, depth + 1)?)
            }
        });
    }
    Some(total)
}

/// At most how many bytes a protobuf request of `signal` holds once decoded, with the body
/// it is decoded from, by walking its fields; `None` if it is not valid protobuf (it will
/// not decode either).
pub fn scan(signal: Signal, body: &[u8]) -> Option<usize> {
    let request = match signal {
        Signal::Traces => Msg::TraceRequest,
        Signal::Metrics => Msg::MetricsRequest,
        Signal::Logs => Msg::LogsRequest,
    };
    let fields = fields(request, body, 0)?;
    Some(
        fields
            .saturating_add(body.len())
            .saturating_add(size_of::<Vec<u8>>()),
    )
}

/// The bytes decoded telemetry holds: its structs and their heap (by capacity, so what
/// `Vec` growth left unused counts too). What a batch is charged to the memory budget
/// while the pipelines hold it; the walk costs about what computing its encoded length does.
pub fn held(data: &SignalData) -> usize {
    match data {
        SignalData::Traces(r) => vec_of(r, |rs| {
            resource(&rs.resource)
                + rs.schema_url.capacity()
                + vec_of(&rs.scope_spans, |ss| {
                    scope(&ss.scope) + ss.schema_url.capacity() + vec_of(&ss.spans, span_heap)
                })
        }),
        SignalData::Metrics(r) => vec_of(r, |rm| {
            resource(&rm.resource)
                + rm.schema_url.capacity()
                + vec_of(&rm.scope_metrics, |sm| {
                    scope(&sm.scope) + sm.schema_url.capacity() + vec_of(&sm.metrics, metric_heap)
                })
        }),
        SignalData::Logs(r) => vec_of(r, |rl| {
            resource(&rl.resource)
                + rl.schema_url.capacity()
                + vec_of(&rl.scope_logs, |sl| {
                    scope(&sl.scope)
                        + sl.schema_url.capacity()
                        + vec_of(&sl.log_records, |l| {
                            l.severity_text.capacity()
                                + any_value(&l.body)
                                + attributes(&l.attributes)
                                + l.trace_id.capacity()
                                + l.span_id.capacity()
                                + l.event_name.capacity()
                        })
                })
        }),
    }
}

/// A `Vec`'s buffer and what each element holds besides.
fn vec_of<T>(v: &Vec<T>, heap: impl Fn(&T) -> usize) -> usize {
    v.capacity() * size_of::<T>() + v.iter().map(heap).sum::<usize>()
}

fn attributes(a: &Vec<KeyValue>) -> usize {
    vec_of(a, |kv| kv.key.capacity() + any_value(&kv.value))
}

fn any_value(v: &Option<AnyValue>) -> usize {
    v.as_ref().map_or(0, any)
}

fn any(v: &AnyValue) -> usize {
    use aurastream_proto::otlp::common::any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.capacity(),
        Some(Value::BytesValue(b)) => b.capacity(),
        Some(Value::ArrayValue(a)) => vec_of(&a.values, any),
        Some(Value::KvlistValue(l)) => attributes(&l.values),
        _ => 0,
    }
}

fn resource(r: &Option<aurastream_proto::otlp::resource::Resource>) -> usize {
    r.as_ref().map_or(0, |r| {
        attributes(&r.attributes)
            + vec_of(&r.entity_refs, |e| {
                e.schema_url.capacity()
                    + e.r#type.capacity()
                    + vec_of(&e.id_keys, String::capacity)
                    + vec_of(&e.description_keys, String::capacity)
            })
    })
}

fn scope(s: &Option<aurastream_proto::otlp::common::InstrumentationScope>) -> usize {
    s.as_ref().map_or(0, |s| {
        s.name.capacity() + s.version.capacity() + attributes(&s.attributes)
    })
}

fn span_heap(s: &Span) -> usize {
    s.trace_id.capacity()
        + s.span_id.capacity()
        + s.trace_state.capacity()
        + s.parent_span_id.capacity()
        + s.name.capacity()
        + attributes(&s.attributes)
        + vec_of(&s.events, |e| e.name.capacity() + attributes(&e.attributes))
        + vec_of(&s.links, |l| {
            l.trace_id.capacity()
                + l.span_id.capacity()
                + l.trace_state.capacity()
                + attributes(&l.attributes)
        })
        + s.status.as_ref().map_or(0, |st| st.message.capacity())
}

fn exemplars(e: &Vec<Exemplar>) -> usize {
    vec_of(e, |x| {
        attributes(&x.filtered_attributes) + x.span_id.capacity() + x.trace_id.capacity()
    })
}

fn metric_heap(m: &Metric) -> usize {
    use aurastream_proto::otlp::metrics::metric::Data;
    let numbers = |p: &NumberDataPoint| attributes(&p.attributes) + exemplars(&p.exemplars);
    let points = match &m.data {
        Some(Data::Gauge(g)) => vec_of(&g.data_points, numbers),
        Some(Data::Sum(s)) => vec_of(&s.data_points, numbers),
        Some(Data::Histogram(h)) => vec_of(&h.data_points, |p| {
            attributes(&p.attributes)
                + exemplars(&p.exemplars)
                + p.bucket_counts.capacity() * size_of::<u64>()
                + p.explicit_bounds.capacity() * size_of::<f64>()
        }),
        Some(Data::ExponentialHistogram(h)) => vec_of(&h.data_points, |p| {
            let buckets = |b: &Option<_>| {
                b.as_ref().map_or(0, |b: &aurastream_proto::otlp::metrics::exponential_histogram_data_point::Buckets| {
                    b.bucket_counts.capacity() * size_of::<u64>()
                })
            };
            attributes(&p.attributes)
                + exemplars(&p.exemplars)
                + buckets(&p.positive)
                + buckets(&p.negative)
        }),
        Some(Data::Summary(s)) => vec_of(&s.data_points, |p| {
            attributes(&p.attributes) + p.quantile_values.capacity() * size_of::<ValueAtQuantile>()
        }),
        None => 0,
    };
    m.name.capacity()
        + m.description.capacity()
        + m.unit.capacity()
        + attributes(&m.metadata)
        + points
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::KeyValue;
    use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;
    use prost::Message;

    /// What a decoded request really holds: its structs and their heap, counted by walking
    /// it (capacities, so `Vec` growth is included).
    fn decoded_bytes(r: &ExportTraceServiceRequest) -> usize {
        let kvs = |a: &Vec<KeyValue>| {
            a.capacity() * size_of::<KeyValue>()
                + a.iter().map(|kv| kv.key.capacity()).sum::<usize>()
        };
        size_of::<ExportTraceServiceRequest>()
            + r.resource_spans.capacity() * size_of::<ResourceSpans>()
            + r.resource_spans
                .iter()
                .map(|rs| {
                    rs.scope_spans.capacity() * size_of::<ScopeSpans>()
                        + rs.scope_spans
                            .iter()
                            .map(|ss| {
                                ss.spans.capacity() * size_of::<Span>()
                                    + ss.spans
                                        .iter()
                                        .map(|s| {
                                            kvs(&s.attributes)
                                                + s.name.capacity()
                                                + s.trace_id.capacity()
                                                + s.span_id.capacity()
                                        })
                                        .sum::<usize>()
                            })
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    fn spans(n: usize, span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn empty_spans_the_worst_case_stay_under_both_bounds() {
        let wire = spans(100_000, Span::default()).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let real = decoded_bytes(&decoded) + wire.len();
        let scanned = scan(Signal::Traces, &wire).unwrap();
        let bound = bound(Signal::Traces, wire.len());
        assert!(
            real <= scanned && scanned <= bound,
            "{real} {scanned} {bound}"
        );
        // Tight enough to mean something: within 2x of what decoding really takes.
        assert!(scanned < 2 * real, "scan {scanned} vs decoded {real}");
    }

    #[test]
    fn one_attribute_per_span_pays_for_a_vec_of_four() {
        let span = Span {
            attributes: vec![KeyValue {
                key: "k".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let wire = spans(10_000, span).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let real = decoded_bytes(&decoded) + wire.len();
        assert!(real <= scan(Signal::Traces, &wire).unwrap());
        assert!(real <= bound(Signal::Traces, wire.len()));
    }

    #[test]
    fn attributes_with_one_byte_keys_stay_under_both_bounds() {
        let span = Span {
            attributes: vec![
                KeyValue {
                    key: "k".into(),
                    ..Default::default()
                };
                50
            ],
            name: "n".repeat(100),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let wire = spans(2_000, span).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let real = decoded_bytes(&decoded) + wire.len();
        assert!(real <= scan(Signal::Traces, &wire).unwrap());
        assert!(real <= bound(Signal::Traces, wire.len()));
    }

    #[test]
    fn large_log_bodies_scan_to_about_their_size() {
        use aurastream_proto::otlp::common::any_value::Value;
        use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
        let record = LogRecord {
            body: Some(AnyValue {
                value: Some(Value::StringValue("x".repeat(20_000))),
            }),
            ..Default::default()
        };
        let wire = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record; 50],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let scanned = scan(Signal::Logs, &wire).unwrap();
        assert!(scanned >= 2 * 50 * 20_000, "the bodies and the wire buffer");
        assert!(
            scanned < 2 * wire.len() + 100_000,
            "{scanned} for {} wire bytes",
            wire.len()
        );
        assert!(
            bound(Signal::Logs, wire.len()) > 100 * scanned,
            "the fast path is far looser"
        );
    }

    #[test]
    fn metrics_numbers_and_exemplars_are_walked() {
        use aurastream_proto::otlp::metrics::{Histogram, metric::Data};
        use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
        let point = HistogramDataPoint {
            bucket_counts: vec![7; 1000],
            explicit_bounds: vec![1.0; 999],
            exemplars: vec![Exemplar::default(); 10],
            ..Default::default()
        };
        let metric = Metric {
            name: "m".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![point; 10],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        };
        let wire = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![metric],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let scanned = scan(Signal::Metrics, &wire).unwrap();
        let numbers = 10 * (1000 + 999) * size_of::<u64>();
        let exemplars = 10 * 10 * size_of::<Exemplar>();
        assert!(scanned >= numbers + exemplars, "{scanned}");
    }

    #[test]
    fn held_is_what_the_decoded_structs_take() {
        let span = Span {
            attributes: vec![
                KeyValue {
                    key: "key".into(),
                    ..Default::default()
                };
                3
            ],
            name: "n".repeat(40),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let wire = spans(1_000, span).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let walked = decoded_bytes(&decoded) - size_of::<ExportTraceServiceRequest>();
        let data = SignalData::Traces(decoded.resource_spans);
        assert_eq!(held(&data), walked);
        assert!(
            held(&data) > 2 * wire.len(),
            "decoded is larger than encoded"
        );
        assert!(held(&data) <= scan(Signal::Traces, &wire).unwrap());
    }

    #[test]
    fn malformed_protobuf_scans_to_nothing() {
        assert_eq!(
            scan(Signal::Traces, &[0x0a, 0x05, 0x01]),
            None,
            "length past the end"
        );
        assert_eq!(scan(Signal::Traces, &[0x0b]), None, "group wire type");
        assert_eq!(scan(Signal::Logs, &[]), Some(size_of::<Vec<u8>>()));
    }

    #[test]
    fn the_ratio_is_that_of_the_largest_repeated_struct() {
        assert_eq!(ratio_for(Signal::Traces), 2 * size_of::<Span>());
        assert!(ratio_for(Signal::Metrics) >= 2 * size_of::<HistogramDataPoint>());
        assert!(ratio_for(Signal::Logs) >= 2 * size_of::<LogRecord>());
        assert_eq!(bound(Signal::Logs, usize::MAX), usize::MAX, "saturates");
    }
}
