//! An upper bound on the memory an OTLP request takes once decoded, from its size on the
//! wire alone, so a receiver can reserve it ([`super::memory`]) before decoding anything.
//!
//! Decoding inflates: an empty span is 2 bytes in protobuf (its field tag and a zero
//! length) and a few hundred bytes as a decoded struct, so a 20 MiB body can ask for
//! gigabytes. The bound follows from protobuf's minimum encoded sizes:
//!
//! - every element of a repeated message field costs at least 2 wire bytes (tag + length)
//!   and at most `size_of::<T>()` decoded, twice over while its `Vec` grows by doubling;
//! - a string or bytes field of n bytes costs n + 2 wire bytes and n decoded (plus the
//!   allocator's smallest chunk, [`MIN_ALLOCATION`], for every non-empty one);
//! - a packed repeated integer costs at least 1 wire byte and 8 decoded, twice over;
//! - a non-repeated submessage lives inside its parent's struct: no extra memory.
//!
//! So decoded bytes ≤ wire bytes × the largest of those ratios, plus the wire buffer itself.
//! OTLP/JSON is bounded by the same ratio: its smallest element (`{}` and a separator) is
//! no shorter than protobuf's. Real telemetry decodes to far less (strings and ids dominate
//! it); the bound only has to be safe, and a request is refused by it only when even that
//! much is not free.

use std::mem::size_of;

use aurastream_proto::otlp::common::{AnyValue, KeyValue};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::metrics::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, SummaryDataPoint, summary_data_point::ValueAtQuantile,
};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span};

use super::Signal;

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
    let element = 2 * largest_element / MIN_ELEMENT_WIRE;
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
            a.capacity() * size_of::<KeyValue>() + a.iter().map(|kv| kv.key.capacity()).sum::<usize>()
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
    fn empty_spans_the_worst_case_stay_under_the_bound() {
        let wire = spans(100_000, Span::default()).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let real = decoded_bytes(&decoded) + wire.len();
        let bound = bound(Signal::Traces, wire.len());
        assert!(real <= bound, "decoded {real} > bound {bound}");
        // Tight enough to mean something: within 4x of the true worst case.
        assert!(bound < 4 * real, "bound {bound} vs decoded {real}");
    }

    #[test]
    fn attributes_with_one_byte_keys_stay_under_the_bound() {
        let span = Span {
            attributes: vec![
                KeyValue {
                    key: "k".into(),
                    value: None
                };
                50
            ],
            ..Default::default()
        };
        let wire = spans(2_000, span).encode_to_vec();
        let decoded: ExportTraceServiceRequest = Message::decode(&wire[..]).unwrap();
        let real = decoded_bytes(&decoded) + wire.len();
        assert!(real <= bound(Signal::Traces, wire.len()));
    }

    #[test]
    fn the_ratio_is_that_of_the_largest_repeated_struct() {
        assert_eq!(ratio_for(Signal::Traces), size_of::<Span>());
        assert!(ratio_for(Signal::Metrics) >= size_of::<HistogramDataPoint>());
        assert!(ratio_for(Signal::Logs) >= size_of::<LogRecord>());
        assert_eq!(bound(Signal::Logs, usize::MAX), usize::MAX, "saturates");
    }
}
