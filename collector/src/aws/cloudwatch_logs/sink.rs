//! Delivers events to their log groups: batches them, makes one attempt per PutLogEvents
//! request (creating a missing group or stream on the way), and says what became of every
//! input item.
//!
//! Requests that fail in a way worth retrying are kept as built ([`PendingBatch`]) and
//! handed to the exporter driver inside [`PendingLogs`]: the driver's backoff decides when
//! they go again, and a request that went through is never sent twice because a later one
//! of the same export was throttled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::join_all;
use prometheus_client::metrics::counter::Counter;

use super::marker::{MARKER_BILLED_BYTES, Markers};
use super::request_builder::{LogEvent, MAX_BATCH_BYTES, build_batches_with_room};
use super::retry::ErrorClass;
use super::service::{CallError, LogsService};
use super::target::LogTarget;
use crate::component::{ExportError, ExportReport, Pending, Reason};
use crate::model::Signal;
use crate::telemetry::metrics::SelfMetrics;

/// One PutLogEvents request that has not gone through yet, as built.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    target: LogTarget,
    events: Vec<LogEvent>,
    /// The request's delivery marker, if it carries one.
    marker: Option<LogEvent>,
    /// Look for the marker before sending: an earlier attempt may have been applied.
    look_first: bool,
}

/// What happened to the input items (`LogEvent::origin`) that were not simply delivered.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// Items deliberately not delivered (rejected by CloudWatch, permanent errors), with
    /// the reason. An item split into several events counts once.
    pub dropped: BTreeMap<usize, Reason>,
    /// Requests worth sending again, with the reason the last attempt failed.
    pub pending: Vec<PendingBatch>,
    /// Why the last failed attempt failed (reason, message), for logs and `/health`.
    pub last_error: Option<(Reason, String)>,
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
        self.pending.extend(other.pending);
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
        self.possibly_duplicated += other.possibly_duplicated;
        self.already_delivered += other.already_delivered;
    }

    fn keep_for_retry(&mut self, batch: PendingBatch, reason: &'static str, message: String) {
        self.pending.push(batch);
        self.last_error = Some((Reason::Named(reason), message));
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
        if let Some((_, message)) = &delivery.last_error {
            self.set_error(message.clone());
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

/// Sends every target's events; targets are served concurrently, the requests of one
/// target in order. With `markers`, every request carries a delivery marker (see
/// `marker.rs`).
pub async fn deliver(
    service: &LogsService,
    by_target: BTreeMap<LogTarget, Vec<LogEvent>>,
    markers: Option<&Markers>,
) -> Delivery {
    let room = if markers.is_some() {
        MARKER_BILLED_BYTES
    } else {
        0
    };
    let per_target = by_target.into_iter().map(|(target, events)| {
        build_batches_with_room(events, room)
            .into_iter()
            .map(|batch| {
                // An event as large as a whole request leaves no room: that one goes unmarked.
                let billed: usize = batch.iter().map(LogEvent::billed_size).sum();
                let marker = markers
                    .filter(|_| billed + MARKER_BILLED_BYTES <= MAX_BATCH_BYTES)
                    .map(|m| (m.event(&target, &batch), m.check_first));
                PendingBatch {
                    target: target.clone(),
                    events: batch,
                    look_first: marker.as_ref().is_some_and(|(_, check)| *check),
                    marker: marker.map(|(event, _)| event),
                }
            })
            .collect::<Vec<_>>()
    });
    send_in_order(service, per_target.collect()).await
}

/// One attempt at every request: targets concurrently, each target's requests in order.
/// After a target's first failed request its later ones wait with it, so CloudWatch sees
/// each stream's events in order.
async fn send_in_order(service: &LogsService, per_target: Vec<Vec<PendingBatch>>) -> Delivery {
    let results = join_all(per_target.into_iter().map(|batches| async move {
        let mut out = Delivery::default();
        let mut batches = batches.into_iter();
        for batch in batches.by_ref() {
            let failed_before = out.pending.len();
            out.merge(send_batch(service, batch).await);
            if out.pending.len() > failed_before {
                break;
            }
        }
        out.pending.extend(batches);
        out
    }))
    .await;
    let mut out = Delivery::default();
    for r in results {
        out.merge(r);
    }
    out
}

/// One attempt at one request: accepted, refused for good, or kept for a retry.
async fn send_batch(service: &LogsService, mut batch: PendingBatch) -> Delivery {
    let mut out = Delivery::default();
    if let Some(m) = batch.marker.as_ref().filter(|_| batch.look_first) {
        match service.holds(&batch.target, m).await {
            Ok(true) => {
                tracing::info!(group = %batch.target.group, stream = %batch.target.stream,
                    events = batch.events.len(), "request already delivered (marker found); not sent again");
                out.already_delivered += batch.events.len();
                return out;
            }
            Ok(false) => batch.look_first = false,
            Err(e) if matches!(e.class, ErrorClass::Retryable(_)) => {
                // Throttled like any call: look again later rather than risk a copy.
                out.keep_for_retry(batch, "marker_lookup_failed", e.message);
                return out;
            }
            Err(e) => {
                // Not allowed or not possible (e.g. no logs:GetLogEvents permission):
                // sending again is the only way not to lose the events.
                tracing::warn!(group = %batch.target.group, error = %e.message,
                    "cannot look for the delivery marker; sending the request again");
                batch.look_first = false;
                out.possibly_duplicated += batch.events.len();
            }
        }
    }
    let mut created = false;
    let err = loop {
        let err: CallError = match service
            .put(&batch.target, batch.marker.as_ref(), &batch.events)
            .await
        {
            Ok(rejected) => {
                for (i, e) in batch.events.iter().enumerate() {
                    if let Some(reason) = rejected.reason(i) {
                        out.dropped.insert(e.origin, Reason::Named(reason));
                    }
                }
                if !out.dropped.is_empty() {
                    tracing::warn!(group = %batch.target.group, rejected = out.dropped.len(),
                        "CloudWatch Logs rejected events (too old, too new or expired)");
                }
                return out;
            }
            Err(e) => e,
        };
        match err.class {
            ErrorClass::AlreadyAccepted => return out,
            ErrorClass::ResourceNotFound if !created => match service.create(&batch.target).await {
                Ok(()) => created = true,
                Err(create_err) => break create_err,
            },
            _ => break err,
        }
    };
    let reason = match &err.class {
        ErrorClass::Permanent(reason) => {
            tracing::error!(group = %batch.target.group, stream = %batch.target.stream,
                error = %err.message, events = batch.events.len(),
                "PutLogEvents failed permanently; events dropped");
            for e in &batch.events {
                out.dropped.insert(e.origin, reason.clone());
            }
            out.last_error = Some((reason.clone(), err.message));
            return out;
        }
        ErrorClass::Retryable(reason) => *reason,
        ErrorClass::ResourceNotFound => "resource_not_found",
        ErrorClass::AlreadyAccepted => return out,
    };
    if err.maybe_delivered {
        if batch.marker.is_some() {
            // Look before resending: the marker tells whether the call went through.
            batch.look_first = true;
        } else {
            out.possibly_duplicated += batch.events.len();
        }
    }
    tracing::debug!(group = %batch.target.group, reason, error = %err.message,
        events = batch.events.len(), "PutLogEvents failed; kept for a retry");
    out.keep_for_retry(batch, reason, err.message);
    out
}

/// Requests one export of a CloudWatch exporter still has to deliver, for the driver to
/// send again. Items are counted by their origin (a log record, an EMF document) with the
/// weight each stands for (1 record, or the document's data points).
pub struct PendingLogs {
    service: Arc<LogsService>,
    stats: Arc<DeliveryStats>,
    batches: Vec<PendingBatch>,
    weights: Arc<[usize]>,
    /// Origins already accounted for (dropped), whose other events may still be pending.
    settled: BTreeSet<usize>,
}

impl PendingLogs {
    /// Settles a delivery: dropped items into `report`, and what is left as the retry the
    /// driver should make (`Err`), or `Ok(report)` when nothing is left.
    pub fn settle(
        service: Arc<LogsService>,
        stats: Arc<DeliveryStats>,
        weights: Arc<[usize]>,
        delivery: Delivery,
        mut report: ExportReport,
        mut settled: BTreeSet<usize>,
    ) -> Result<ExportReport, ExportError> {
        stats.record(&delivery);
        let mut dropped: BTreeMap<Reason, usize> = BTreeMap::new();
        for (origin, reason) in &delivery.dropped {
            if settled.insert(*origin) {
                *dropped.entry(reason.clone()).or_default() +=
                    weights.get(*origin).copied().unwrap_or(0);
            }
        }
        report
            .dropped
            .extend(dropped.into_iter().filter(|(_, n)| *n > 0));
        if delivery.pending.is_empty() {
            return Ok(report);
        }
        let (reason, message) = delivery.last_error.unwrap_or_else(|| {
            (
                Reason::Named("unprocessed"),
                "PutLogEvents kept failing".into(),
            )
        });
        let pending = PendingLogs {
            service,
            stats,
            batches: delivery.pending,
            weights,
            settled,
        };
        if pending.item_count() == 0 {
            return Ok(report);
        }
        Err(ExportError::Retry {
            reason,
            message,
            pending: Box::new(pending),
            report,
        })
    }
}

#[async_trait]
impl Pending for PendingLogs {
    fn item_count(&self) -> usize {
        let origins: BTreeSet<usize> = self
            .batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.origin))
            .filter(|o| !self.settled.contains(o))
            .collect();
        origins
            .into_iter()
            .map(|o| self.weights.get(o).copied().unwrap_or(0))
            .sum()
    }

    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError> {
        let PendingLogs {
            service,
            stats,
            batches,
            weights,
            settled,
        } = *self;
        let mut per_target: BTreeMap<LogTarget, Vec<PendingBatch>> = BTreeMap::new();
        for b in batches {
            per_target.entry(b.target.clone()).or_default().push(b);
        }
        let delivery = send_in_order(&service, per_target.into_values().collect()).await;
        PendingLogs::settle(
            service,
            stats,
            weights,
            delivery,
            ExportReport::default(),
            settled,
        )
    }
}
