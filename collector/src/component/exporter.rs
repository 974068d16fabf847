//! The exporter contract: what the topology's driver calls, and what an exporter reports
//! back. An exporter turns OTLP batches into what its destination takes and sends them; the
//! driver retries and does all the accounting, so an exporter only says what happened.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::metrics::gauge::Gauge;

use super::reason::Reason;
use crate::model::{Signal, SignalData};

/// What became of a batch an exporter accepted without error.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExportReport {
    /// Items that were deliberately not delivered, with the reason (e.g. `nan_value`,
    /// `invalid_trace_id`), counted as failed. Everything else in the batch was delivered
    /// or withheld.
    pub dropped: Vec<(Reason, usize)>,
    /// Items not sent on purpose, with nothing lost by it, by reason (the EMF exporter's
    /// `initial_cumulative_point`: the first point of a cumulative series only sets the
    /// baseline of its deltas). Counted as `exporter_withheld_items`, not as failed.
    /// (A boxed slice rather than a `Vec`: it keeps [`ExportError`], which can carry a
    /// report, small.)
    pub withheld: Box<[(Reason, usize)]>,
}

impl ExportReport {
    pub fn delivered() -> ExportReport {
        ExportReport::default()
    }

    pub fn dropped_items(&self) -> usize {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    pub fn withheld_items(&self) -> usize {
        self.withheld.iter().map(|(_, n)| n).sum()
    }
}

/// Where a batch taken from the queue on disk (`sending_queue.storage`) comes from, so an
/// exporter whose destination has no idempotency key can still avoid storing it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provenance {
    /// Identifies the batch, stably across restarts (its queue record's sequence number).
    pub key: u64,
    /// Read back from disk after a restart, from among the batches the previous run may
    /// have been sending: some of it may already be at the destination.
    pub replayed: bool,
}

/// Requests an exporter built from a batch and has not delivered yet (PutTraceSegments
/// calls, PutLogEvents batches, OTLP requests), kept as built: the driver sends them again
/// after its backoff without the batch being translated anew. This is what makes the
/// driver the one retry layer: an exporter makes one attempt per request and says what is
/// left; it never waits or loops itself.
#[async_trait]
pub trait Pending: Send + Sync {
    /// Input items (spans, data points, log records) the requests still carry.
    fn item_count(&self) -> usize;

    /// Sends every request once more. What fails again comes back as
    /// [`ExportError::Retry`] with the requests still pending; what became of the others is
    /// in the report (or the error's report).
    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError>;
}

/// Why an export did not (fully) succeed.
#[derive(thiserror::Error)]
pub enum ExportError {
    /// Worth trying again: throttling, 5xx, timeouts, I/O hiccups. Nothing was delivered;
    /// the whole batch is exported again. `retry_after` is the destination's hint.
    #[error("{reason}: {message}")]
    Retryable {
        reason: Reason,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Some requests were not delivered and are worth sending again: `pending` holds them,
    /// already built; `report` says what became of the rest of the batch.
    #[error("{reason}: {message} ({} items left to retry)", pending.item_count())]
    Retry {
        reason: Reason,
        message: String,
        pending: Box<dyn Pending>,
        report: ExportReport,
    },
    /// Trying again cannot help (bad credentials, validation error): the batch is counted as
    /// failed with `reason`.
    #[error("{reason}: {message}")]
    Permanent { reason: Reason, message: String },
}

impl std::fmt::Debug for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl ExportError {
    pub fn retryable(reason: impl Into<Reason>, message: impl Into<String>) -> ExportError {
        ExportError::Retryable {
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<Reason>, message: impl Into<String>) -> ExportError {
        ExportError::Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            ExportError::Retryable { reason, .. }
            | ExportError::Retry { reason, .. }
            | ExportError::Permanent { reason, .. } => reason,
        }
    }
}

/// An exporter that splits a batch into several requests, as [`send_in_order`] sends them.
#[async_trait]
pub trait RequestSender<R: Send + Sync>: Send + Sync {
    /// One attempt at one request; `Ok` holds the items the destination rejected in a
    /// partial success.
    async fn send_request(&self, request: &R) -> Result<Vec<(Reason, usize)>, ExportError>;
    /// Input items the request carries.
    fn items(&self, request: &R) -> usize;
    /// Where the request goes, for the log.
    fn destination(&self, request: &R) -> String;
    /// The requests still to send, for the driver to send again after its backoff.
    fn left_over(&self, requests: Vec<R>) -> Box<dyn Pending>;
}

/// Sends a batch's `requests` in order, one attempt each. A request refused permanently is
/// counted dropped with its reason and the rest go on; after the first that fails in a way
/// worth retrying, it and the ones after it are left for the driver as a [`Pending`].
/// `first`: nothing of the batch was settled before, so a failure before anything was
/// settled is a failure of the whole batch (exported again as it is, or, refused, counted
/// by the driver).
pub async fn send_in_order<R: Send + Sync>(
    sender: &impl RequestSender<R>,
    requests: Vec<R>,
    mut report: ExportReport,
    first: bool,
) -> Result<ExportReport, ExportError> {
    let mut requests = requests.into_iter();
    let mut settled_any = !first;
    while let Some(request) = requests.next() {
        match sender.send_request(&request).await {
            Ok(rejected) => report.dropped.extend(rejected),
            // The whole batch refused: the driver counts and reports it.
            Err(e @ ExportError::Permanent { .. }) if !settled_any && requests.len() == 0 => {
                return Err(e);
            }
            Err(ExportError::Permanent { reason, message }) => {
                let items = sender.items(&request);
                tracing::error!(destination = %sender.destination(&request), items,
                    error = %message, "part of a batch refused permanently");
                report.dropped.push((reason, items));
            }
            Err(e) if !settled_any => return Err(e),
            Err(e) => {
                let mut left = vec![request];
                left.extend(requests);
                return Err(ExportError::Retry {
                    reason: e.reason().clone(),
                    message: e.to_string(),
                    pending: sender.left_over(left),
                    report,
                });
            }
        }
        settled_any = true;
    }
    Ok(report)
}

/// One destination. Built once per configured exporter id and shared by every pipeline
/// that lists it, so it must be safe to call from several pipelines at once.
#[async_trait]
pub trait Exporter: Send + Sync + 'static {
    /// The signals this exporter can take; a pipeline of another signal that lists it is a
    /// configuration error.
    fn signals(&self) -> &'static [Signal];

    /// Sends one batch. Called with batches of the signals in [`Exporter::signals`] only.
    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError>;

    /// Sends one batch from the queue on disk. Exporters that can recognise what their
    /// destination already holds (CloudWatch Logs: delivery markers) use `provenance` to
    /// skip it on replay; the rest just export it (X-Ray keys segments by id, so a replayed
    /// segment replaces itself).
    async fn export_queued(
        &self,
        batch: &SignalData,
        provenance: Provenance,
    ) -> Result<ExportReport, ExportError> {
        let _ = provenance;
        self.export(batch).await
    }

    /// Flushes anything buffered inside the exporter (open files, partial documents).
    async fn flush(&self) -> Result<(), ExportError> {
        Ok(())
    }

    /// A short human-readable state for `/health` (`None` = nothing to add).
    fn health_detail(&self) -> Option<String> {
        None
    }

    /// Forgets state that has gone idle (per-series snapshots, a dimension-set interval
    /// that is over), so what it held goes back to the memory budget even while no batch
    /// arrives. Called by the driver about every half minute, from every pipeline the
    /// exporter serves; the default holds nothing to forget.
    fn expire_idle(&self, now: Instant) {
        let _ = now;
    }

    /// Bytes the exporter holds beyond the batches it is sending (whose tickets are
    /// charged already), such as per-series state, kept current by it, for the
    /// process-wide memory budget.
    fn held_bytes_gauge(&self) -> Option<Gauge> {
        None
    }
}
