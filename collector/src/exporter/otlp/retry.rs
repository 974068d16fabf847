//! Which gRPC answers are worth retrying, following the OTLP specification's table.
//!
//! The receiving collector says "later" with UNAVAILABLE (its queue is full or it is
//! restarting) and the network says it with DEADLINE_EXCEEDED or a reset; those are retried
//! with backoff. RESOURCE_EXHAUSTED is retried only when the server attached a
//! `google.rpc.RetryInfo` (OTLP's signal that the condition will pass, e.g. a rate limit);
//! without it the server is out of something retrying cannot bring back (message too big).
//! Everything else (INVALID_ARGUMENT, UNAUTHENTICATED, UNIMPLEMENTED, ...) would fail the
//! same way again and is permanent.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::component::{ExportError, Reason};

/// The reason label for a gRPC code (`unavailable`, `invalid_argument`, ...).
pub fn code_reason(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The server's retry hint: `RetryInfo.retry_delay` from the status details.
fn retry_delay(status: &Status) -> Option<Duration> {
    let info = status.get_details_retry_info()?;
    Some(info.retry_delay.unwrap_or_default())
}

/// Turns a failed export call into the error the driver acts on.
pub fn classify(endpoint: &str, status: &Status) -> ExportError {
    let code = status.code();
    let reason = code_reason(code);
    let message = format!("{endpoint}: {}", status.message());
    let hint = retry_delay(status);
    let retryable = match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => hint.is_some(),
        _ => false,
    };
    if retryable {
        ExportError::Retryable {
            reason: Reason::Named(reason),
            message,
            retry_after: hint.filter(|d| !d.is_zero()),
        }
    } else {
        ExportError::permanent(reason, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    fn is_retryable(code: Code) -> bool {
        matches!(
            classify("gw", &Status::new(code, "x")),
            ExportError::Retryable { .. }
        )
    }

    #[test]
    fn transient_codes_are_retried() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert!(is_retryable(code), "{code:?}");
        }
    }

    #[test]
    fn requests_the_server_refuses_are_permanent() {
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::Internal,
            Code::Unknown,
            Code::AlreadyExists,
        ] {
            assert!(!is_retryable(code), "{code:?}");
        }
        let e = classify("gw:4317", &Status::invalid_argument("bad span"));
        assert_eq!(e.reason(), "invalid_argument");
        assert!(e.to_string().contains("gw:4317: bad span"));
    }

    #[test]
    fn resource_exhausted_is_retried_only_with_retry_info() {
        assert!(
            !is_retryable(Code::ResourceExhausted),
            "no RetryInfo: permanent"
        );
        let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(3)));
        let status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        match classify("gw", &status) {
            ExportError::Retryable {
                reason,
                retry_after,
                ..
            } => {
                assert_eq!(reason, "resource_exhausted");
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
            }
            other => panic!("expected retryable, got {other:?}"),
        }
    }
}
