//! Keeping each request under the receiving collector's message limit.
//!
//! gRPC servers refuse messages over a size limit, 4 MiB by default in both this
//! collector's receiver (`max_recv_msg_size_mib`) and the OpenTelemetry Collector's, and
//! they refuse with OUT_OF_RANGE, which the OTLP rules call retryable: a batch over the
//! limit would be retried until `max_elapsed_time` and then lost, holding up every batch
//! behind it. So a batch that would encode larger than the limit is cut, by halves at item
//! boundaries, into requests that fit.

use prost::Message;

use crate::model::SignalData;

/// The default gRPC receive limit, less room for the request's own framing.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

/// Encoded size of `batch` as an export request (each element's tag and length prefix
/// included).
pub fn encoded_len(batch: &SignalData) -> usize {
    fn field<M: Message>(items: &[M]) -> usize {
        items
            .iter()
            .map(|m| {
                let len = m.encoded_len();
                1 + prost::encoding::encoded_len_varint(len as u64) + len
            })
            .sum()
    }
    match batch {
        SignalData::Traces(r) => field(r),
        SignalData::Metrics(r) => field(r),
        SignalData::Logs(r) => field(r),
    }
}

/// `None` if `batch` fits in `limit` bytes; otherwise the requests to send instead, in
/// order. A single item larger than `limit` goes alone: the receiver has the last word on
/// it.
pub fn split_to_fit(batch: &SignalData, limit: usize) -> Option<Vec<SignalData>> {
    if encoded_len(batch) <= limit {
        return None;
    }
    let mut out = Vec::new();
    // Parts still to look at, the next one on top.
    let mut pending = vec![batch.clone()];
    while let Some(mut part) = pending.pop() {
        let items = part.item_count();
        if items <= 1 || encoded_len(&part) <= limit {
            out.push(part);
            continue;
        }
        let front = part.split_front(items / 2);
        pending.push(part);
        pending.push(front);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn spans(n: usize, name_bytes: usize) -> SignalData {
        SignalData::Traces(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: "x".repeat(name_bytes),
                        ..Span::default()
                    })
                    .collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }])
    }

    #[test]
    fn the_size_is_the_requests_encoded_size() {
        use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;
        let batch = spans(10, 100);
        let SignalData::Traces(r) = &batch else {
            panic!("traces")
        };
        let request = ExportTraceServiceRequest {
            resource_spans: r.clone(),
        };
        assert_eq!(encoded_len(&batch), request.encoded_len());
    }

    #[test]
    fn a_batch_that_fits_is_sent_as_it_is() {
        assert!(split_to_fit(&spans(100, 100), MAX_REQUEST_BYTES).is_none());
    }

    #[test]
    fn a_large_batch_is_cut_in_order_into_parts_that_fit() {
        let batch = spans(1000, 1000);
        let limit = 64 * 1024;
        let parts = split_to_fit(&batch, limit).expect("over the limit");
        assert!(parts.len() >= 16);
        assert!(parts.iter().all(|p| encoded_len(p) <= limit));
        let mut joined = SignalData::empty(batch.signal());
        for p in parts {
            joined.append(p);
        }
        let ids = |d: &SignalData| -> Vec<Vec<u8>> {
            let SignalData::Traces(r) = d else {
                return Vec::new();
            };
            r.iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.span_id.clone())
                .collect()
        };
        assert_eq!(ids(&joined), ids(&batch), "every span once, in order");
    }

    #[test]
    fn an_item_larger_than_the_limit_goes_alone() {
        let parts = split_to_fit(&spans(3, 10_000), 5_000).expect("over the limit");
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.item_count() == 1));
    }
}
