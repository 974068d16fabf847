//! `/health`: one check per component, in the shape of the seed's HealthCheckService.
//!
//! ```json
//! {"overall_status": "healthy", "timestamp": "2026-11-27T09:35:00.123Z",
//!  "checks": {"receiver/otlp": {"status": "healthy", "detail": "grpc 127.0.0.1:4317"}, ...}}
//! ```
//!
//! `overall_status` is `unhealthy` (and the HTTP status 503) when any check is unhealthy,
//! else `degraded` when any check is degraded (for example a full queue or the memory
//! limiter pushing back on senders), else `healthy`. Degraded keeps HTTP 200: restarting
//! the collector would lose what it holds and not make room any sooner.

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use serde::Serialize;
use serde_json::{Map, Value};

/// Consecutive failed export attempts after which an exporter reports unhealthy.
pub const UNHEALTHY_AFTER_FAILURES: u64 = 5;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentStatus {
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ComponentStatus {
    pub fn healthy(detail: impl Into<String>) -> Self {
        Self::new("healthy", detail)
    }
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self::new("degraded", detail)
    }
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        Self::new("unhealthy", detail)
    }
    fn new(status: &'static str, detail: impl Into<String>) -> Self {
        ComponentStatus {
            status,
            detail: detail.into(),
            extra: Map::new(),
        }
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

type Check = Box<dyn Fn() -> ComponentStatus + Send + Sync>;

/// The registered checks, evaluated on every request.
#[derive(Default)]
pub struct HealthRegistry {
    checks: Mutex<Vec<(String, Check)>>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub overall_status: &'static str,
    pub timestamp: String,
    pub checks: std::collections::BTreeMap<String, ComponentStatus>,
}

impl HealthRegistry {
    pub fn register(
        &self,
        name: &str,
        check: impl Fn() -> ComponentStatus + Send + Sync + 'static,
    ) {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.into(), Box::new(check)));
    }

    pub fn report(&self) -> HealthReport {
        let checks: std::collections::BTreeMap<String, ComponentStatus> = self
            .checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, check)| (name.clone(), check()))
            .collect();
        let worst = |status: &str| checks.values().any(|c| c.status == status);
        let overall_status = if worst("unhealthy") {
            "unhealthy"
        } else if worst("degraded") {
            "degraded"
        } else {
            "healthy"
        };
        HealthReport {
            overall_status,
            timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            checks,
        }
    }
}

/// Which of a component's long-running tasks (a receiver's servers) have ended while the
/// collector was not stopping: a receiver whose server died takes nothing in any more,
/// whatever else about it looks fine.
#[derive(Debug, Clone, Default)]
pub struct TaskLiveness {
    ended: Arc<Mutex<Vec<String>>>,
}

impl TaskLiveness {
    /// Watches `task` (called `what` in the health detail); the returned handle ends with
    /// it, so whoever waited for `task` can wait for this instead.
    pub fn watch(
        &self,
        what: String,
        task: JoinHandle<()>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let ended = self.ended.clone();
        tokio::spawn(async move {
            let outcome = task.await;
            if stop.is_cancelled() {
                return;
            }
            let how = match outcome {
                Ok(()) => "stopped",
                Err(e) if e.is_panic() => "panicked",
                Err(_) => "was cancelled",
            };
            tracing::error!(task = %what, "{what} {how}; it takes no more data");
            ended
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{what} {how}"));
        })
    }

    /// What has ended, e.g. `["http server stopped"]`; empty while all run.
    pub fn ended(&self) -> Vec<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overall_status_is_the_worst_check() {
        let h = HealthRegistry::default();
        h.register("a", || ComponentStatus::healthy("ok"));
        assert_eq!(h.report().overall_status, "healthy");
        h.register("b", || ComponentStatus::degraded("queue full"));
        assert_eq!(h.report().overall_status, "degraded");
        h.register("c", || {
            ComponentStatus::unhealthy("down").with("consecutive_failures", 7)
        });
        let r = h.report();
        assert_eq!(r.overall_status, "unhealthy");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"]["c"]["status"], "unhealthy");
        assert_eq!(json["checks"]["c"]["consecutive_failures"], 7);
        assert_eq!(json["checks"]["b"]["detail"], "queue full");
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn a_task_that_ends_while_running_is_reported_not_one_stopped_on_purpose() {
        let live = TaskLiveness::default();
        let stop = CancellationToken::new();
        let dies = tokio::spawn(async { panic!("server failed") });
        live.watch("grpc server".into(), dies, stop.clone())
            .await
            .unwrap();
        assert_eq!(live.ended(), vec!["grpc server panicked".to_string()]);
        stop.cancel();
        let stopped = tokio::spawn(async {});
        live.watch("http server".into(), stopped, stop)
            .await
            .unwrap();
        assert_eq!(live.ended().len(), 1, "stopping on purpose is not dying");
    }
}
