//! Builds the running pipelines from a validated [`Config`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::component::Exporter;
use crate::component::auth::Authenticators;
use crate::component::factory::{self, ExporterContext, ProcessorContext};
use crate::component::flush::FlushControl;
use crate::component::{Consumer, PipelineInput, STAGE_CHANNEL_CAPACITY};
use crate::config::memory_limiter::AvailableMemory;
use crate::config::{Config, component_type};
use crate::model::memory::{MIB, MemoryLimiter, MemoryLimits};
use crate::model::{Batch, ItemBudget, Signal};
use crate::telemetry::health::{ComponentStatus, HealthRegistry};
use crate::telemetry::metrics::SelfMetrics;
use crate::topology::driver::{Driver, ExporterState};
use crate::topology::persistent_queue::{PersistentQueue, QueueCounters, StorageConfig, queue_dir};

/// Every pipeline, running.
pub struct Pipelines {
    /// Per receiver id and signal, the consumer to hand data to.
    pub consumers: BTreeMap<(String, Signal), Consumer>,
    /// Per pipeline, its item budget (to report what is still held at shutdown).
    pub budgets: Vec<(String, ItemBudget)>,
    /// Processor, fan-out and driver tasks; they end once every consumer is dropped and
    /// the data has drained.
    pub tasks: JoinSet<()>,
    /// Asks every batch processor to send what it holds now (see [`crate::component::flush`]).
    pub flush: FlushControl,
}

/// Why the pipelines could not be built: the component (or `service.memory_limiter`) and
/// its typed cause. Nothing has started when this is returned.
#[derive(Debug, thiserror::Error)]
#[error("component `{id}`: {source}")]
pub struct BuildError {
    pub id: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// An exporter instance and its health state, shared by the pipelines that list it.
type BuiltExporter = (Arc<dyn Exporter>, Arc<Mutex<ExporterState>>);

pub fn build(
    config: &Config,
    metrics: &Arc<SelfMetrics>,
    health: &HealthRegistry,
    auth: &Authenticators,
) -> Result<Pipelines, BuildError> {
    let memory = memory_limiter(config, metrics, health)?;
    let mut exporters: BTreeMap<String, BuiltExporter> = BTreeMap::new();
    for p in config.service.pipelines.values() {
        for id in &p.exporters {
            if exporters.contains_key(id) {
                continue;
            }
            let cfg = &config.exporters.0[id];
            let built = cfg
                .factory()
                .build(&ExporterContext { id, metrics, auth })
                .map_err(|e| BuildError {
                    id: id.clone(),
                    source: Box::new(e),
                })?;
            if let (Some(limiter), Some(held)) = (&memory, built.held_bytes_gauge()) {
                limiter.watch(held);
            }
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
            let processor = config.processors.0[id]
                .factory()
                .build(&ProcessorContext {
                    id,
                    pipeline: name,
                    metrics,
                    flush: &flush,
                })
                .map_err(|e| BuildError {
                    id: id.clone(),
                    source: Box::new(e),
                })?;
            if let (Some(limiter), Some(held)) = (&memory, processor.held_bytes_gauge()) {
                limiter.watch(held);
            }
            let (next_tx, next_rx) = mpsc::channel::<Batch>(STAGE_CHANNEL_CAPACITY);
            tasks.spawn(processor.run(rx, next_tx));
            rx = next_rx;
        }

        let mut driver_inputs = Vec::new();
        for id in &p.exporters {
            let (exporter, state) = &exporters[id];
            let (retry, queue) = config.exporters.0[id].factory().delivery();
            let mut driver = Driver::new(
                id,
                name,
                exporter.clone(),
                retry.clone(),
                queue,
                state.clone(),
                metrics.clone(),
                signal,
            );
            if let Some(limiter) = &memory {
                driver = driver.with_memory_limiter(limiter.clone());
            }
            if let Some(storage) = &queue.storage {
                driver = driver.with_persistent_queue(
                    open_persistent_queue(storage, queue, id, name, signal, metrics).map_err(
                        |e| BuildError {
                            id: id.clone(),
                            source: Box::new(e),
                        },
                    )?,
                );
            }
            let (dtx, drx) = mpsc::channel::<Arc<Batch>>(STAGE_CHANNEL_CAPACITY);
            tasks.spawn(driver.run(drx));
            driver_inputs.push(DriverInput {
                exporter: id.clone(),
                tx: dtx,
            });
        }
        tasks.spawn(fan_out(name.clone(), rx, driver_inputs, metrics.clone()));

        let durable = p.exporters.iter().any(|id| {
            config.exporters.0[id]
                .factory()
                .delivery()
                .1
                .storage
                .is_some()
        });
        let input = PipelineInput::new(name, budget, tx, metrics.pipeline_accepted(name))
            .durable(durable)
            .memory_limiter(memory.clone());
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

/// The one memory budget of the process (`service.memory_limiter`), shown on `/health`.
fn memory_limiter(
    config: &Config,
    metrics: &SelfMetrics,
    health: &HealthRegistry,
) -> Result<Option<Arc<MemoryLimiter>>, BuildError> {
    let Some(cfg) = &config.service.memory_limiter else {
        return Ok(None);
    };
    let available = AvailableMemory::read();
    let limits = cfg.limits(&available).map_err(|e| BuildError {
        id: "service.memory_limiter".into(),
        source: Box::new(e),
    })?;
    let (total, source) = available.bytes().unwrap_or((0, "none read"));
    tracing::info!(
        limit_mib = limits.hard / MIB,
        refuse_above_mib = limits.soft / MIB,
        available_mib = total / MIB as u64,
        available_from = source,
        "memory limiter"
    );
    let limiter = MemoryLimiter::new(
        limits,
        metrics.memory_limiter_gauges(limits.soft, limits.hard),
    );
    health.register_memory_limiter(limiter.clone());
    Ok(Some(limiter))
}

/// At least this many records found in a queue at start-up are treated as possibly
/// delivered already (see `StorageConfig::in_flight`).
const MIN_REPLAY_IN_FLIGHT: usize = 16;

/// Opens the on-disk queue of one exporter in one pipeline; what it still holds from an
/// earlier run is exported before new batches.
fn open_persistent_queue(
    storage: &std::path::Path,
    queue: &crate::component::SendingQueueConfig,
    exporter: &str,
    pipeline: &str,
    signal: Signal,
    metrics: &SelfMetrics,
) -> Result<PersistentQueue, factory::BuildError> {
    let config = StorageConfig {
        dir: queue_dir(storage, exporter, pipeline),
        fsync: queue.fsync,
        max_bytes: queue.max_bytes,
        when_full: queue.when_full,
        // The previous run's `num_consumers` is not known; a changed configuration rarely
        // lowers it below this floor.
        in_flight: queue.num_consumers.max(MIN_REPLAY_IN_FLIGHT),
    };
    let counters = QueueCounters {
        dropped_full: metrics.exporter_failed(exporter, pipeline, signal, "queue_full"),
        corrupt_records: metrics.component_event(exporter, signal, "queue_corrupt_records"),
        corrupt_items: metrics.exporter_failed(exporter, pipeline, signal, "queue_corrupt"),
        replayed_items: metrics.component_event(exporter, signal, "queue_replayed_items"),
    };
    let dir = config.dir.clone();
    let (queue, recovery) = PersistentQueue::open(signal, config, counters)
        .map_err(|e| factory::BuildError::unusable("sending_queue.storage", e))?;
    if recovery.records > 0 || recovery.corrupt_records > 0 {
        tracing::info!(exporter, pipeline, dir = %dir.display(), records = recovery.records,
            items = recovery.items, corrupt_records = recovery.corrupt_records,
            "replaying batches left in the queue storage");
    }
    Ok(queue)
}

/// One exporter's driver, as the fan-out sees it.
struct DriverInput {
    exporter: String,
    tx: mpsc::Sender<Arc<Batch>>,
}

/// Hands every batch to every exporter of the pipeline. The batch is shared: its items go
/// back to the pipeline's budget when the slowest exporter is done with it.
async fn fan_out(
    pipeline: String,
    mut input: mpsc::Receiver<Batch>,
    outputs: Vec<DriverInput>,
    metrics: Arc<SelfMetrics>,
) {
    while let Some(batch) = input.recv().await {
        let batch = Arc::new(batch);
        for out in &outputs {
            // A driver only stops when its input closes, which is after this task ends,
            // unless it panicked: then the items are counted, never silently let go. (The
            // series is created only then: a failure reason at 0 would only be noise.)
            if out.tx.send(batch.clone()).await.is_err() {
                let items = batch.item_count();
                tracing::error!(exporter = %out.exporter, pipeline = %pipeline, items,
                    "exporter task has stopped; items dropped");
                metrics
                    .exporter_failed(
                        &out.exporter,
                        &pipeline,
                        batch.data.signal(),
                        "exporter_stopped",
                    )
                    .inc_by(items as u64);
            }
        }
    }
}

impl HealthRegistry {
    /// Degraded while over the soft limit: senders are asked to retry, the design working,
    /// not a reason to restart (which would lose what is held).
    fn register_memory_limiter(&self, limiter: Arc<MemoryLimiter>) {
        self.register("memory_limiter", move || {
            let held = limiter.held();
            let MemoryLimits { soft, hard } = limiter.limits();
            let detail = format!(
                "{} MiB held; refusing above {} MiB, limit {} MiB",
                held / MIB,
                soft / MIB,
                hard / MIB
            );
            let status = if held >= soft {
                ComponentStatus::degraded(format!(
                    "over the soft limit, refusing requests: {detail}"
                ))
            } else {
                ComponentStatus::healthy(detail)
            };
            status
                .with("held_bytes", held)
                .with("soft_limit_bytes", soft)
                .with("limit_bytes", hard)
        });
    }

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
            let storage = |errors: &BTreeMap<String, String>| {
                errors
                    .iter()
                    .map(|(pipeline, e)| format!("pipeline {pipeline}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let mut status = if !s.storage_read_errors.is_empty() {
                // Nothing is delivered from the queue while it cannot be read.
                ComponentStatus::unhealthy(format!(
                    "cannot read the queue storage, retrying: {}",
                    storage(&s.storage_read_errors)
                ))
            } else if s.consecutive_failures >= crate::telemetry::health::UNHEALTHY_AFTER_FAILURES {
                ComponentStatus::unhealthy(format!(
                    "{} consecutive export failures; last: {}",
                    s.consecutive_failures,
                    s.last_error.clone().unwrap_or_default()
                ))
            } else if !s.storage_write_errors.is_empty() {
                // Senders are refused and keep their data: the design working, as with a
                // full pipeline, not a reason to restart (which would not free the disk).
                ComponentStatus::degraded(format!(
                    "cannot write to the queue storage, refusing batches: {}",
                    storage(&s.storage_write_errors)
                ))
            } else {
                ComponentStatus::healthy(detail)
            };
            status = status.with("consecutive_failures", s.consecutive_failures);
            let storage_errors: Vec<String> = [
                ("read", &s.storage_read_errors),
                ("write", &s.storage_write_errors),
            ]
            .into_iter()
            .filter(|(_, errors)| !errors.is_empty())
            .map(|(op, errors)| format!("{op}: {}", storage(errors)))
            .collect();
            if !storage_errors.is_empty() {
                status = status.with("queue_storage_error", storage_errors.join("; "));
            }
            if let Some(e) = s.last_error {
                status = status.with("last_error", e);
            }
            status
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SignalData;
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use prometheus_client::metrics::gauge::Gauge;

    #[tokio::test]
    async fn a_batch_for_a_stopped_exporter_is_counted_not_lost_silently() {
        let budget = ItemBudget::new(100, Gauge::default(), Gauge::default());
        let metrics = Arc::new(SelfMetrics::new());
        let (tx, rx) = mpsc::channel(4);
        let (alive_tx, mut alive_rx) = mpsc::channel(4);
        let (stopped_tx, stopped_rx) = mpsc::channel(4);
        drop(stopped_rx);
        let task = tokio::spawn(fan_out(
            "logs".into(),
            rx,
            vec![
                DriverInput {
                    exporter: "alive".into(),
                    tx: alive_tx,
                },
                DriverInput {
                    exporter: "stopped".into(),
                    tx: stopped_tx,
                },
            ],
            metrics.clone(),
        ));
        let data = SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        let ticket = budget.try_admit(3).unwrap();
        tx.send(Batch { data, ticket }).await.unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(alive_rx.recv().await.unwrap().data.item_count(), 3);
        let lost = metrics.exporter_failed("stopped", "logs", Signal::Logs, "exporter_stopped");
        assert_eq!(lost.get(), 3, "the stopped exporter's share is counted");
        let alive = metrics.exporter_failed("alive", "logs", Signal::Logs, "exporter_stopped");
        assert_eq!(alive.get(), 0);
    }
}
