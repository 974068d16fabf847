//! The AWS Lambda Extensions API and Telemetry API, as plain data.
//!
//! Field names follow the AWS documentation (camelCase JSON). Everything the collector does
//! not need is left out; unknown fields are ignored, because Lambda adds fields over time
//! and an extension that rejects a new field would break every function using it.
//!
//! - Extensions API: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>
//! - Telemetry API (schema 2022-12-13): <https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html>

use serde::{Deserialize, Serialize};

/// Body of `POST /2020-01-01/extension/register`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterRequest {
    pub events: Vec<LifecycleEventType>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum LifecycleEventType {
    Invoke,
    Shutdown,
}

/// Answer of `GET /2020-01-01/extension/event/next`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "eventType")]
pub enum LifecycleEvent {
    #[serde(rename = "INVOKE", rename_all = "camelCase")]
    Invoke {
        request_id: String,
        /// When the function times out, in milliseconds since the Unix epoch.
        deadline_ms: u64,
        #[serde(default)]
        invoked_function_arn: Option<String>,
        #[serde(default)]
        tracing: Option<TraceContext>,
    },
    #[serde(rename = "SHUTDOWN", rename_all = "camelCase")]
    Shutdown {
        #[serde(default)]
        shutdown_reason: Option<String>,
        /// When the extension will be killed, in milliseconds since the Unix epoch.
        deadline_ms: u64,
    },
}

/// Body of `PUT /2022-07-01/telemetry`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySubscription {
    pub schema_version: String,
    pub types: Vec<TelemetryType>,
    pub buffering: TelemetryBuffering,
    pub destination: TelemetryDestination,
}

/// The schema version this crate's record types follow.
pub const TELEMETRY_SCHEMA_VERSION: &str = "2022-12-13";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TelemetryType {
    Platform,
    Function,
    Extension,
}

/// How Lambda batches events before sending them to the destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryBuffering {
    /// 1,000 to 10,000.
    pub max_items: u32,
    /// 262,144 to 1,048,576.
    pub max_bytes: u32,
    /// 25 to 30,000.
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TelemetryDestination {
    /// Always `HTTP`.
    pub protocol: String,
    #[serde(rename = "URI")]
    pub uri: String,
}

/// One event as delivered to the destination (which receives a JSON array of them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TelemetryEvent {
    /// RFC 3339 timestamp.
    pub time: String,
    /// `platform.start`, `platform.runtimeDone`, `platform.report`, `function`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Depends on `kind`: an object for platform events, a string (or, with JSON logging,
    /// an object) for `function` and `extension` logs.
    #[serde(default)]
    pub record: serde_json::Value,
}

/// `tracing` in platform events and INVOKE: the X-Ray trace header of the invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceContext {
    #[serde(default)]
    pub span_id: Option<String>,
    /// `X-Amzn-Trace-Id`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
    pub value: String,
}

/// `platform.start`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlatformStart {
    pub request_id: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub tracing: Option<TraceContext>,
}

/// `platform.runtimeDone`: the runtime has answered (or failed, or timed out).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlatformRuntimeDone {
    pub request_id: String,
    /// `success`, `failure`, `error` or `timeout`.
    pub status: String,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub metrics: Option<RuntimeDoneMetrics>,
    #[serde(default)]
    pub tracing: Option<TraceContext>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDoneMetrics {
    pub duration_ms: f64,
    #[serde(default)]
    pub produced_bytes: Option<u64>,
}

/// `platform.report`: the billing record of one invocation, sent after every extension
/// has asked for its next event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlatformReport {
    pub request_id: String,
    pub status: String,
    #[serde(default)]
    pub error_type: Option<String>,
    pub metrics: ReportMetrics,
    #[serde(default)]
    pub tracing: Option<TraceContext>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportMetrics {
    pub duration_ms: f64,
    pub billed_duration_ms: f64,
    #[serde(rename = "memorySizeMB")]
    pub memory_size_mb: f64,
    #[serde(rename = "maxMemoryUsedMB")]
    pub max_memory_used_mb: f64,
    /// Present on the first invocation of a sandbox (a cold start).
    #[serde(default)]
    pub init_duration_ms: Option<f64>,
    /// Present on the first invocation after a SnapStart restore.
    #[serde(default)]
    pub restore_duration_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_events() {
        let events: Vec<TelemetryEvent> = serde_json::from_str(
            r#"[
  {"time":"2022-10-12T00:00:15.064Z","type":"platform.start",
   "record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","version":"$LATEST",
     "tracing":{"spanId":"54565fb41ac79632","type":"X-Amzn-Trace-Id",
       "value":"Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1"}}},
  {"time":"2022-10-12T00:01:15.000Z","type":"platform.report",
   "record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","status":"success",
     "metrics":{"durationMs":101.51,"billedDurationMs":300,"memorySizeMB":512,
       "maxMemoryUsedMB":33,"initDurationMs":116.67},"newField":1}},
  {"time":"2022-10-12T00:01:16.000Z","type":"function","record":"hello\n"}
]"#,
        )
        .unwrap();
        let start: PlatformStart = serde_json::from_value(events[0].record.clone()).unwrap();
        assert_eq!(
            start.tracing.unwrap().span_id.as_deref(),
            Some("54565fb41ac79632")
        );
        let report: PlatformReport = serde_json::from_value(events[1].record.clone()).unwrap();
        assert_eq!(report.metrics.billed_duration_ms, 300.0);
        assert_eq!(report.metrics.init_duration_ms, Some(116.67));
        assert_eq!(events[2].record, serde_json::json!("hello\n"));
    }

    #[test]
    fn lifecycle_events_by_event_type() {
        let invoke: LifecycleEvent = serde_json::from_str(
            r#"{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"r-1",
                "invokedFunctionArn":"arn:aws:lambda:eu-west-1:1:function:f",
                "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-a-b"}}"#,
        )
        .unwrap();
        assert!(
            matches!(invoke, LifecycleEvent::Invoke { ref request_id, .. } if request_id == "r-1")
        );
        let shutdown: LifecycleEvent = serde_json::from_str(
            r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":42}"#,
        )
        .unwrap();
        assert_eq!(
            shutdown,
            LifecycleEvent::Shutdown {
                shutdown_reason: Some("spindown".into()),
                deadline_ms: 42
            }
        );
    }
}
