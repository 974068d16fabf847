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

use crate::component::auth::Authenticators;
use crate::component::factory::{ExtensionContext, LambdaRuntime, ReceiverContext};
use crate::component::flush::{self, FlushControl, Unflushed};
use crate::config::Config;
use crate::model::{ItemBudget, Signal};
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
    telemetry_tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Builds the pipelines and starts every receiver and the configured extensions, each
    /// through its factory. `lambda` is set when running as a Lambda extension (its
    /// Telemetry API receiver needs it).
    pub async fn start(config: &Config, lambda: Option<&LambdaRuntime>) -> anyhow::Result<Service> {
        let metrics = Arc::new(SelfMetrics::new());
        let health = Arc::new(HealthRegistry::default());
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        let mut auth = Authenticators::default();
        for id in &config.service.extensions {
            let offered = config.extensions.0[id]
                .factory()
                .authenticator(id)
                .await
                .map_err(|e| anyhow::anyhow!("extension `{id}`: {e}"))?;
            if let Some(a) = offered {
                auth.insert(id, a);
            }
        }
        let Pipelines {
            mut consumers,
            budgets,
            tasks,
            flush,
        } = build::build(config, &metrics, &health, &auth)?;

        let receivers_stop = CancellationToken::new();
        let mut receiver_tasks = Vec::new();
        for (id, rc) in &config.receivers.0 {
            let factory = rc.factory();
            let ids: Vec<_> = consumers.keys().filter(|(r, _)| r == id).cloned().collect();
            let mine: BTreeMap<Signal, _> = ids
                .into_iter()
                .filter_map(|key| consumers.remove(&key).map(|c| (key.1, c)))
                .collect();
            if mine.is_empty() && !factory.runs_without_pipelines() {
                tracing::warn!(receiver = %id, "receiver is not used by any pipeline; not started");
                continue;
            }
            let started = factory
                .start(ReceiverContext {
                    id,
                    consumers: mine,
                    metrics: metrics.clone(),
                    health: &health,
                    stop: receivers_stop.clone(),
                    lambda,
                    auth: &auth,
                })
                .await
                .map_err(|e| anyhow::anyhow!("receiver `{id}`: {e}"))?;
            receiver_tasks.extend(started);
        }
        // Every receiver holds its own consumers; none may stay here, or the pipelines
        // could not close at shutdown.
        drop(consumers);

        let telemetry_stop = CancellationToken::new();
        let mut telemetry_tasks = Vec::new();
        for id in &config.service.extensions {
            let task = config.extensions.0[id]
                .factory()
                .start(ExtensionContext {
                    id,
                    health: health.clone(),
                    metrics: metrics.clone(),
                    stop: telemetry_stop.clone(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("extension `{id}`: {e}"))?;
            telemetry_tasks.push(task);
        }
        Ok(Service {
            metrics,
            budgets,
            tasks,
            flush,
            receivers_stop,
            receiver_tasks,
            telemetry_stop,
            telemetry_tasks,
        })
    }

    pub fn metrics(&self) -> &Arc<SelfMetrics> {
        &self.metrics
    }

    /// Sends everything the pipelines hold and waits until the exporters are done with it,
    /// or `deadline`; what is left stays queued (see [`crate::component::flush`]).
    pub async fn flush(&self, deadline: Instant) -> Result<(), Unflushed> {
        flush::flush_pipelines(&self.flush, &self.budgets, deadline).await
    }

    /// Stops the receivers, drains the pipelines until `deadline`, and counts what could
    /// not be flushed by then as dropped.
    pub async fn shutdown(mut self, deadline: Instant) {
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
        for t in std::mem::take(&mut self.telemetry_tasks) {
            let _ = t.await;
        }
    }
}

/// Runs the collector until `stop` is cancelled, then shuts down gracefully.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let service = Service::start(&config, None).await?;
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

    use super::*;
    use crate::config::{ConfigSource, load_sources};

    /// A port that was free a moment ago, for a receiver the test must reach.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The whole flush path: OTLP/HTTP receiver → batch processor holding data for an
    /// hour → file exporter, flushed on request, with the service still running afterwards.
    #[tokio::test]
    async fn flush_sends_what_the_batch_processor_holds_and_waits_for_the_exporter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.jsonl");
        let port = free_port();
        let yaml = format!(
            "receivers:\n  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{port} }} }} }}\n\
             processors:\n  batch: {{ timeout: 1h }}\n\
             exporters:\n  file: {{ path: {} }}\n\
             service:\n  pipelines:\n    traces: {{ receivers: [otlp], processors: [batch], exporters: [file] }}\n",
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
        let service = Service::start(&config, None).await.unwrap();
        let lines = || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let client = reqwest::Client::new();
        for round in 1..=3 {
            let span = serde_json::json!({"traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174", "name": format!("op-{round}"),
                "startTimeUnixNano": "1", "endTimeUnixNano": "2"});
            let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]});
            let answer = client
                .post(format!("http://127.0.0.1:{port}/v1/traces"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{}", answer.status());
            service
                .flush(Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(lines(), round, "flushed and written before flush returned");
        }
        service
            .shutdown(Instant::now() + Duration::from_secs(5))
            .await;
    }
}
