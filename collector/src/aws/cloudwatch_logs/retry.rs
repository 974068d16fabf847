//! Which CloudWatch Logs errors are worth retrying, and how long to wait.
//!
//! The SDK's own retries are switched off (see `service.rs`). The codes only CloudWatch
//! Logs uses (a missing group or stream to create, data already accepted, aborted
//! concurrent creates) are decided here, with a metric reason per code; everything else
//! goes by the policy the AWS exporters share ([`crate::aws::retry`]).

use crate::aws::retry::{self, RetryClass, TRANSIENT_CODES};
use crate::component::Reason;

/// What to do about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, connection failures: back off and try again.
    Retryable(&'static str),
    /// The log group or stream does not exist: create it, then try again.
    ResourceNotFound,
    /// The events were already accepted (a retry of a call that succeeded).
    AlreadyAccepted,
    /// Trying again cannot help; the events are counted as dropped with this reason.
    Permanent(Reason),
}

/// How the SDK reported the failure, before any error code is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The service answered (look at the code and status).
    Response,
    /// Timed out, connection refused or reset, DNS: the request may not have arrived.
    Network,
    /// The request could not even be built (a bug or a bad parameter): not retryable.
    Construction,
}

/// Classifies a failure from its AWS error code (`ThrottlingException`, ...), its HTTP
/// status and how it failed.
pub fn classify(code: Option<&str>, status: Option<u16>, transport: Transport) -> ErrorClass {
    match transport {
        Transport::Network => return ErrorClass::Retryable("network"),
        Transport::Construction => {
            return ErrorClass::Permanent(Reason::Named("request_construction"));
        }
        Transport::Response => {}
    }
    match code {
        Some("OperationAbortedException") => ErrorClass::Retryable("operation_aborted"),
        // Sequence tokens are ignored by the service nowadays; an old endpoint may still
        // send this, and a plain retry succeeds.
        Some("InvalidSequenceTokenException") => ErrorClass::Retryable("invalid_sequence_token"),
        Some("ResourceNotFoundException") => ErrorClass::ResourceNotFound,
        Some("DataAlreadyAcceptedException") => ErrorClass::AlreadyAccepted,
        Some("InvalidParameterException") => {
            ErrorClass::Permanent(Reason::Named("invalid_parameter"))
        }
        Some("UnrecognizedClientException" | "InvalidSignatureException") => {
            ErrorClass::Permanent(Reason::Named("bad_credentials"))
        }
        Some("AccessDeniedException") => ErrorClass::Permanent(Reason::Named("access_denied")),
        Some("LimitExceededException") => ErrorClass::Permanent(Reason::Named("limit_exceeded")),
        _ => match retry::classify(code, status) {
            RetryClass::Throttled => ErrorClass::Retryable("throttled"),
            RetryClass::Transient if code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) => {
                ErrorClass::Retryable("service_unavailable")
            }
            RetryClass::Transient if status.is_none() => ErrorClass::Retryable("no_response"),
            RetryClass::Transient => ErrorClass::Retryable("server_error"),
            RetryClass::Permanent => ErrorClass::Permanent(Reason::destination(&format!(
                "{}_{}",
                code.map(to_snake).unwrap_or_else(|| "http".into()),
                status.unwrap_or_default()
            ))),
        },
    }
}

/// `SomeException` -> `some_exception`, for metric reason labels.
fn to_snake(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 4);
    for (i, c) in code.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_code(code: &str, status: u16) -> ErrorClass {
        classify(Some(code), Some(status), Transport::Response)
    }

    #[test]
    fn throttling_is_retryable() {
        assert_eq!(
            by_code("ThrottlingException", 400),
            ErrorClass::Retryable("throttled")
        );
        assert_eq!(
            classify(None, Some(429), Transport::Response),
            ErrorClass::Retryable("throttled")
        );
    }

    #[test]
    fn service_unavailable_and_5xx_are_retryable() {
        assert_eq!(
            by_code("ServiceUnavailableException", 503),
            ErrorClass::Retryable("service_unavailable")
        );
        assert_eq!(
            by_code("SomethingNew", 502),
            ErrorClass::Retryable("server_error")
        );
    }

    #[test]
    fn timeouts_and_connection_failures_are_retryable() {
        assert_eq!(
            classify(None, None, Transport::Network),
            ErrorClass::Retryable("network")
        );
    }

    #[test]
    fn operation_aborted_and_sequence_token_are_retryable() {
        assert!(matches!(
            by_code("OperationAbortedException", 400),
            ErrorClass::Retryable(_)
        ));
        assert!(matches!(
            by_code("InvalidSequenceTokenException", 400),
            ErrorClass::Retryable(_)
        ));
    }

    #[test]
    fn resource_not_found_means_create() {
        assert_eq!(
            by_code("ResourceNotFoundException", 400),
            ErrorClass::ResourceNotFound
        );
    }

    #[test]
    fn data_already_accepted_is_success() {
        assert_eq!(
            by_code("DataAlreadyAcceptedException", 400),
            ErrorClass::AlreadyAccepted
        );
    }

    #[test]
    fn client_errors_are_permanent_with_reason() {
        assert_eq!(
            by_code("InvalidParameterException", 400),
            ErrorClass::Permanent(Reason::Named("invalid_parameter"))
        );
        assert_eq!(
            by_code("AccessDeniedException", 400),
            ErrorClass::Permanent(Reason::Named("access_denied"))
        );
        assert_eq!(
            by_code("UnrecognizedClientException", 400),
            ErrorClass::Permanent(Reason::Named("bad_credentials"))
        );
        assert_eq!(
            by_code("LimitExceededException", 400),
            ErrorClass::Permanent(Reason::Named("limit_exceeded"))
        );
        assert_eq!(
            by_code("SerializationException", 400),
            ErrorClass::Permanent(Reason::destination("serialization_exception_400"))
        );
    }
}
