//! The CloudWatch Logs API calls: PutLogEvents, and creating what it needs.
//!
//! The client is created on first use, not at start-up, so a collector whose pipelines
//! never carry data for this exporter never resolves credentials or a region (and a
//! missing credential shows up as an export error with a reason, not a crash).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::sync::OnceCell;

use super::request_builder::LogEvent;
use super::retry::{ErrorClass, Transport, classify};
use super::target::LogTarget;
use crate::aws::retry as aws_retry;

/// How to reach CloudWatch Logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientSettings {
    /// `None` = the standard chain (AWS_REGION, profile, instance metadata).
    pub region: Option<String>,
    /// `None` = the regional AWS endpoint; set for moto or a VPC endpoint.
    pub endpoint: Option<String>,
    /// Per-call timeout; a timed-out call is retried like a throttled one.
    pub timeout: Duration,
}

/// A failed call, classified.
#[derive(Debug, Clone)]
pub struct CallError {
    pub class: ErrorClass,
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

/// The CloudWatch Logs client of one exporter.
pub struct LogsService {
    settings: ClientSettings,
    tags: HashMap<String, String>,
    client: OnceCell<Client>,
}

impl LogsService {
    pub fn new(settings: ClientSettings, tags: HashMap<String, String>) -> LogsService {
        LogsService {
            settings,
            tags,
            client: OnceCell::new(),
        }
    }

    /// Uses an existing client (tests pass one with static credentials). Its SDK retries
    /// are switched off, as for our own client, so `retry.rs` stays the one policy.
    pub fn with_client(client: Client, tags: HashMap<String, String>) -> LogsService {
        let config = client
            .config()
            .to_builder()
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
            .build();
        LogsService {
            settings: ClientSettings::default(),
            tags,
            client: OnceCell::new_with(Some(Client::from_conf(config))),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(region) = &self.settings.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                if let Some(endpoint) = &self.settings.endpoint {
                    loader = loader.endpoint_url(endpoint.clone());
                }
                let shared = loader.load().await;
                let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&shared)
                    // Our own backoff (retry.rs) is the one retry policy.
                    .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled());
                if !self.settings.timeout.is_zero() {
                    config = config.timeout_config(
                        aws_sdk_cloudwatchlogs::config::timeout::TimeoutConfig::builder()
                            .operation_timeout(self.settings.timeout)
                            .build(),
                    );
                }
                Client::from_conf(config.build())
            })
            .await
    }

    /// One PutLogEvents call. `events` must be one batch from `build_batches`; `marker`, if
    /// any, goes last (it has the latest timestamp), so the rejected ranges index `events`.
    pub async fn put(
        &self,
        target: &LogTarget,
        marker: Option<&LogEvent>,
        events: &[LogEvent],
    ) -> Result<Rejected, CallError> {
        let mut input = Vec::with_capacity(events.len() + 1);
        for e in events.iter().chain(marker) {
            let event = InputLogEvent::builder()
                .timestamp(e.timestamp_ms)
                .message(e.message.clone())
                .build()
                .map_err(|err| CallError {
                    class: ErrorClass::Permanent("request_construction".into()),
                    message: err.to_string(),
                    maybe_delivered: false,
                })?;
            input.push(event);
        }
        let out = self
            .client()
            .await
            .put_log_events()
            .log_group_name(&target.group)
            .log_stream_name(&target.stream)
            .set_log_events(Some(input))
            .send()
            .await
            .map_err(call_error)?;
        let index = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
        Ok(match out.rejected_log_events_info() {
            Some(info) => Rejected {
                too_new_start: index(info.too_new_log_event_start_index()),
                too_old_end: index(info.too_old_log_event_end_index()),
                expired_end: index(info.expired_log_event_end_index()),
            },
            None => Rejected::default(),
        })
    }

    /// Whether the stream holds `marker` (a delivery marker, see `marker.rs`): looks at the
    /// events stored at the marker's timestamp.
    pub async fn holds(&self, target: &LogTarget, marker: &LogEvent) -> Result<bool, CallError> {
        let client = self.client().await;
        let mut token: Option<String> = None;
        for _ in 0..MAX_MARKER_PAGES {
            let out = client
                .get_log_events()
                .log_group_name(&target.group)
                .log_stream_name(&target.stream)
                .start_time(marker.timestamp_ms)
                .end_time(marker.timestamp_ms + 1)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                // No stream yet: nothing was delivered to it.
                Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(false),
                Err(e) => return Err(call_error(e)),
            };
            let events = out.events();
            if events
                .iter()
                .any(|e| e.message() == Some(marker.message.as_str()))
            {
                return Ok(true);
            }
            let next = out.next_forward_token().map(str::to_string);
            // The API repeats the token it was given once there is nothing more.
            if events.is_empty() || next.is_none() || next == token {
                return Ok(false);
            }
            token = next;
        }
        Ok(false)
    }

    /// Creates the group (with tags and retention) and the stream; "already exists" is
    /// fine, since another collector may have won the race.
    pub async fn create(&self, target: &LogTarget) -> Result<(), CallError> {
        let client = self.client().await;
        tracing::info!(group = %target.group, stream = %target.stream,
            retention_days = target.retention_days, "creating log group and stream");
        let group = client
            .create_log_group()
            .log_group_name(&target.group)
            .set_tags((!self.tags.is_empty()).then(|| self.tags.clone()))
            .send()
            .await;
        let group_created = match group {
            Ok(_) => true,
            Err(e) if is_already_exists(&e) => false,
            Err(e) => return Err(call_error(e)),
        };
        if group_created && target.retention_days > 0 {
            client
                .put_retention_policy()
                .log_group_name(&target.group)
                .retention_in_days(target.retention_days as i32)
                .send()
                .await
                .map_err(call_error)?;
        }
        match client
            .create_log_stream()
            .log_group_name(&target.group)
            .log_stream_name(&target.stream)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_already_exists(&e) => Ok(()),
            Err(e) => Err(call_error(e)),
        }
    }
}

fn is_already_exists<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.code() == Some("ResourceAlreadyExistsException")
}

/// Classifies any SDK error of this client: transport and "maybe applied" by the shared
/// AWS policy, the error code by this exporter's table.
fn call_error<E>(err: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let shared = aws_retry::classify_sdk(&err);
    let transport = match &err {
        SdkError::ConstructionFailure(_) => Transport::Construction,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Transport::Network
        }
        _ => Transport::Response,
    };
    let class = classify(err.code(), shared.status, transport);
    CallError {
        class,
        message: DisplayErrorContext(&err).to_string(),
        maybe_delivered: shared.maybe_delivered,
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
