//! The exporter contract: what the topology's driver calls, and what an exporter reports
//! back. An exporter turns OTLP batches into what its destination takes and sends them; the
//! driver retries and does all the accounting, so an exporter only says what happened.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{Signal, SignalData};

/// What became of a batch an exporter accepted without error.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExportReport {
    /// Items that were deliberately not delivered, with the reason (e.g. `nan_value`,
    /// `invalid_trace_id`), counted as failed. Everything else in the batch was delivered
    /// or withheld.
    pub dropped: Vec<(String, usize)>,
    /// Items not sent on purpose, with nothing lost by it, by reason (the EMF exporter's
    /// `initial_cumulative_point`: the first point of a cumulative series only sets the
    /// baseline of its deltas). Counted as `exporter_withheld_items`, not as failed.
    /// (A boxed slice rather than a `Vec`: it keeps [`ExportError`], which can carry a
    /// report, small.)
    pub withheld: Box<[(String, usize)]>,
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

/// Why an export did not (fully) succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Worth trying again: throttling, 5xx, timeouts, I/O hiccups. `retry_after` is the
    /// destination's hint, if it gave one.
    #[error("{reason}: {message}")]
    Retryable {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Part of the batch was delivered; `remaining` should be retried.
    #[error("{reason}: {message} ({} items left to retry)", remaining.item_count())]
    PartiallyRetryable {
        reason: String,
        message: String,
        remaining: SignalData,
        report: ExportReport,
    },
    /// Trying again cannot help (bad credentials, validation error): the batch is counted as
    /// failed with `reason`.
    #[error("{reason}: {message}")]
    Permanent { reason: String, message: String },
}

impl ExportError {
    pub fn retryable(reason: impl Into<String>, message: impl Into<String>) -> ExportError {
        ExportError::Retryable {
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> ExportError {
        ExportError::Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            ExportError::Retryable { reason, .. }
            | ExportError::PartiallyRetryable { reason, .. }
            | ExportError::Permanent { reason, .. } => reason,
        }
    }
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
}
