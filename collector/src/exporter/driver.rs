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
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ExportError, ExportReport, Exporter};
use crate::pipeline::Batch;
use crate::pipeline::signal::SignalData;
use crate::telemetry::metrics::SelfMetrics;

/// `retry_on_failure`, as in the OpenTelemetry Collector's exporter helper.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Wait before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Give up on a batch (counting it as failed) after retrying this long; 0 = never.
    #[serde(with = "humantime_serde")]
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 2.0,
        }
    }
}

/// `sending_queue`: how many batches an exporter works on at once.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueueConfig {
    /// Concurrent exports. 1 keeps batches in order (files, stdout); AWS destinations
    /// usually take several.
    pub num_consumers: usize,
}

impl Default for SendingQueueConfig {
    fn default() -> Self {
        SendingQueueConfig { num_consumers: 1 }
    }
}

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
        signal: crate::pipeline::signal::Signal,
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
            metrics,
        }
    }

    /// Exports every batch from `input` until it closes.
    pub async fn run(self, input: mpsc::Receiver<Arc<Batch>>) {
        let this = &self;
        ReceiverStream::new(input)
            .for_each_concurrent(self.num_consumers, |batch| async move {
                this.export_batch(&batch.data).await;
            })
            .await;
        if let Err(e) = self.exporter.flush().await {
            tracing::warn!(exporter = %self.exporter_id, error = %e, "flush at shutdown failed");
        }
    }

    fn fail(&self, data: &SignalData, reason: &str, items: usize) {
        if items > 0 {
            self.metrics
                .exporter_failed(&self.exporter_id, &self.pipeline, data.signal(), reason)
                .inc_by(items as u64);
        }
    }

    fn record(&self, data: &SignalData, delivered_of: usize, report: &ExportReport) {
        let dropped = report.dropped_items().min(delivered_of);
        self.sent.inc_by((delivered_of - dropped) as u64);
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

    async fn export_batch(&self, batch: &SignalData) {
        let started = Instant::now();
        let mut owned: Option<SignalData> = None;
        let mut delay = self.retry.initial_interval;
        loop {
            let data = owned.as_ref().unwrap_or(batch);
            let items = data.item_count();
            let (err, retry_after) = match self.exporter.export(data).await {
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
