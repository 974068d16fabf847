//! The collector's life: start every component, run until told to stop, then drain.
//!
//! Shutdown order matters for "nothing acknowledged is lost": receivers stop accepting
//! first (in-flight requests finish), which closes the pipelines' inputs; processors flush,
//! exporters drain, and only then does the process exit. If that takes longer than
//! `service.shutdown_timeout`, what is still held is reported (and counted) as not flushed.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ExtensionConfig, ReceiverConfig};
use crate::pipeline::build::{self, Pipelines};
use crate::pipeline::signal::Signal;
use crate::receiver;
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;
use crate::telemetry::server;

/// Runs the collector until `stop` is cancelled, then shuts down gracefully.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(SelfMetrics::new());
    let health = Arc::new(HealthRegistry::default());
    let Pipelines {
        consumers,
        budgets,
        mut tasks,
    } = build::build(&config, &metrics, &health)?;

    let receivers_stop = CancellationToken::new();
    let mut receiver_tasks = Vec::new();
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
    tracing::info!("collector ready");

    stop.cancelled().await;
    tracing::info!(timeout = ?config.service.shutdown_timeout, "shutting down: no longer accepting data, draining pipelines");
    let deadline = tokio::time::Instant::now() + config.service.shutdown_timeout;
    receivers_stop.cancel();
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
            for (name, budget) in &budgets {
                let held = budget.held();
                if held > 0 {
                    metrics
                        .pipeline_dropped(name, "service", "shutdown_timeout")
                        .inc_by(held as u64);
                    tracing::error!(pipeline = %name, items = held,
                        "shutdown timeout reached: these items were not flushed");
                }
            }
            tasks.abort_all();
        }
    }
    telemetry_stop.cancel();
    if let Some(t) = telemetry_task {
        let _ = t.await;
    }
    Ok(())
}
