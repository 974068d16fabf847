//! Request bodies, encoded straight from the batch: the protobuf body of an OTLP export
//! request is its resources as field 1, so they are written one after another without
//! building (and copying the batch into) an `Export*ServiceRequest`.

use std::io::Write;

use flate2::write::GzEncoder;
use prost::Message;
use prost::encoding::message;

use super::config::{Compression, Encoding};
use crate::model::SignalData;
use crate::output::otlp_json::to_otlp_json;

/// `resource_*` is field 1 of every OTLP export request.
const RESOURCES_FIELD: u32 = 1;

/// The uncompressed protobuf size of `batch` as one export request.
pub fn proto_len(batch: &SignalData) -> usize {
    fn len<M: Message>(items: &[M]) -> usize {
        items
            .iter()
            .map(|m| message::encoded_len(RESOURCES_FIELD, m))
            .sum()
    }
    match batch {
        SignalData::Traces(r) => len(r),
        SignalData::Metrics(r) => len(r),
        SignalData::Logs(r) => len(r),
    }
}

/// `batch` as an OTLP export request body.
pub fn encode(batch: &SignalData, encoding: Encoding) -> Result<Vec<u8>, serde_json::Error> {
    match encoding {
        Encoding::Json => to_otlp_json(batch),
        Encoding::Proto => {
            fn put<M: Message>(items: &[M], buf: &mut Vec<u8>) {
                for m in items {
                    message::encode(RESOURCES_FIELD, m, buf);
                }
            }
            let mut buf = Vec::with_capacity(proto_len(batch));
            match batch {
                SignalData::Traces(r) => put(r, &mut buf),
                SignalData::Metrics(r) => put(r, &mut buf),
                SignalData::Logs(r) => put(r, &mut buf),
            }
            Ok(buf)
        }
    }
}

/// Compresses `body`. gzip at level 1: on span batches it keeps most of the default
/// level's saving at a fraction of its CPU, which is what bounds one core's throughput.
pub fn compress(body: Vec<u8>, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => body,
        Compression::Gzip => {
            let mut gz = GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(&body);
            gz.finish().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
    use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;

    fn batch() -> Vec<ResourceSpans> {
        (0..3)
            .map(|r| ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..4u8)
                        .map(|i| Span {
                            span_id: vec![i; 8],
                            name: format!("r{r} s{i}"),
                            ..Span::default()
                        })
                        .collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            })
            .collect()
    }

    #[test]
    fn the_direct_encoding_is_the_export_request() {
        let r = batch();
        let body = encode(&SignalData::Traces(r.clone()), Encoding::Proto).unwrap();
        let request = ExportTraceServiceRequest { resource_spans: r };
        assert_eq!(body, request.encode_to_vec());
        assert_eq!(
            proto_len(&SignalData::Traces(request.resource_spans)),
            body.len()
        );
    }

    #[test]
    fn gzip_round_trips() {
        let body = encode(&SignalData::Traces(batch()), Encoding::Json).unwrap();
        let packed = compress(body.clone(), Compression::Gzip);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(compress(body.clone(), Compression::None), body);
    }
}
