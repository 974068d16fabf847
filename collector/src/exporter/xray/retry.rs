//! What is X-Ray's own in retrying: the entries of `UnprocessedTraceSegments`.
//!
//! Failed calls are classified by the shared AWS policy ([`crate::aws::retry`]):
//! throttling and server errors are retried after a pause; anything else the service
//! refuses (bad credentials, no permission, invalid request) would fail the same way again,
//! so those documents are dropped with the AWS error code as the reason.

pub(crate) use crate::aws::retry::RetryClass as Class;
use crate::aws::retry::THROTTLING_CODES;

/// Classifies one entry of `UnprocessedTraceSegments`. X-Ray does not document its error
/// codes, so only codes that say the document itself is invalid are permanent; anything
/// else is retried (bounded by the exporter's retry budget).
pub(crate) fn classify_unprocessed(code: Option<&str>) -> Class {
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => Class::Throttled,
        Some(c) if c.contains("Invalid") || c.contains("Validation") => Class::Permanent,
        _ => Class::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprocessed_codes_are_classified() {
        assert_eq!(
            classify_unprocessed(Some("ThrottledException")),
            Class::Throttled
        );
        assert_eq!(
            classify_unprocessed(Some("InvalidSegment")),
            Class::Permanent
        );
        assert_eq!(
            classify_unprocessed(Some("ValidationError")),
            Class::Permanent
        );
        assert_eq!(classify_unprocessed(Some("500")), Class::Transient);
        assert_eq!(classify_unprocessed(None), Class::Transient);
    }
}
