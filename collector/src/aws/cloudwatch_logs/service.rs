//! The CloudWatch Logs API calls: PutLogEvents, and creating what it needs.
//!
//! The calls are CloudWatch Logs' JSON protocol (`X-Amz-Target: Logs_20140328.<Operation>`)
//! sent through the collector's own SigV4 client ([`crate::aws::signed_http`]), as
//! PutTraceSegments is: five small operations do not need aws-sdk-cloudwatchlogs's
//! serializers and orchestrator, and leaving them out makes the binary (above all the lean
//! Lambda layer) smaller. The client resolves credentials and region on first use, not at
//! start-up, so a collector whose pipelines never carry data for this exporter never
//! resolves them (and a missing credential shows up as an export error with a reason, not
//! a crash).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_types::SdkConfig;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::request_builder::LogEvent;
use super::retry::{ErrorClass, Transport, classify};
use super::target::LogTarget;
use crate::aws::signed_http::{Answer, CallFailure, SignedHttp};
use crate::component::Reason;

/// How to reach CloudWatch Logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientSettings {
    /// `None` = the standard chain (AWS_REGION, profile, instance metadata).
    pub region: Option<String>,
    /// `None` = the regional AWS endpoint; set for moto or a VPC endpoint.
    pub endpoint: Option<String>,
    /// Per-call timeout (zero: none); a timed-out call is retried like a throttled one.
    pub timeout: Duration,
}

/// A failed call, classified.
#[derive(Debug, Clone)]
pub struct CallError {
    pub class: ErrorClass,
    /// The service's error code (`ThrottlingException`, ...) when it answered.
    pub code: Option<String>,
    pub message: String,
    /// The call failed in a way CloudWatch may still have applied it (timeout, broken
    /// connection): resending it may store its events twice.
    pub maybe_delivered: bool,
}

/// Events CloudWatch accepted the request for but did not store, by index range, as
/// reported in `rejectedLogEventsInfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Events at this index and after are more than 2 hours in the future.
    pub too_new_start: Option<usize>,
    /// Events before this index are more than 14 days old (or older than the group).
    pub too_old_end: Option<usize>,
    /// Events before this index are older than the group's retention.
    pub expired_end: Option<usize>,
}

impl Rejected {
    /// Why the event at `index` was rejected, if it was.
    pub fn reason(&self, index: usize) -> Option<&'static str> {
        if self.expired_end.is_some_and(|end| index < end) {
            Some("log_event_expired")
        } else if self.too_old_end.is_some_and(|end| index < end) {
            Some("log_event_too_old")
        } else if self.too_new_start.is_some_and(|start| index >= start) {
            Some("log_event_too_new")
        } else {
            None
        }
    }
}

/// Pages of events at one millisecond read when looking for a delivery marker; a stream
/// with more at that instant is treated as not holding it (the request is sent again).
const MAX_MARKER_PAGES: usize = 20;

/// The operations' wire shapes (CloudWatch Logs API reference), borrowed where sent.
mod wire {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PutLogEvents<'a> {
        pub log_group_name: &'a str,
        pub log_stream_name: &'a str,
        pub log_events: Vec<InputLogEvent<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub entity: Option<Entity<'a>>,
    }

    #[derive(Serialize)]
    pub struct InputLogEvent<'a> {
        pub timestamp: i64,
        pub message: &'a str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Entity<'a> {
        pub key_attributes: &'a BTreeMap<String, String>,
        pub attributes: &'a BTreeMap<String, String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct PutLogEventsOutput {
        pub rejected_log_events_info: Option<RejectedLogEventsInfo>,
        pub rejected_entity_info: Option<RejectedEntityInfo>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct RejectedLogEventsInfo {
        pub too_new_log_event_start_index: Option<i64>,
        pub too_old_log_event_end_index: Option<i64>,
        pub expired_log_event_end_index: Option<i64>,
    }

    #[derive(Deserialize, Default, Debug)]
    #[serde(rename_all = "camelCase", default)]
    pub struct RejectedEntityInfo {
        pub error_type: Option<String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetLogEvents<'a> {
        pub log_group_name: &'a str,
        pub log_stream_name: &'a str,
        pub start_time: i64,
        pub end_time: i64,
        pub start_from_head: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub next_token: Option<&'a str>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    pub struct GetLogEventsOutput {
        pub events: Vec<OutputLogEvent>,
        pub next_forward_token: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct OutputLogEvent {
        pub message: Option<String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreateLogGroup<'a> {
        pub log_group_name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tags: Option<&'a HashMap<String, String>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PutRetentionPolicy<'a> {
        pub log_group_name: &'a str,
        pub retention_in_days: u32,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CreateLogStream<'a> {
        pub log_group_name: &'a str,
        pub log_stream_name: &'a str,
    }
}

/// The CloudWatch Logs client of one exporter.
pub struct LogsService {
    http: SignedHttp,
    tags: HashMap<String, String>,
}

impl LogsService {
    pub fn new(settings: ClientSettings, tags: HashMap<String, String>) -> LogsService {
        LogsService {
            http: SignedHttp::new("logs", settings.region, settings.endpoint, settings.timeout),
            tags,
        }
    }

    /// Uses `sdk`'s credentials, region and endpoint instead of the standard chain (tests
    /// pass one with static credentials and moto's endpoint).
    pub fn with_sdk_config(sdk: SdkConfig, tags: HashMap<String, String>) -> LogsService {
        let endpoint = sdk.endpoint_url().map(str::to_owned);
        LogsService {
            http: SignedHttp::new("logs", None, endpoint, Duration::from_secs(30))
                .with_sdk_config(sdk),
            tags,
        }
    }

    /// One operation: its JSON input out, the answer's body back, or the failure
    /// classified.
    async fn call<T: Serialize>(&self, operation: &str, input: &T) -> Result<Bytes, CallError> {
        let body = serde_json::to_vec(input).map_err(|e| CallError {
            class: ErrorClass::Permanent(Reason::Named("request_construction")),
            code: None,
            message: e.to_string(),
            maybe_delivered: false,
        })?;
        let target = format!("Logs_20140328.{operation}");
        let answer = self
            .http
            .post_with(
                "/",
                "application/x-amz-json-1.1",
                &[("x-amz-target", &target)],
                Bytes::from(body),
            )
            .await
            .map_err(|e| call_failure(operation, e))?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(service_error(operation, &answer))
        }
    }

    /// One PutLogEvents call. `events` must be one batch from `build_batches`; `marker`, if
    /// any, goes last (it has the latest timestamp), so the rejected ranges index `events`.
    pub async fn put(
        &self,
        target: &LogTarget,
        marker: Option<&LogEvent>,
        events: &[LogEvent],
    ) -> Result<Rejected, CallError> {
        let input = wire::PutLogEvents {
            log_group_name: &target.group,
            log_stream_name: &target.stream,
            log_events: events
                .iter()
                .chain(marker)
                .map(|e| wire::InputLogEvent {
                    timestamp: e.timestamp_ms,
                    message: &e.message,
                })
                .collect(),
            entity: target.entity.as_ref().map(|e| wire::Entity {
                key_attributes: &e.key_attributes,
                attributes: &e.attributes,
            }),
        };
        let body = self.call("PutLogEvents", &input).await?;
        // An answer that is not the documented shape still means "stored": the status
        // said so; only the rejected ranges are unknown then.
        let out: wire::PutLogEventsOutput = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(info) = out.rejected_entity_info {
            // The events are stored all the same; only the relation to the service is lost.
            tracing::warn!(group = %target.group, error_type = ?info.error_type,
                "CloudWatch Logs did not accept the request's entity; events stored without it");
        }
        let index = |v: Option<i64>| v.and_then(|i| usize::try_from(i).ok());
        Ok(match out.rejected_log_events_info {
            Some(info) => Rejected {
                too_new_start: index(info.too_new_log_event_start_index),
                too_old_end: index(info.too_old_log_event_end_index),
                expired_end: index(info.expired_log_event_end_index),
            },
            None => Rejected::default(),
        })
    }

    /// Whether the stream holds `marker` (a delivery marker, see `marker.rs`): looks at the
    /// events stored at the marker's timestamp.
    pub async fn holds(&self, target: &LogTarget, marker: &LogEvent) -> Result<bool, CallError> {
        let mut token: Option<String> = None;
        for _ in 0..MAX_MARKER_PAGES {
            let input = wire::GetLogEvents {
                log_group_name: &target.group,
                log_stream_name: &target.stream,
                start_time: marker.timestamp_ms,
                end_time: marker.timestamp_ms + 1,
                start_from_head: true,
                next_token: token.as_deref(),
            };
            let body = match self.call("GetLogEvents", &input).await {
                Ok(body) => body,
                // No stream yet: nothing was delivered to it.
                Err(e) if matches!(e.class, ErrorClass::ResourceNotFound) => return Ok(false),
                Err(e) => return Err(e),
            };
            let out: wire::GetLogEventsOutput =
                serde_json::from_slice(&body).map_err(|e| CallError {
                    class: ErrorClass::Retryable("response_error"),
                    code: None,
                    message: format!("GetLogEvents: unreadable answer: {e}"),
                    maybe_delivered: false,
                })?;
            if out
                .events
                .iter()
                .any(|e| e.message.as_deref() == Some(marker.message.as_str()))
            {
                return Ok(true);
            }
            // The API repeats the token it was given once there is nothing more.
            if out.events.is_empty()
                || out.next_forward_token.is_none()
                || out.next_forward_token == token
            {
                return Ok(false);
            }
            token = out.next_forward_token;
        }
        Ok(false)
    }

    /// Creates the group (with tags and retention) and the stream; "already exists" is
    /// fine, since another collector may have won the race.
    pub async fn create(&self, target: &LogTarget) -> Result<(), CallError> {
        tracing::info!(group = %target.group, stream = %target.stream,
            retention_days = target.retention_days, "creating log group and stream");
        let group = self
            .call(
                "CreateLogGroup",
                &wire::CreateLogGroup {
                    log_group_name: &target.group,
                    tags: (!self.tags.is_empty()).then_some(&self.tags),
                },
            )
            .await;
        let group_created = match group {
            Ok(_) => true,
            Err(e) if e.already_exists() => false,
            Err(e) => return Err(e),
        };
        if group_created && target.retention_days > 0 {
            self.call(
                "PutRetentionPolicy",
                &wire::PutRetentionPolicy {
                    log_group_name: &target.group,
                    retention_in_days: target.retention_days,
                },
            )
            .await?;
        }
        match self
            .call(
                "CreateLogStream",
                &wire::CreateLogStream {
                    log_group_name: &target.group,
                    log_stream_name: &target.stream,
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.already_exists() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl CallError {
    fn already_exists(&self) -> bool {
        self.code.as_deref() == Some("ResourceAlreadyExistsException")
    }
}

/// No answer came (or the request could not be signed): classified by the same table as
/// a service error, with "maybe applied" from how it failed.
fn call_failure(operation: &str, e: CallFailure) -> CallError {
    let transport = match e {
        CallFailure::Connect { .. }
        | CallFailure::NoAnswer { .. }
        | CallFailure::Credentials(_) => Transport::Network,
        CallFailure::NoRegion | CallFailure::Tls(_) | CallFailure::Sign(_) => {
            Transport::Construction
        }
    };
    CallError {
        class: classify(None, None, transport),
        code: None,
        maybe_delivered: e.maybe_delivered(),
        message: format!("{operation}: {e}"),
    }
}

/// The service answered with an error: it did not apply the call.
fn service_error(operation: &str, answer: &Answer) -> CallError {
    let code = answer.error_code();
    CallError {
        class: classify(
            code.as_deref(),
            Some(answer.status.as_u16()),
            Transport::Response,
        ),
        message: format!(
            "{operation}: {}: {} (HTTP {})",
            code.as_deref().unwrap_or("error"),
            answer.error_message(),
            answer.status.as_u16()
        ),
        code,
        maybe_delivered: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_indexes_follow_the_api_semantics() {
        // tooOld end and expired end are exclusive, tooNew start is inclusive.
        let r = Rejected {
            too_new_start: Some(8),
            too_old_end: Some(3),
            expired_end: Some(1),
        };
        let reasons: Vec<Option<&str>> = (0..10).map(|i| r.reason(i)).collect();
        assert_eq!(
            reasons,
            vec![
                Some("log_event_expired"),
                Some("log_event_too_old"),
                Some("log_event_too_old"),
                None,
                None,
                None,
                None,
                None,
                Some("log_event_too_new"),
                Some("log_event_too_new"),
            ]
        );
        assert_eq!(Rejected::default().reason(0), None);
    }
}
