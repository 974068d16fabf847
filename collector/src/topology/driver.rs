//! Drives one exporter for one pipeline: takes batches off the pipeline, calls the
//! exporter, retries what is worth retrying and accounts for every item.
//!
//! Retries use exponential backoff with full jitter, bounded by `max_elapsed_time`; a
//! destination's `Retry-After` hint is honoured when it asks for longer. Items are counted
//! exactly once: as sent, or as failed with a reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::persistent_queue::PersistentQueue;
use crate::component::{ExportError, ExportReport, Exporter, Provenance};
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::model::Batch;
use crate::model::SignalData;
use crate::model::memory::{self, MemoryLimiter};
use crate::telemetry::metrics::SelfMetrics;

/// The last outcome of an exporter, for `/health`.
#[derive(Debug, Clone, Default)]
pub struct ExporterState {
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub last_success: Option<std::time::SystemTime>,
}

/// Everything a driver needs besides its input.
pub struct Driver {
    pub exporter_id: String,
    pub pipeline: String,
    pub exporter: Arc<dyn Exporter>,
    pub retry: RetryConfig,
    pub num_consumers: usize,
    pub state: Arc<Mutex<ExporterState>>,
    /// Batches go through this queue on disk when `sending_queue.storage` is set.
    persistent: Option<Arc<PersistentQueue>>,
    /// The pipeline's memory limit: above its hard limit, failed batches are shed.
    memory: Option<Arc<MemoryLimiter>>,
    sent: Counter,
    retries: Counter,
    metrics: Arc<SelfMetrics>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        exporter_id: &str,
        pipeline: &str,
        exporter: Arc<dyn Exporter>,
        retry: RetryConfig,
        queue: &SendingQueueConfig,
        state: Arc<Mutex<ExporterState>>,
        metrics: Arc<SelfMetrics>,
        signal: crate::model::Signal,
    ) -> Driver {
        Driver {
            sent: metrics.exporter_sent(exporter_id, pipeline, signal),
            retries: metrics.exporter_retries(exporter_id, pipeline, signal),
            exporter_id: exporter_id.into(),
            pipeline: pipeline.into(),
            exporter,
            retry,
            num_consumers: queue.num_consumers.max(1),
            state,
            persistent: None,
            memory: None,
            metrics,
        }
    }

    /// Sheds failed batches (instead of retrying them) while the pipeline holds more than
    /// `limiter`'s hard limit.
    pub fn with_memory_limiter(mut self, limiter: Arc<MemoryLimiter>) -> Driver {
        self.memory = Some(limiter);
        self
    }

    /// Sends every batch through `queue` on disk (and first whatever it still holds).
    pub fn with_persistent_queue(mut self, queue: PersistentQueue) -> Driver {
        self.persistent = Some(Arc::new(queue));
        self
    }

    /// Exports every batch from `input` until it closes.
    pub async fn run(self, input: mpsc::Receiver<Arc<Batch>>) {
        let this = &self;
        match self.persistent.clone() {
            None => {
                ReceiverStream::new(input)
                    .for_each_concurrent(self.num_consumers, |batch| async move {
                        this.export_batch(&batch.data, None).await;
                    })
                    .await;
            }
            Some(queue) => {
                futures::join!(self.fill(input, &queue), self.drain(&queue));
            }
        }
        if let Err(e) = self.exporter.flush().await {
            tracing::warn!(exporter = %self.exporter_id, error = %e, "flush at shutdown failed");
        }
    }

    /// Moves batches from the pipeline to the queue on disk. A batch leaves the pipeline's
    /// item budget once it is written, so an outage is bounded by the queue's `max_bytes`
    /// rather than by the pipeline's `queue_size`.
    async fn fill(&self, mut input: mpsc::Receiver<Arc<Batch>>, queue: &PersistentQueue) {
        let mut sync = tokio::time::interval(Duration::from_millis(100));
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let batch = tokio::select! {
                batch = input.recv() => batch,
                _ = sync.tick() => {
                    if let Err(e) = queue.sync().await {
                        tracing::error!(exporter = %self.exporter_id, error = %e, "queue sync failed");
                    }
                    continue;
                }
            };
            let Some(batch) = batch else { break };
            if let Err(e) = queue.push(&batch.data).await {
                // The disk failed us: deliver this batch from memory rather than lose it.
                tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                    error = %e, "cannot write to the queue storage; exporting directly");
                self.export_batch(&batch.data, None).await;
            }
        }
        if let Err(e) = queue.sync().await {
            tracing::error!(exporter = %self.exporter_id, error = %e, "queue sync failed");
        }
        queue.close();
    }

    /// Exports from the queue on disk, in order, removing each batch once it is settled
    /// (delivered, or counted as failed).
    async fn drain(&self, queue: &PersistentQueue) {
        futures::stream::unfold(queue, |q| async move {
            match q.pop().await {
                Ok(Some(item)) => Some((item, q)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue storage; stopping");
                    None
                }
            }
        })
        .for_each_concurrent(self.num_consumers, |item| async move {
            let provenance = Provenance {
                key: item.seq,
                replayed: item.replayed,
            };
            self.export_batch(&item.data, Some(provenance)).await;
            if let Err(e) = queue.ack(item.seq).await {
                tracing::error!(exporter = %self.exporter_id, error = %e,
                    "cannot remove a delivered batch from the queue storage; it may be sent again after a restart");
            }
        })
        .await;
    }

    fn fail(&self, data: &SignalData, reason: &str, items: usize) {
        if items > 0 {
            self.metrics
                .exporter_failed(&self.exporter_id, &self.pipeline, data.signal(), reason)
                .inc_by(items as u64);
        }
    }

    /// Accounts for `delivered_of` items the exporter settled: each is sent, withheld (not
    /// a failure) or failed with a reason.
    fn record(&self, data: &SignalData, delivered_of: usize, report: &ExportReport) {
        let not_sent = (report.dropped_items() + report.withheld_items()).min(delivered_of);
        self.sent.inc_by((delivered_of - not_sent) as u64);
        for (reason, n) in &report.withheld {
            if *n > 0 {
                self.metrics
                    .exporter_withheld(&self.exporter_id, &self.pipeline, data.signal(), reason)
                    .inc_by(*n as u64);
            }
        }
        for (reason, n) in &report.dropped {
            self.fail(data, reason, *n);
        }
    }

    fn note(&self, result: Result<(), &ExportError>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                state.consecutive_failures = 0;
                state.last_success = Some(std::time::SystemTime::now());
            }
            Err(e) => {
                state.consecutive_failures += 1;
                state.last_error = Some(e.to_string());
            }
        }
    }

    /// Exports `batch` until it is settled. `provenance` is set for batches from the queue on
    /// disk; retries keep it (same batch), with `replayed` set once an attempt may have
    /// reached the destination.
    async fn export_batch(&self, batch: &SignalData, provenance: Option<Provenance>) {
        let started = Instant::now();
        let mut owned: Option<SignalData> = None;
        let mut delay = self.retry.initial_interval;
        loop {
            let data = owned.as_ref().unwrap_or(batch);
            let items = data.item_count();
            let export = async {
                match provenance {
                    Some(p) => self.exporter.export_queued(data, p).await,
                    None => self.exporter.export(data).await,
                }
            };
            let attempt = memory::exporting_for(self.memory.clone(), export);
            let (err, retry_after) = match attempt.await {
                Ok(report) => {
                    self.record(data, items, &report);
                    self.note(Ok(()));
                    return;
                }
                Err(e @ ExportError::Permanent { .. }) => {
                    tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                        items, error = %e, "export failed permanently; items dropped");
                    self.fail(data, e.reason(), items);
                    self.note(Err(&e));
                    return;
                }
                Err(ExportError::PartiallyRetryable {
                    reason,
                    message,
                    remaining,
                    report,
                }) => {
                    let done = items.saturating_sub(remaining.item_count());
                    self.record(data, done, &report);
                    let e = ExportError::Retryable {
                        reason,
                        message,
                        retry_after: None,
                    };
                    owned = Some(remaining);
                    (e, None)
                }
                Err(e @ ExportError::Retryable { .. }) => {
                    let hint = match &e {
                        ExportError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    (e, hint)
                }
            };
            self.note(Err(&err));
            let data = owned.as_ref().unwrap_or(batch);
            let left = data.item_count();
            let wait = jittered(delay).max(retry_after.unwrap_or_default());
            let budget = self.retry.max_elapsed_time;
            let out_of_time = !budget.is_zero() && started.elapsed() + wait > budget;
            if self.memory.as_ref().is_some_and(|m| m.over_hard()) {
                tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                    items = left, error = %err,
                    "pipeline above its hard memory limit; failed batch shed, items dropped");
                self.fail(data, "memory_limit", left);
                return;
            }
            if !self.retry.enabled || out_of_time {
                tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                    items = left, error = %err, "giving up after retries; items dropped");
                self.fail(data, "retries_exhausted", left);
                return;
            }
            tracing::warn!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                items = left, error = %err, retry_in = ?wait, "export failed; will retry");
            self.retries.inc();
            tokio::time::sleep(wait).await;
            delay = self
                .retry
                .max_interval
                .min(delay.mul_f64(self.retry.multiplier.max(1.0)));
        }
    }
}

/// "Full jitter" backoff: a uniform wait in [delay/2, delay], so a fleet of collectors
/// throttled together does not retry in lockstep.
fn jittered(delay: Duration) -> Duration {
    let factor = rand::rng().random_range(0.5..=1.0);
    delay.mul_f64(factor)
}
