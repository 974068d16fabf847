//! Transaction Search readiness: X-Ray takes OTLP spans only when it is set to deliver
//! them to CloudWatch Logs (`aws/spans`). `validate --check-aws` asks X-Ray
//! (`GetTraceSegmentDestination`) in each region an exporter sends OTLP traces to, and
//! says how to turn it on when it is off.
//!
//! The call goes through the hand-signed client ([`super::signed_http`]), not aws-sdk-xray:
//! it is one small JSON call, and the lean Lambda layer (built without the `xray-api`
//! feature) links no X-Ray SDK yet must still tell whether Transaction Search is on.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::signed_http::{CallFailure, SignedHttp};

/// Why X-Ray's answer about a region could not be had; `validate --check-aws` warns and
/// goes on.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{region}: GetTraceSegmentDestination failed: {source}")]
    NoAnswer { region: String, source: CallFailure },
    #[error("{region}: GetTraceSegmentDestination failed: {status} {code}: {message}")]
    Refused {
        region: String,
        status: http::StatusCode,
        code: String,
        message: String,
    },
    #[error("{region}: GetTraceSegmentDestination answered unreadable JSON: {source}")]
    Unreadable {
        region: String,
        source: serde_json::Error,
    },
}

/// What X-Ray says about one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Spans go to CloudWatch Logs: OTLP traces are accepted.
    Ready,
    /// The switch to CloudWatch Logs was asked for and is not done yet.
    Pending,
    /// X-Ray is not set to deliver to CloudWatch Logs: OTLP spans will be refused.
    Off { destination: String },
}

impl Readiness {
    /// One line for the operator: the state and, when not ready, the fix.
    pub fn describe(&self, region: &str) -> String {
        match self {
            Readiness::Ready => format!(
                "{region}: Transaction Search is on (X-Ray delivers spans to CloudWatch Logs)"
            ),
            Readiness::Pending => format!(
                "warning: {region}: Transaction Search is being turned on (PENDING); X-Ray \
                 refuses OTLP spans until it is ACTIVE"
            ),
            Readiness::Off { destination } => format!(
                "warning: {region}: X-Ray delivers spans to {destination}, not CloudWatch Logs, \
                 so it refuses OTLP spans. Turn on Transaction Search: `aws xray \
                 update-trace-segment-destination --destination CloudWatchLogs --region \
                 {region}` (after `aws logs put-resource-policy` allowing xray.amazonaws.com \
                 to write to aws/spans), or X-Ray console > Settings > Transaction Search"
            ),
        }
    }
}

/// How long one `GetTraceSegmentDestination` call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GetTraceSegmentDestination`'s answer (fields absent in old API versions count as
/// "nowhere").
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    destination: Option<String>,
    status: Option<String>,
}

/// Asks X-Ray in `region` (credentials from the standard chain; the endpoint can be
/// overridden with `AWS_ENDPOINT_URL_XRAY` or `AWS_ENDPOINT_URL`, as the SDK would).
pub async fn check(region: &str) -> Result<Readiness, CheckError> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_XRAY")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok();
    let client = SignedHttp::new("xray", Some(region.to_string()), endpoint, TIMEOUT);
    let answer = client
        .post(
            "/GetTraceSegmentDestination",
            "application/json",
            Bytes::from_static(b"{}"),
        )
        .await
        .map_err(|source| CheckError::NoAnswer {
            region: region.into(),
            source,
        })?;
    if !answer.status.is_success() {
        return Err(CheckError::Refused {
            region: region.into(),
            status: answer.status,
            code: answer.error_code().unwrap_or_default(),
            message: answer.error_message(),
        });
    }
    let out: Destination =
        serde_json::from_slice(&answer.body).map_err(|source| CheckError::Unreadable {
            region: region.into(),
            source,
        })?;
    Ok(match (out.destination.as_deref(), out.status.as_deref()) {
        (Some("CloudWatchLogs"), Some("ACTIVE")) => Readiness::Ready,
        (Some("CloudWatchLogs"), _) => Readiness::Pending,
        (other, _) => Readiness::Off {
            destination: other.unwrap_or("nowhere").to_string(),
        },
    })
}
