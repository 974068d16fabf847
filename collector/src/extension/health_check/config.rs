//! Options of the `health_check` extension, which serves `/health` and `/metrics`.

use serde::Deserialize;

/// ```yaml
/// extensions:
///   health_check:
///     endpoint: 127.0.0.1:13133
///     path: /health
/// service:
///   extensions: [health_check]
/// ```
///
/// The same listener serves the Prometheus self-metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub endpoint: String,
    pub path: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "127.0.0.1:13133".into(),
            path: "/health".into(),
        }
    }
}

impl crate::component::factory::Registered for HealthCheckConfig {
    const TYPE: &'static str = "health_check";
}
