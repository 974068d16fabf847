//! The `batch` processor: fewer, fuller export calls.
//!
//! Buffers items until `send_batch_size` are held or `timeout` has passed since the first
//! of them arrived, then sends them on, cut into pieces of at most `send_batch_max_size`.
//! Exporters pay per call (PutLogEvents, PutTraceSegments), so this is where cost is saved.
//!
//! A [`FlushSignal`] overrides both: on a flush request (the Lambda extension sends one
//! when an invocation ends) everything already handed to the processor is sent at once.

pub(crate) mod config;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::config::BatchConfig;
use crate::component::Processor;
use crate::component::flush::FlushSignal;
use crate::component::validate::Invalid;
use crate::model::Batch;

pub struct BatchProcessor {
    config: BatchConfig,
    /// Counted if the next stage has gone away (only possible while shutting down).
    lost: Counter,
    flush: FlushSignal,
}

impl BatchProcessor {
    pub fn new(config: BatchConfig, lost: Counter, flush: FlushSignal) -> BatchProcessor {
        BatchProcessor {
            config,
            lost,
            flush,
        }
    }

    fn next_piece(&self, pending: &mut Option<Batch>, force: bool) -> Option<Batch> {
        let held = pending.as_ref().map_or(0, Batch::item_count);
        if held == 0 || (!force && held < self.config.send_batch_size) {
            return None;
        }
        let max = self.config.send_batch_max_size;
        if max > 0 && held > max {
            pending.as_mut().map(|p| p.split_front(max))
        } else {
            pending.take()
        }
    }

    async fn send(&self, output: &mpsc::Sender<Batch>, batch: Batch) {
        let n = batch.item_count();
        if output.send(batch).await.is_err() {
            self.lost.inc_by(n as u64);
        }
    }
}

#[async_trait]
impl Processor for BatchProcessor {
    async fn run(
        mut self: Box<Self>,
        mut input: mpsc::Receiver<Batch>,
        output: mpsc::Sender<Batch>,
    ) {
        let mut pending: Option<Batch> = None;
        let mut deadline: Option<Instant> = None;
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = input.recv() => {
                    let Some(batch) = received else { break };
                    match &mut pending {
                        Some(p) => p.append(batch),
                        None => {
                            pending = Some(batch);
                            deadline = Some(Instant::now() + self.config.timeout);
                        }
                    }
                    while let Some(piece) = self.next_piece(&mut pending, false) {
                        self.send(&output, piece).await;
                    }
                    if pending.as_ref().is_none_or(|p| p.item_count() == 0) {
                        pending = None;
                        deadline = None;
                    }
                }
                () = timer => {
                    while let Some(piece) = self.next_piece(&mut pending, true) {
                        self.send(&output, piece).await;
                    }
                    pending = None;
                    deadline = None;
                }
                () = self.flush.requested() => {
                    // What a receiver handed over before the request is still in the
                    // channel: it belongs to this flush too.
                    while let Ok(batch) = input.try_recv() {
                        match &mut pending {
                            Some(p) => p.append(batch),
                            None => pending = Some(batch),
                        }
                    }
                    while let Some(piece) = self.next_piece(&mut pending, true) {
                        self.send(&output, piece).await;
                    }
                    pending = None;
                    deadline = None;
                }
            }
        }
        while let Some(piece) = self.next_piece(&mut pending, true) {
            self.send(&output, piece).await;
        }
    }
}

impl crate::component::factory::ProcessorFactory for BatchConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
        BatchConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::component::factory::ProcessorContext<'_>,
    ) -> Result<Box<dyn crate::component::Processor>, crate::component::factory::BuildError> {
        Ok(Box::new(BatchProcessor::new(
            self.clone(),
            ctx.metrics
                .pipeline_dropped(ctx.pipeline, ctx.id, "shutdown"),
            ctx.flush.subscribe(),
        )))
    }
}

#[cfg(test)]
mod tests;
