//! X-Ray names shared by the `awsxray` receiver and exporter.

/// Span attribute holding the X-Ray document the span was made from, as JSON text: the
/// receiver stores it, the exporter sends it unchanged while it still belongs to the span.
pub const SEGMENT_DOCUMENT_ATTRIBUTE: &str = "aws.xray.segment_document";

/// Prefix of the span attributes holding a document's metadata namespace as JSON text
/// (`aws.xray.metadata.default`): the receiver writes them, the redaction processor reads
/// their keys.
pub const METADATA_PREFIX: &str = "aws.xray.metadata.";

/// An OTLP trace id in X-Ray form, `1-{first 8 hex}-{last 24 hex}`
/// (`1-5759e988-bd862e3fe1be46a994272793`), or `None` for a malformed or all-zero id. The
/// X-Ray exporter sends it; the CloudWatch Logs exporter writes it into log events so the
/// consoles can find a trace's log lines.
#[cfg(any(test, feature = "awsxray", feature = "awscloudwatchlogs"))]
pub fn trace_id(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let h = crate::model::ids::hex(bytes);
    Some(format!("1-{}-{}", &h[..8], &h[8..]))
}
