//! The collector's life: start every component, run until told to stop, then drain.
//!
//! Shutdown order matters for "nothing acknowledged is lost": receivers stop accepting
//! first (in-flight requests finish), which closes the pipelines' inputs; processors flush,
//! exporters drain, and only then does the process exit. If that takes longer than
//! `service.shutdown_timeout`, what is still held is reported (and counted) as not flushed.
//!
//! [`Service`] is that life in steps, so the Lambda extension can drive it by lifecycle
//! events (start at init, [`Service::flush`] after every invocation, shut down on
//! SHUTDOWN) while [`run`] drives it by signals.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::component::Consumer;
use crate::component::flush::{self, FlushControl, Unflushed};
use crate::config::{Config, ExtensionConfig, ReceiverConfig};
use crate::extension::health_check::server;
use crate::model::ItemBudget;
use crate::model::Signal;
use crate::receiver;
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;
use crate::topology::build::{self, Pipelines};

/// A running collector: pipelines, receivers and the health/metrics listener.
pub struct Service {
    metrics: Arc<SelfMetrics>,
    budgets: Vec<(String, ItemBudget)>,
    tasks: JoinSet<()>,
    flush: FlushControl,
    receivers_stop: CancellationToken,
    receiver_tasks: Vec<JoinHandle<()>>,
    telemetry_stop: CancellationToken,
    telemetry_task: Option<JoinHandle<()>>,
    /// Consumers of receivers that this module does not start itself (the `lambda`
    /// receiver, started by the extension); taken with [`Service::take_consumers`].
    unstarted: BTreeMap<(String, Signal), Consumer>,
}

impl Service {
    /// Builds the pipelines and starts the OTLP receivers and the configured extensions.
    pub async fn start(config: &Config) -> anyhow::Result<Service> {
        let metrics = Arc::new(SelfMetrics::new());
        let health = Arc::new(HealthRegistry::default());
        let Pipelines {
            consumers,
            budgets,
            tasks,
            flush,
        } = build::build(config, &metrics, &health)?;

        let receivers_stop = CancellationToken::new();
        let mut receiver_tasks = Vec::new();
        let mut unstarted = BTreeMap::new();
        for (id, rc) in &config.receivers.0 {
            let mine: BTreeMap<Signal, _> = consumers
                .iter()
                .filter(|((r, _), _)| r == id)
                .map(|((_, s), c)| (*s, c.clone()))
                .collect();
            if mine.is_empty() {
                tracing::warn!(receiver = %id, "receiver is not used by any pipeline; not started");
                continue;
            }
            match rc {
                ReceiverConfig::Otlp(c) => receiver_tasks.extend(
                    receiver::otlp::start(
                        id,
                        c,
                        mine,
                        metrics.clone(),
                        &health,
                        receivers_stop.clone(),
                    )
                    .await?,
                ),
                ReceiverConfig::AwsXray(c) => receiver_tasks.extend(
                    receiver::xray_udp::start(
                        id,
                        c,
                        mine,
                        metrics.clone(),
                        &health,
                        receivers_stop.clone(),
                    )
                    .await?,
                ),
                ReceiverConfig::Lambda(_) => {
                    unstarted.extend(mine.into_iter().map(|(s, c)| ((id.clone(), s), c)));
                }
            }
        }
        // The receivers hold their own clones; ours must go so the pipelines can close.
        drop(consumers);

        let telemetry_stop = CancellationToken::new();
        let mut telemetry_task = None;
        for id in &config.service.extensions {
            let ExtensionConfig::HealthCheck(hc) = &config.extensions.0[id];
            let (addr, task) =
                server::start(hc, health.clone(), metrics.clone(), telemetry_stop.clone())
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("extension `{id}` cannot listen on {}: {e}", hc.endpoint)
                    })?;
            tracing::info!(extension = %id, %addr, "health at http://{addr}{} and metrics at http://{addr}/metrics", hc.path);
            telemetry_task = Some(task);
        }
        Ok(Service {
            metrics,
            budgets,
            tasks,
            flush,
            receivers_stop,
            receiver_tasks,
            telemetry_stop,
            telemetry_task,
            unstarted,
        })
    }

    pub fn metrics(&self) -> &Arc<SelfMetrics> {
        &self.metrics
    }

    /// The consumers, by signal, of a receiver [`Service::start`] left to the caller.
    pub fn take_consumers(&mut self, receiver: &str) -> BTreeMap<Signal, Consumer> {
        let ids: Vec<_> = self
            .unstarted
            .keys()
            .filter(|(r, _)| r == receiver)
            .cloned()
            .collect();
        ids.into_iter()
            .filter_map(|key| self.unstarted.remove(&key).map(|c| (key.1, c)))
            .collect()
    }

    /// Cancelled when receivers must stop accepting; for receivers started by the caller.
    pub fn receivers_stop(&self) -> CancellationToken {
        self.receivers_stop.clone()
    }

    /// Has shutdown wait for a receiver the caller started, before draining the pipelines.
    pub fn add_receiver_task(&mut self, task: JoinHandle<()>) {
        self.receiver_tasks.push(task);
    }

    /// Sends everything the pipelines hold and waits until the exporters are done with it,
    /// or `deadline`; what is left stays queued (see [`crate::component::flush`]).
    pub async fn flush(&self, deadline: Instant) -> Result<(), Unflushed> {
        flush::flush_pipelines(&self.flush, &self.budgets, deadline).await
    }

    /// Stops the receivers, drains the pipelines until `deadline`, and counts what could
    /// not be flushed by then as dropped.
    pub async fn shutdown(mut self, deadline: Instant) {
        // Receivers nobody started must not keep the pipelines open.
        self.unstarted.clear();
        self.receivers_stop.cancel();
        let receiver_tasks = std::mem::take(&mut self.receiver_tasks);
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout_at(deadline, async {
            for t in receiver_tasks {
                let _ = t.await;
            }
            while tasks.join_next().await.is_some() {}
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("all pipelines drained and exporters flushed"),
            Err(_) => {
                for (name, budget) in &self.budgets {
                    let held = budget.held();
                    if held > 0 {
                        self.metrics
                            .pipeline_dropped(name, "service", "shutdown_timeout")
                            .inc_by(held as u64);
                        tracing::error!(pipeline = %name, items = held,
                            "shutdown timeout reached: these items were not flushed");
                    }
                }
                self.tasks.abort_all();
            }
        }
        self.telemetry_stop.cancel();
        if let Some(t) = self.telemetry_task.take() {
            let _ = t.await;
        }
    }
}

/// Runs the collector until `stop` is cancelled, then shuts down gracefully.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let mut service = Service::start(&config).await?;
    for (id, rc) in &config.receivers.0 {
        if let ReceiverConfig::Lambda(_) = rc {
            tracing::warn!(receiver = %id,
                "the lambda receiver runs only in Lambda extension mode (AWS_LAMBDA_RUNTIME_API \
                 set, or --lambda-extension); not started");
            drop(service.take_consumers(id));
        }
    }
    tracing::info!("collector ready");

    stop.cancelled().await;
    tracing::info!(timeout = ?config.service.shutdown_timeout, "shutting down: no longer accepting data, draining pipelines");
    service
        .shutdown(Instant::now() + config.service.shutdown_timeout)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::config::{ConfigSource, load_sources};
    use crate::model::SignalData;

    fn spans(n: usize) -> SignalData {
        SignalData::Traces(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    /// The whole flush path: consumer → batch processor holding data for an hour →
    /// file exporter, flushed on request, with the service still running afterwards.
    #[tokio::test]
    async fn flush_sends_what_the_batch_processor_holds_and_waits_for_the_exporter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.jsonl");
        let yaml = format!(
            "receivers:\n  lambda:\n  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:0 }} }} }}\n\
             processors:\n  batch: {{ timeout: 1h }}\n\
             exporters:\n  file: {{ path: {} }}\n\
             service:\n  pipelines:\n    traces: {{ receivers: [otlp, lambda], processors: [batch], exporters: [file] }}\n",
            path.display()
        );
        let config = load_sources(
            &[ConfigSource {
                name: "test".into(),
                text: yaml,
            }],
            |_| None,
        )
        .unwrap();
        let mut service = Service::start(&config).await.unwrap();
        let consumer = service
            .take_consumers("lambda")
            .remove(&Signal::Traces)
            .unwrap();
        let lines = || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .count()
        };
        for round in 1..=3 {
            consumer.try_consume(spans(5)).unwrap();
            service
                .flush(Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(lines(), round, "flushed and written before flush returned");
        }
        drop(consumer);
        service
            .shutdown(Instant::now() + Duration::from_secs(5))
            .await;
    }
}
