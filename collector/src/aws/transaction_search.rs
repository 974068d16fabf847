//! Transaction Search readiness: X-Ray takes OTLP spans only when it is set to deliver
//! them to CloudWatch Logs (`aws/spans`). `validate --check-aws` asks X-Ray
//! (`GetTraceSegmentDestination`) in each region an exporter sends OTLP traces to, and
//! says how to turn it on when it is off.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_xray::error::DisplayErrorContext;
use aws_sdk_xray::types::{TraceSegmentDestination, TraceSegmentDestinationStatus};

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

/// Asks X-Ray in `region` (credentials and endpoint from the standard chain; the endpoint
/// can be overridden with `AWS_ENDPOINT_URL_XRAY`).
pub async fn check(region: &str) -> Result<Readiness, String> {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .load()
        .await;
    let client = aws_sdk_xray::Client::new(&sdk);
    let out = client
        .get_trace_segment_destination()
        .send()
        .await
        .map_err(|e| {
            format!(
                "{region}: GetTraceSegmentDestination failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    Ok(match (out.destination(), out.status()) {
        (
            Some(TraceSegmentDestination::CloudWatchLogs),
            Some(TraceSegmentDestinationStatus::Active),
        ) => Readiness::Ready,
        (Some(TraceSegmentDestination::CloudWatchLogs), _) => Readiness::Pending,
        (other, _) => Readiness::Off {
            destination: other.map_or("nowhere".to_string(), |d| d.as_str().to_string()),
        },
    })
}
