//! What an OTLP/HTTP answer means for the driver, the AWS way: throttling (429, or an
//! AWS `ThrottlingException` whatever the status) and 5xx are retried with backoff,
//! honouring `Retry-After`; other 4xx answers are refused for good with the service's own
//! message; a 2xx answer may carry OTLP partial success, whose rejected items are counted.

use std::time::Duration;

use prost::Message;

use aurastream_proto::otlp::logs_service::ExportLogsServiceResponse;
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceResponse;
use aurastream_proto::otlp::trace_service::ExportTraceServiceResponse;

use crate::aws::retry::{RetryClass, classify};
use crate::component::{ExportError, Reason};
use crate::model::Signal;

/// Reason for items the destination rejected in a partial-success answer.
pub const REJECTED_BY_DESTINATION: &str = "rejected_by_destination";

/// Longest service message kept in an error (bodies can be HTML pages from a proxy).
const MAX_MESSAGE: usize = 512;

/// A refusal of the whole request.
pub fn refusal(
    url: &str,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> ExportError {
    let (code, message) = service_error(headers, body);
    let class = classify(code.as_deref(), Some(status.as_u16()));
    let reason = code.map_or(Reason::HttpStatus(status.as_u16()), |c| {
        Reason::destination(&c)
    });
    let message = format!("{url}: HTTP {status}: {message}");
    match class {
        RetryClass::Throttled | RetryClass::Transient => ExportError::Retryable {
            reason,
            message,
            retry_after: retry_after(headers),
        },
        RetryClass::Permanent => ExportError::permanent(reason, message),
    }
}

/// `Retry-After` in seconds (the form AWS and OTLP receivers send).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The AWS error code (`x-amzn-ErrorType`, or `__type` / `code` in a JSON body) and the
/// service's message (JSON `message`, a `google.rpc.Status` message, or the text).
fn service_error(headers: &http::HeaderMap, body: &[u8]) -> (Option<String>, String) {
    let header_code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(aws_code);
    let (json_code, message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let field = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::to_owned))
            };
            (
                field(&["__type", "code", "Code"]).map(|c| aws_code(&c)),
                field(&["message", "Message"]).unwrap_or_else(|| v.to_string()),
            )
        }
        Err(_) => match tonic_types::Status::decode(body) {
            Ok(s) if !s.message.is_empty() => (None, s.message),
            _ => (None, String::from_utf8_lossy(body).into_owned()),
        },
    };
    let mut message = message.trim().to_string();
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    (header_code.or(json_code), message)
}

/// `ThrottlingException:http://internal.amazon.com/...` or
/// `com.amazonaws.xray#ThrottlingException` → `ThrottlingException`.
fn aws_code(raw: &str) -> String {
    let code = raw.split(':').next().unwrap_or(raw);
    code.rsplit('#').next().unwrap_or(code).trim().to_string()
}

/// Items a 2xx answer says were rejected, and the destination's message.
pub fn rejected(signal: Signal, content_type: Option<&str>, body: &[u8]) -> (u64, String) {
    if body.is_empty() {
        return (0, String::new());
    }
    if content_type.is_some_and(|c| c.starts_with("application/json")) {
        return rejected_json(signal, body);
    }
    let (n, message) = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    }
    .unwrap_or_default();
    (u64::try_from(n).unwrap_or(0), message)
}

/// OTLP/JSON partial success; int64 counts may come as numbers or strings.
fn rejected_json(signal: Signal, body: &[u8]) -> (u64, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0, String::new());
    };
    let Some(p) = v.get("partialSuccess") else {
        return (0, String::new());
    };
    let field = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let n = match p.get(field) {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let message = p
        .get("errorMessage")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    (n, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::trace_service::ExportTracePartialSuccess;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    fn class(e: &ExportError) -> &'static str {
        match e {
            ExportError::Retryable { .. } => "retry",
            ExportError::Permanent { .. } => "permanent",
            ExportError::Retry { .. } => "partial",
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retried_with_the_hint() {
        let e = refusal(
            "u",
            http::StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "7")]),
            b"",
        );
        assert_eq!(
            (class(&e), e.reason().to_string().as_str()),
            ("retry", "http_429")
        );
        let ExportError::Retryable { retry_after, .. } = e else {
            unreachable!()
        };
        assert_eq!(retry_after, Some(Duration::from_secs(7)));

        let body =
            br#"{"__type":"com.amazonaws.xray#ThrottlingException","message":"Rate exceeded"}"#;
        let e = refusal("u", http::StatusCode::BAD_REQUEST, &headers(&[]), body);
        assert_eq!(
            (class(&e), e.reason().to_string().as_str()),
            ("retry", "ThrottlingException")
        );
        assert!(e.to_string().contains("Rate exceeded"), "{e}");

        for status in [500, 502, 503, 504] {
            let e = refusal(
                "u",
                http::StatusCode::from_u16(status).unwrap(),
                &headers(&[]),
                b"oops",
            );
            assert_eq!(class(&e), "retry", "{status}");
        }
    }

    #[test]
    fn client_errors_are_permanent_with_the_service_message() {
        let h = headers(&[("x-amzn-errortype", "AccessDeniedException:http://internal/")]);
        let e = refusal(
            "https://xray",
            http::StatusCode::FORBIDDEN,
            &h,
            br#"{"Message":"not allowed"}"#,
        );
        assert_eq!(
            (class(&e), e.reason().to_string().as_str()),
            ("permanent", "AccessDeniedException")
        );
        assert!(e.to_string().contains("not allowed"), "{e}");

        let status = tonic_types::Status {
            code: 3,
            message: "spans out of the timestamp window".into(),
            details: Vec::new(),
        };
        let e = refusal(
            "u",
            http::StatusCode::BAD_REQUEST,
            &headers(&[]),
            &status.encode_to_vec(),
        );
        assert_eq!(
            (class(&e), e.reason().to_string().as_str()),
            ("permanent", "http_400")
        );
        assert!(e.to_string().contains("timestamp window"), "{e}");
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        let proto = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            rejected(Signal::Traces, Some("application/x-protobuf"), &proto),
            (3, "too old".into())
        );
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"no group"}}"#;
        assert_eq!(
            rejected(Signal::Logs, Some("application/json"), json),
            (2, "no group".into())
        );
        assert_eq!(rejected(Signal::Traces, None, b""), (0, String::new()));
    }
}
