//! Delivers events to their log groups: batches them, sends each batch with backoff, creates
//! groups and streams on demand, and says what became of every input item.
//!
//! Retries happen here, per PutLogEvents call, rather than by handing the whole export back
//! to the pipeline driver: a batch that went through must not be sent again because a later
//! batch of the same export was throttled.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::request_builder::{LogEvent, build_batches};
use super::retry::{Backoff, ErrorClass};
use super::service::{CallError, LogsService};
use super::target::LogTarget;
use crate::exporter::driver::RetryConfig;

/// What happened to the input items (`LogEvent::origin`) that were not simply delivered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Delivery {
    /// Items deliberately not delivered (rejected by CloudWatch, permanent errors), with
    /// the reason. An item split into several events counts once.
    pub dropped: BTreeMap<usize, String>,
    /// Items still undelivered when the retry budget ran out, with the last error reason.
    pub undelivered: BTreeMap<usize, String>,
    /// The last error message, for logs and `/health`.
    pub last_error: Option<String>,
    /// Events resent after a call CloudWatch may have applied anyway (timeout, broken
    /// connection). PutLogEvents has no idempotency key, so each may be stored twice: the
    /// upper bound on duplicates, exported as the `possibly_duplicated` event.
    pub possibly_duplicated: usize,
}

impl Delivery {
    fn merge(&mut self, other: Delivery) {
        self.dropped.extend(other.dropped);
        for (origin, reason) in other.undelivered {
            if !self.dropped.contains_key(&origin) {
                self.undelivered.insert(origin, reason);
            }
        }
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
        self.possibly_duplicated += other.possibly_duplicated;
    }

    /// Dropped items counted per reason, for `ExportReport::dropped`.
    pub fn dropped_by_reason(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for reason in self.dropped.values() {
            *counts.entry(reason).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect()
    }
}

/// Sends every target's events; targets are served concurrently.
pub async fn deliver(
    service: &LogsService,
    retry: &RetryConfig,
    by_target: BTreeMap<LogTarget, Vec<LogEvent>>,
) -> Delivery {
    let results = join_all(
        by_target
            .into_iter()
            .map(|(target, events)| deliver_target(service, retry, target, events)),
    )
    .await;
    let mut out = Delivery::default();
    for r in results {
        out.merge(r);
    }
    out
}

async fn deliver_target(
    service: &LogsService,
    retry: &RetryConfig,
    target: LogTarget,
    events: Vec<LogEvent>,
) -> Delivery {
    let mut out = Delivery::default();
    for batch in build_batches(events) {
        out.merge(send_batch(service, retry, &target, &batch).await);
    }
    out
}

/// One batch, retried until it is accepted, fails permanently or the budget runs out.
async fn send_batch(
    service: &LogsService,
    retry: &RetryConfig,
    target: &LogTarget,
    batch: &[LogEvent],
) -> Delivery {
    let mut out = Delivery::default();
    let mut backoff = Backoff::new(retry);
    let mut created = false;
    loop {
        let err: CallError = match service.put(target, batch).await {
            Ok(rejected) => {
                for (i, e) in batch.iter().enumerate() {
                    if let Some(reason) = rejected.reason(i) {
                        out.dropped.insert(e.origin, reason.to_string());
                    }
                }
                if !out.dropped.is_empty() {
                    tracing::warn!(group = %target.group, rejected = out.dropped.len(),
                        "CloudWatch Logs rejected events (too old, too new or expired)");
                }
                return out;
            }
            Err(e) => e,
        };
        let err = match err.class {
            ErrorClass::AlreadyAccepted => return out,
            ErrorClass::ResourceNotFound if !created => match service.create(target).await {
                Ok(()) => {
                    created = true;
                    continue;
                }
                Err(create_err) => create_err,
            },
            _ => err,
        };
        let reason = match &err.class {
            ErrorClass::Permanent(reason) => {
                tracing::error!(group = %target.group, stream = %target.stream, error = %err.message,
                    events = batch.len(), "PutLogEvents failed permanently; events dropped");
                for e in batch {
                    out.dropped.insert(e.origin, reason.clone());
                }
                out.last_error = Some(err.message);
                return out;
            }
            ErrorClass::Retryable(reason) => (*reason).to_string(),
            ErrorClass::ResourceNotFound => "resource_not_found".to_string(),
            ErrorClass::AlreadyAccepted => return out,
        };
        // A group deleted behind our back, or a create that raced: try creating again.
        created = false;
        if err.maybe_delivered {
            out.possibly_duplicated += batch.len();
        }
        match backoff.next_wait() {
            Some(wait) => {
                tracing::warn!(group = %target.group, reason = %reason, error = %err.message,
                    retry_in = ?wait, "PutLogEvents failed; will retry");
                tokio::time::sleep(wait).await;
            }
            None => {
                tracing::error!(group = %target.group, reason = %reason, error = %err.message,
                    events = batch.len(), "PutLogEvents still failing after retries");
                for e in batch {
                    out.undelivered.insert(e.origin, reason.clone());
                }
                out.last_error = Some(err.message);
                return out;
            }
        }
    }
}
