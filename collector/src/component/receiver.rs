//! What every receiver shares: reporting its server tasks on `/health`.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry::health::{ComponentStatus, HealthRegistry, TaskLiveness};

/// Watches receiver `id`'s server tasks (each named, e.g. `udp server`) and registers it
/// on `/health`: healthy with `detail` (what it serves) while they all run, unhealthy,
/// naming the ones that ended, once one stops or panics without `stop` being cancelled (a
/// receiver whose server died takes nothing in any more). Returns handles that end with
/// the tasks, for whoever waits for them.
pub fn watch_servers(
    id: &str,
    health: &HealthRegistry,
    detail: String,
    tasks: Vec<(&str, JoinHandle<()>)>,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let liveness = TaskLiveness::default();
    let watched = tasks
        .into_iter()
        .map(|(what, task)| liveness.watch(what.to_string(), task, stop.clone()))
        .collect();
    health.register(&format!("receiver/{id}"), move || {
        let ended = liveness.ended();
        if ended.is_empty() {
            ComponentStatus::healthy(detail.clone())
        } else {
            ComponentStatus::unhealthy(format!("{}; serving {detail}", ended.join(", ")))
        }
    });
    watched
}
