//! X-Ray names shared by the `awsxray` receiver and exporter.

/// Span attribute holding the X-Ray document the span was made from, as JSON text: the
/// receiver stores it, the exporter sends it unchanged while it still belongs to the span.
pub const SEGMENT_DOCUMENT_ATTRIBUTE: &str = "aws.xray.segment_document";
