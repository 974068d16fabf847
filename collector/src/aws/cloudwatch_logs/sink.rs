//! Delivers events to their log groups: batches them, sends each batch with backoff, creates
//! groups and streams on demand, and says what became of every input item.
//!
//! Retries happen here, per PutLogEvents call, rather than by handing the whole export back
//! to the pipeline driver: a batch that went through must not be sent again because a later
//! batch of the same export was throttled.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::join_all;
use prometheus_client::metrics::counter::Counter;

use super::marker::{MARKER_BILLED_BYTES, Markers};
use super::request_builder::{LogEvent, MAX_BATCH_BYTES, build_batches_with_room};
use super::retry::{Backoff, ErrorClass};
use super::service::{CallError, LogsService};
use super::target::LogTarget;
use crate::component::RetryConfig;
use crate::model::Signal;
use crate::telemetry::metrics::SelfMetrics;

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
    /// Events not sent again because their request's delivery marker showed CloudWatch
    /// already held them (they count as delivered).
    pub already_delivered: usize,
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
        self.already_delivered += other.already_delivered;
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

/// What one CloudWatch exporter reports about its deliveries across calls: the
/// `possibly_duplicated` and `already_delivered` events, and the last error for `/health`.
pub struct DeliveryStats {
    /// Events resent after a call CloudWatch may have applied anyway.
    possibly_duplicated: Counter,
    /// Events not resent because their delivery marker showed they were stored already.
    already_delivered: Counter,
    last_error: Mutex<Option<String>>,
}

impl DeliveryStats {
    pub fn new(metrics: &SelfMetrics, exporter: &str, signal: Signal) -> DeliveryStats {
        DeliveryStats {
            possibly_duplicated: metrics.component_event(exporter, signal, "possibly_duplicated"),
            already_delivered: metrics.component_event(exporter, signal, "already_delivered"),
            last_error: Mutex::new(None),
        }
    }

    /// Counts what [`deliver`] reported.
    pub fn record(&self, delivery: &Delivery) {
        self.possibly_duplicated
            .inc_by(delivery.possibly_duplicated as u64);
        self.already_delivered
            .inc_by(delivery.already_delivered as u64);
        if let Some(e) = &delivery.last_error {
            self.set_error(e.clone());
        }
    }

    pub fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// For `Exporter::health_detail`.
    pub fn health_detail(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| format!("last error: {e}"))
    }
}

/// Sends every target's events; targets are served concurrently. With `markers`, every
/// request carries a delivery marker (see `marker.rs`).
pub async fn deliver(
    service: &LogsService,
    retry: &RetryConfig,
    by_target: BTreeMap<LogTarget, Vec<LogEvent>>,
    markers: Option<&Markers>,
) -> Delivery {
    let results = join_all(
        by_target
            .into_iter()
            .map(|(target, events)| deliver_target(service, retry, target, events, markers)),
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
    markers: Option<&Markers>,
) -> Delivery {
    let room = if markers.is_some() {
        MARKER_BILLED_BYTES
    } else {
        0
    };
    let mut out = Delivery::default();
    for batch in build_batches_with_room(events, room) {
        // An event as large as a whole request leaves no room: that one goes unmarked.
        let billed: usize = batch.iter().map(LogEvent::billed_size).sum();
        let marker = markers
            .filter(|_| billed + MARKER_BILLED_BYTES <= MAX_BATCH_BYTES)
            .map(|m| (m.event(&target, &batch), m.check_first));
        out.merge(send_batch(service, retry, &target, &batch, marker).await);
    }
    out
}

/// One batch, retried until it is accepted, fails permanently or the budget runs out.
/// `marker` is the request's delivery marker and whether to look for it before sending.
async fn send_batch(
    service: &LogsService,
    retry: &RetryConfig,
    target: &LogTarget,
    batch: &[LogEvent],
    marker: Option<(LogEvent, bool)>,
) -> Delivery {
    let mut out = Delivery::default();
    let mut backoff = Backoff::new(retry);
    let mut created = false;
    let (marker, mut look_first) = match marker {
        Some((event, check)) => (Some(event), check),
        None => (None, false),
    };
    loop {
        if let Some(m) = marker.as_ref().filter(|_| look_first) {
            match service.holds(target, m).await {
                Ok(true) => {
                    tracing::info!(group = %target.group, stream = %target.stream,
                        events = batch.len(), "request already delivered (marker found); not sent again");
                    out.already_delivered += batch.len();
                    return out;
                }
                Ok(false) => look_first = false,
                Err(e) if matches!(e.class, ErrorClass::Retryable(_)) => {
                    // Throttled like any call: wait and look again rather than risk a copy.
                    match backoff.next_wait() {
                        Some(wait) => {
                            tracing::warn!(group = %target.group, error = %e.message, retry_in = ?wait,
                                "looking for the delivery marker failed; will retry");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => {
                            for ev in batch {
                                out.undelivered
                                    .insert(ev.origin, "marker_lookup_failed".into());
                            }
                            out.last_error = Some(e.message);
                            return out;
                        }
                    }
                }
                Err(e) => {
                    // Not allowed or not possible (e.g. no logs:GetLogEvents permission):
                    // sending again is the only way not to lose the events.
                    tracing::warn!(group = %target.group, error = %e.message,
                        "cannot look for the delivery marker; sending the request again");
                    look_first = false;
                    out.possibly_duplicated += batch.len();
                }
            }
        }
        let err: CallError = match service.put(target, marker.as_ref(), batch).await {
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
            if marker.is_some() {
                // Look before resending: the marker tells whether the call went through.
                look_first = true;
            } else {
                out.possibly_duplicated += batch.len();
            }
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
