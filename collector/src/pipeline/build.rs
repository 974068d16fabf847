//! Builds the running pipelines from a validated [`Config`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::flush::FlushControl;
use super::queue::ItemBudget;
use super::signal::Signal;
use super::{Batch, Consumer, PipelineInput, STAGE_CHANNEL_CAPACITY};
use crate::config::{Config, ProcessorConfig, component_type};
use crate::exporter::driver::{Driver, ExporterState};
use crate::exporter::{self, Exporter};
use crate::processor::Processor;
use crate::processor::batch::BatchProcessor;
use crate::telemetry::health::{ComponentStatus, HealthRegistry};
use crate::telemetry::metrics::SelfMetrics;

/// Every pipeline, running.
pub struct Pipelines {
    /// Per receiver id and signal, the consumer to hand data to.
    pub consumers: BTreeMap<(String, Signal), Consumer>,
    /// Per pipeline, its item budget (to report what is still held at shutdown).
    pub budgets: Vec<(String, ItemBudget)>,
    /// Processor, fan-out and driver tasks; they end once every consumer is dropped and
    /// the data has drained.
    pub tasks: JoinSet<()>,
    /// Asks every batch processor to send what it holds now (see [`super::flush`]).
    pub flush: FlushControl,
}

#[derive(Debug, thiserror::Error)]
#[error("exporter `{id}`: {message}")]
pub struct BuildError {
    pub id: String,
    pub message: String,
}

/// An exporter instance and its health state, shared by the pipelines that list it.
type BuiltExporter = (Arc<dyn Exporter>, Arc<Mutex<ExporterState>>);

pub fn build(
    config: &Config,
    metrics: &Arc<SelfMetrics>,
    health: &HealthRegistry,
) -> Result<Pipelines, BuildError> {
    let mut exporters: BTreeMap<String, BuiltExporter> = BTreeMap::new();
    for p in config.service.pipelines.values() {
        for id in &p.exporters {
            if exporters.contains_key(id) {
                continue;
            }
            let cfg = &config.exporters.0[id];
            let built = exporter::build(id, cfg, metrics).map_err(|message| BuildError {
                id: id.clone(),
                message,
            })?;
            let state = Arc::new(Mutex::new(ExporterState::default()));
            health.register_exporter(id, built.clone(), state.clone());
            exporters.insert(id.clone(), (built, state));
        }
    }

    let flush = FlushControl::new();
    let mut tasks = JoinSet::new();
    let mut budgets = Vec::new();
    let mut inputs_by_receiver: BTreeMap<(String, Signal), Vec<PipelineInput>> = BTreeMap::new();
    for (name, p) in &config.service.pipelines {
        let signal = Signal::parse(component_type(name)).expect("validated pipeline name");
        let (held, capacity) = metrics.queue_gauges(name);
        let budget = ItemBudget::new(p.queue_size, held, capacity);
        budgets.push((name.clone(), budget.clone()));
        health.register_pipeline(name, budget.clone());

        let (tx, mut rx) = mpsc::channel::<Batch>(STAGE_CHANNEL_CAPACITY);
        for id in &p.processors {
            let processor: Box<dyn Processor> = match &config.processors.0[id] {
                ProcessorConfig::Batch(c) => Box::new(BatchProcessor::new(
                    c.clone(),
                    metrics.pipeline_dropped(name, id, "shutdown"),
                    flush.subscribe(),
                )),
            };
            let (next_tx, next_rx) = mpsc::channel::<Batch>(STAGE_CHANNEL_CAPACITY);
            tasks.spawn(processor.run(rx, next_tx));
            rx = next_rx;
        }

        let mut driver_inputs = Vec::new();
        for id in &p.exporters {
            let (exporter, state) = &exporters[id];
            let (retry, queue) = config.exporters.0[id].delivery();
            let driver = Driver::new(
                id,
                name,
                exporter.clone(),
                retry.clone(),
                queue,
                state.clone(),
                metrics.clone(),
                signal,
            );
            let (dtx, drx) = mpsc::channel::<Arc<Batch>>(STAGE_CHANNEL_CAPACITY);
            tasks.spawn(driver.run(drx));
            driver_inputs.push(dtx);
        }
        tasks.spawn(fan_out(rx, driver_inputs));

        let input = PipelineInput::new(name, budget, tx, metrics.pipeline_accepted(name));
        for r in &p.receivers {
            inputs_by_receiver
                .entry((r.clone(), signal))
                .or_default()
                .push(input.clone());
        }
    }
    let consumers = inputs_by_receiver
        .into_iter()
        .map(|((id, signal), inputs)| ((id, signal), Consumer::new(signal, inputs)))
        .collect();
    Ok(Pipelines {
        consumers,
        budgets,
        tasks,
        flush,
    })
}

/// Hands every batch to every exporter of the pipeline. The batch is shared: its items go
/// back to the pipeline's budget when the slowest exporter is done with it.
async fn fan_out(mut input: mpsc::Receiver<Batch>, outputs: Vec<mpsc::Sender<Arc<Batch>>>) {
    while let Some(batch) = input.recv().await {
        let batch = Arc::new(batch);
        for out in &outputs {
            // A driver only stops when its input closes, which is after this task ends.
            let _ = out.send(batch.clone()).await;
        }
    }
}

impl HealthRegistry {
    fn register_pipeline(&self, name: &str, budget: ItemBudget) {
        self.register(&format!("pipeline/{name}"), move || {
            let held = budget.held();
            let capacity = budget.capacity();
            let status = if held >= capacity {
                // Full means senders are being asked to retry, which is the design working,
                // not a reason to restart the collector.
                ComponentStatus::degraded(format!("queue full: {held}/{capacity} items"))
            } else {
                ComponentStatus::healthy(format!("queue {held}/{capacity} items"))
            };
            status
                .with("queue_items", held)
                .with("queue_capacity", capacity)
        });
    }

    fn register_exporter(
        &self,
        id: &str,
        exporter: Arc<dyn Exporter>,
        state: Arc<Mutex<ExporterState>>,
    ) {
        self.register(&format!("exporter/{id}"), move || {
            let s = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let detail = exporter.health_detail().unwrap_or_default();
            let mut status =
                if s.consecutive_failures >= crate::telemetry::health::UNHEALTHY_AFTER_FAILURES {
                    ComponentStatus::unhealthy(format!(
                        "{} consecutive export failures; last: {}",
                        s.consecutive_failures,
                        s.last_error.clone().unwrap_or_default()
                    ))
                } else {
                    ComponentStatus::healthy(detail)
                };
            status = status.with("consecutive_failures", s.consecutive_failures);
            if let Some(e) = s.last_error {
                status = status.with("last_error", e);
            }
            status
        });
    }
}
