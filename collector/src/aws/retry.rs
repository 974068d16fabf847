//! The retry policy the AWS exporters share: which failures are worth retrying, by AWS
//! error code and HTTP status. When to try again is the exporter driver's business
//! (`topology::driver`, the one retry loop).
//!
//! The exporters' AWS calls go through the collector's own signed client
//! (`aws::signed_http`), which never retries, so this module is the one place that decides.
//! Exporters keep only what is specific to their API on top (CloudWatch Logs creates a
//! missing group and retries; X-Ray classifies the entries of `UnprocessedTraceSegments`).
//!
//! Whether a failed call may nevertheless have been applied (a timeout, or a connection
//! broken after the request went out) is known where the call is made
//! (`signed_http::CallFailure::maybe_delivered`): resending is still right, but the items
//! may then exist twice at the destination, so exporters count them (`possibly_duplicated`).

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The service asked us to slow down: back off, then retry.
    Throttled,
    /// A server-side or network hiccup: retry.
    Transient,
    /// Retrying the same request cannot help.
    Permanent,
}

/// Error codes AWS services use for "slow down" (`ThrottledException` is X-Ray's,
/// `ThrottlingException` CloudWatch's, `RequestLimitExceeded` EC2-style APIs').
pub const THROTTLING_CODES: &[&str] = &[
    "ThrottledException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
];

/// Error codes for failures on AWS's side that a later attempt usually gets past.
pub const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    // The credential chain refreshes expired credentials before the next call.
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Classifies a failed call by AWS error code and HTTP status. Either may be missing; no
/// status at all means no answer came, which is worth retrying.
pub fn classify(code: Option<&str>, status: Option<u16>) -> RetryClass {
    if code.is_some_and(|c| THROTTLING_CODES.contains(&c)) || status == Some(429) {
        return RetryClass::Throttled;
    }
    if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        return RetryClass::Transient;
    }
    match status {
        Some(s) if s >= 500 => RetryClass::Transient,
        None => RetryClass::Transient,
        Some(_) => RetryClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_classified() {
        use RetryClass::*;
        for (code, status, want) in [
            // Throttling, whatever the status code says.
            (Some("ThrottlingException"), Some(400), Throttled),
            (Some("ThrottledException"), Some(429), Throttled),
            (Some("ThrottledException"), Some(400), Throttled),
            (Some("TooManyRequestsException"), Some(400), Throttled),
            (Some("RequestLimitExceeded"), Some(503), Throttled),
            (Some("Throttling"), Some(400), Throttled),
            (Some("SlowDown"), Some(503), Throttled),
            (None, Some(429), Throttled),
            // Server side and transient.
            (Some("ServiceUnavailable"), Some(503), Transient),
            (Some("ServiceUnavailableException"), Some(503), Transient),
            (Some("InternalFailure"), Some(500), Transient),
            (Some("InternalServerError"), Some(500), Transient),
            (Some("RequestTimeout"), Some(408), Transient),
            (Some("ExpiredTokenException"), Some(400), Transient),
            (None, Some(500), Transient),
            (None, Some(502), Transient),
            (None, Some(503), Transient),
            (Some("SomethingNew"), Some(504), Transient),
            // No answer at all: timeouts and connection failures.
            (None, None, Transient),
            // The caller's fault: retrying the same request cannot help.
            (Some("AccessDeniedException"), Some(403), Permanent),
            (Some("AccessDenied"), Some(403), Permanent),
            (Some("UnrecognizedClientException"), Some(403), Permanent),
            (Some("InvalidSignatureException"), Some(403), Permanent),
            (Some("InvalidParameterException"), Some(400), Permanent),
            (Some("InvalidParameterValue"), Some(400), Permanent),
            (Some("InvalidRequestException"), Some(400), Permanent),
            (Some("ValidationException"), Some(400), Permanent),
            (Some("SerializationException"), Some(400), Permanent),
            // Exporters that can create the missing resource handle this code first.
            (Some("ResourceNotFoundException"), Some(400), Permanent),
            (None, Some(404), Permanent),
        ] {
            assert_eq!(classify(code, status), want, "{code:?} {status:?}");
        }
    }
}
