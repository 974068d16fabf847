//! The retry policy the AWS exporters share: which failures are worth retrying, whether a
//! failed call may nevertheless have been applied. When to try again is the exporter
//! driver's business (`topology::driver`, the one retry loop).
//!
//! Every AWS SDK client here runs with the SDK's own retries switched off, so this module
//! is the one place that decides. Exporters keep only what is specific to their API on top
//! (CloudWatch Logs creates a missing group and retries; X-Ray classifies the entries of
//! `UnprocessedTraceSegments`).
//!
//! "Maybe delivered" matters for exactly-once delivery: a call that timed out, or whose
//! connection broke after the request went out, may have been applied by AWS. Resending it
//! is still right (dropping acknowledged data is worse), but the items it carried may now
//! exist twice at the destination, so exporters count them (`possibly_duplicated`).

// Every SDK crate re-exports these smithy runtime types; naming them at the source lets
// this module classify errors of any client.
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

/// A failed SDK call, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub class: RetryClass,
    /// The AWS error code (`ThrottledException`, ...), `http_<status>` when the service gave
    /// none, or what went wrong before an answer came (`timeout`, `dispatch_failure`,
    /// `response_error`, `construction_failure`).
    pub code: String,
    /// Whether the service may have applied the call although it failed.
    pub maybe_delivered: bool,
    pub status: Option<u16>,
}

/// Classifies any SDK error of any AWS client.
pub fn classify_sdk<E>(err: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (class, code, maybe_delivered) = match err {
        SdkError::ServiceError(_) => {
            let code = err.code().map(str::to_owned);
            let class = classify(code.as_deref(), status);
            let code = code.unwrap_or_else(|| format!("http_{}", status.unwrap_or_default()));
            // The service answered with an error: it did not apply the call.
            (class, code, false)
        }
        // The operation timeout can fire after the request was sent.
        SdkError::TimeoutError(_) => (RetryClass::Transient, "timeout".into(), true),
        SdkError::DispatchFailure(_) => (
            RetryClass::Transient,
            "dispatch_failure".into(),
            !connection_refused(err),
        ),
        // An answer came but could not be read: the call was most likely applied.
        SdkError::ResponseError(_) => (RetryClass::Transient, "response_error".into(), true),
        SdkError::ConstructionFailure(_) => {
            (RetryClass::Permanent, "construction_failure".into(), false)
        }
        _ => (RetryClass::Transient, "unknown".into(), true),
    };
    Classified {
        class,
        code,
        maybe_delivered,
        status,
    }
}

/// Whether the connection was refused, i.e. the request certainly never left: the one
/// dispatch failure that cannot have been applied.
fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        next = e.source();
    }
    false
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

    #[test]
    fn sdk_failures_say_whether_the_call_may_have_been_applied() {
        use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
        let timeout: SdkError<PutLogEventsError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        let c = classify_sdk(&timeout);
        assert_eq!(
            (c.class, c.code.as_str(), c.maybe_delivered),
            (RetryClass::Transient, "timeout", true)
        );
        let construction: SdkError<PutLogEventsError, HttpResponse> =
            SdkError::construction_failure("bad input");
        let c = classify_sdk(&construction);
        assert_eq!(
            (c.class, c.code.as_str(), c.maybe_delivered),
            (RetryClass::Permanent, "construction_failure", false)
        );
    }

    #[test]
    fn refused_connections_are_found_in_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure")]
        struct Outer(#[source] std::io::Error);
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(connection_refused(&refused));
        let reset = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!connection_refused(&reset));
    }
}
