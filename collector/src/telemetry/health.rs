//! `/health`: one check per component, in the shape of the seed's HealthCheckService.
//!
//! ```json
//! {"overall_status": "healthy", "timestamp": "2026-11-27T09:35:00.123Z",
//!  "checks": {"receiver/otlp": {"status": "healthy", "detail": "grpc 127.0.0.1:4317"}, ...}}
//! ```
//!
//! `overall_status` is `unhealthy` (and the HTTP status 503) when any check is unhealthy.
//! A `degraded` check (for example a full queue that is pushing back on senders) is shown
//! but does not make the collector unhealthy: restarting it would lose what it holds.

use std::sync::Mutex;

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
        let healthy = checks.values().all(|c| c.status != "unhealthy");
        HealthReport {
            overall_status: if healthy { "healthy" } else { "unhealthy" },
            timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unhealthy_check_makes_the_whole_unhealthy_degraded_does_not() {
        let h = HealthRegistry::default();
        h.register("a", || ComponentStatus::healthy("ok"));
        h.register("b", || ComponentStatus::degraded("queue full"));
        assert_eq!(h.report().overall_status, "healthy");
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
}
