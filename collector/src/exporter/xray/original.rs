//! Documents that arrived as X-Ray documents and go out unchanged.
//!
//! The `awsxray` receiver keeps each document an X-Ray SDK sent in the span attribute
//! [`SEGMENT_DOCUMENT_ATTRIBUTE`]. Sending that text instead of translating the span back
//! keeps every field the SDK wrote, including ones the span model has no place for
//! (`in_progress`, `precursor_ids`, SDK-specific `aws` blocks). The document is used only
//! while it still belongs to the span (same trace and segment id; a processor that
//! re-parented or re-identified the span gets a fresh translation) and fits X-Ray's size
//! limit; otherwise the span is translated like any other.
//!
//! Attribute processors change the span, not this text: redacting a field from traces that
//! came in as X-Ray documents means redacting it here too, or deleting the attribute.

use serde::Deserialize;

use aurastream_proto::otlp::common::any_value::Value;
use aurastream_proto::otlp::trace::Span;
use aurastream_proto::xray::MAX_DOCUMENT_BYTES;

use super::translate::ids;

pub use crate::aws::xray::SEGMENT_DOCUMENT_ATTRIBUTE;

/// The ids of a document; everything else in it is left unread.
#[derive(Deserialize)]
struct Ids<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    trace_id: &'a str,
}

/// The span's original document and its id, when it has one that still applies.
pub(crate) fn document(span: &Span) -> Option<(String, &str)> {
    let text = span.attributes.iter().rev().find_map(|kv| {
        if kv.key != SEGMENT_DOCUMENT_ATTRIBUTE {
            return None;
        }
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })?;
    if text.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    let doc: Ids<'_> = serde_json::from_str(text).ok()?;
    let id = ids::span_id(&span.span_id)?;
    (doc.id == id && Some(doc.trace_id) == ids::trace_id(&span.trace_id).as_deref())
        .then_some((id, text))
}

#[cfg(test)]
mod tests {
    use aurastream_proto::otlp::common::{AnyValue, KeyValue};

    use super::*;

    fn span(document: &str) -> Span {
        Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 7],
            attributes: vec![KeyValue {
                key: SEGMENT_DOCUMENT_ATTRIBUTE.into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(document.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_document_of_the_span_is_sent_as_it_is() {
        let doc = r#"{"name":"api","id":"0000000000000007","trace_id":"1-01020304-05060708090a0b0c0d0e0f10","start_time":1.0,"in_progress":true,"precursor_ids":["x"]}"#;
        assert_eq!(
            document(&span(doc)),
            Some(("0000000000000007".to_owned(), doc))
        );
    }

    #[test]
    fn a_document_that_no_longer_fits_the_span_is_ignored() {
        let other_id =
            r#"{"id":"0000000000000008","trace_id":"1-01020304-05060708090a0b0c0d0e0f10"}"#;
        let other_trace =
            r#"{"id":"0000000000000007","trace_id":"1-01020304-05060708090a0b0c0d0e0f11"}"#;
        let too_large = format!(
            r#"{{"id":"0000000000000007","trace_id":"1-01020304-05060708090a0b0c0d0e0f10","pad":"{}"}}"#,
            "x".repeat(MAX_DOCUMENT_BYTES)
        );
        for doc in [other_id, other_trace, "not json", &too_large] {
            assert_eq!(document(&span(doc)), None, "{}", &doc[..doc.len().min(80)]);
        }
        assert_eq!(document(&Span::default()), None);
    }
}
