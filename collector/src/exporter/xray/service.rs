//! The one API call: `PutTraceSegments`, built and signed here rather than by aws-sdk-xray.
//!
//! This is the exporter's hot path. The SDK would take the documents as owned strings,
//! escape each one again byte by byte into a growing buffer and run its whole orchestrator
//! per call; here the request body is written once, into a buffer of the exact size (the
//! escaped sizes are already known from batching), escaping in runs, and sent on one
//! pooled connection client ([`crate::aws::signed_http`]). aws-sdk-xray stays where its
//! typed API serves (sampling rules and targets, reading traces back in tests).
//!
//! The endpoint is resolved on first use so the collector starts (and `validate` works) on
//! a machine without AWS credentials or network. Nothing here retries: the driver does.

use std::time::Duration;

use aws_types::SdkConfig;
use bytes::Bytes;

use super::retry::Class;
use crate::aws::retry as aws_retry;
use crate::aws::signed_http::{CallFailure, SignedHttp};
use crate::component::Reason;

/// X-Ray's SigV4 signing name.
const SIGNING_NAME: &str = "xray";
/// The REST path of `PutTraceSegments`.
const PATH: &str = "/TraceSegments";
const BODY_HEAD: &[u8] = b"{\"TraceSegmentDocuments\":[";
const BODY_TAIL: &[u8] = b"]}";

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct CallError {
    pub class: Class,
    /// The AWS error code (`ThrottledException`, `AccessDeniedException`, ...), an HTTP status
    /// when the service named none, or what went wrong before an answer came
    /// (`dispatch_failure`, `timeout`).
    pub code: Reason,
    pub message: String,
    /// The call failed in a way that X-Ray may still have applied it (timeout, broken
    /// connection): a resend may store its documents twice.
    pub maybe_delivered: bool,
}

/// A document X-Ray did not take although the call succeeded.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct Unprocessed {
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "ErrorCode")]
    pub code: Option<String>,
    #[serde(rename = "Message")]
    pub message: Option<String>,
}

#[derive(serde::Deserialize)]
struct PutTraceSegmentsOutput {
    #[serde(rename = "UnprocessedTraceSegments", default)]
    unprocessed: Vec<Unprocessed>,
}

/// The X-Ray API endpoint of one exporter.
pub(crate) struct XrayService {
    http: SignedHttp,
}

impl XrayService {
    pub(crate) fn new(
        region: Option<String>,
        endpoint: Option<String>,
        timeout: Duration,
    ) -> XrayService {
        XrayService {
            http: SignedHttp::new(SIGNING_NAME, region, endpoint, timeout),
        }
    }

    /// Uses `sdk` instead of the standard chain (credentials, region); the `region` and
    /// `endpoint` options still apply on top.
    pub(crate) fn with_sdk_config(self, sdk: SdkConfig) -> XrayService {
        XrayService {
            http: self.http.with_sdk_config(sdk),
        }
    }

    /// Sends one call's documents; the documents X-Ray did not take come back.
    /// `body_size` is the sum of the documents' escaped sizes ([`super::batch::request_size`]),
    /// so the body is allocated once.
    pub(crate) async fn put<'a>(
        &self,
        documents: impl IntoIterator<Item = &'a str>,
        body_size: usize,
    ) -> Result<Vec<Unprocessed>, CallError> {
        let body = request_body(documents, body_size);
        let answer = self
            .http
            .post(PATH, "application/json", body)
            .await
            .map_err(call_failure)?;
        if !answer.status.is_success() {
            let status = answer.status.as_u16();
            let code = answer.error_code();
            return Err(CallError {
                class: aws_retry::classify(code.as_deref(), Some(status)),
                code: code.map_or(Reason::HttpStatus(status), |c| Reason::destination(&c)),
                message: answer.error_message(),
                // The service answered with an error: it did not apply the call.
                maybe_delivered: false,
            });
        }
        let output: PutTraceSegmentsOutput =
            serde_json::from_slice(&answer.body).map_err(|e| CallError {
                class: Class::Transient,
                code: Reason::Named("response_error"),
                message: format!("PutTraceSegments answer is not the expected JSON: {e}"),
                // It answered 2xx: the call was applied.
                maybe_delivered: true,
            })?;
        Ok(output.unprocessed)
    }
}

fn call_failure(e: CallFailure) -> CallError {
    let class = match e {
        CallFailure::NoRegion | CallFailure::Tls(_) | CallFailure::Sign(_) => Class::Permanent,
        // The credential chain may succeed later (instance metadata, a refreshed file).
        CallFailure::Credentials(_)
        | CallFailure::Connect { .. }
        | CallFailure::NoAnswer { .. } => Class::Transient,
    };
    CallError {
        class,
        code: Reason::Named(e.code()),
        maybe_delivered: e.maybe_delivered(),
        message: e.to_string(),
    }
}

/// `{"TraceSegmentDocuments":["<escaped>",...]}` in one buffer of the right size.
fn request_body<'a>(documents: impl IntoIterator<Item = &'a str>, body_size: usize) -> Bytes {
    let mut out = Vec::with_capacity(BODY_HEAD.len() + body_size + BODY_TAIL.len());
    out.extend_from_slice(BODY_HEAD);
    for (i, document) in documents.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        escape_into(&mut out, document);
        out.push(b'"');
    }
    out.extend_from_slice(BODY_TAIL);
    Bytes::from(out)
}

/// Appends `text` escaped as the inside of a JSON string, copying runs that need no
/// escape in one piece (documents are mostly such runs, broken by their own quotes).
fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xF) as usize]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::xray::batch::request_size;

    #[test]
    fn the_body_is_what_serde_json_writes_and_its_size_is_known() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é \u{2028} 😀 \\\" \u{7f}");
        let documents = [
            r#"{"name":"GET /a\"b","x":"\\n"}"#,
            "",
            every_ascii.as_str(),
            "plain",
        ];
        let size: usize = documents.iter().map(|d| request_size(d)).sum();
        let body = request_body(documents.iter().copied(), size);
        let expected =
            serde_json::to_vec(&serde_json::json!({ "TraceSegmentDocuments": documents })).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&expected)
        );
        // request_size counts one comma per document; the body has one fewer.
        assert_eq!(body.len(), BODY_HEAD.len() + size - 1 + BODY_TAIL.len());
    }

    #[test]
    fn an_answer_lists_unprocessed_documents() {
        let out: PutTraceSegmentsOutput = serde_json::from_str(
            r#"{"UnprocessedTraceSegments":[{"Id":"a1","ErrorCode":"ThrottledException","Message":"slow"}]}"#,
        )
        .unwrap();
        assert_eq!(
            out.unprocessed,
            [Unprocessed {
                id: "a1".into(),
                code: Some("ThrottledException".into()),
                message: Some("slow".into()),
            }]
        );
        let out: PutTraceSegmentsOutput = serde_json::from_str("{}").unwrap();
        assert!(out.unprocessed.is_empty());
    }
}
