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

#[async_trait::async_trait]
impl crate::component::factory::ExtensionFactory for HealthCheckConfig {
    async fn start(
        &self,
        ctx: crate::component::factory::ExtensionContext<'_>,
    ) -> Result<tokio::task::JoinHandle<()>, crate::component::factory::BuildError> {
        let (addr, task) = super::server::start(self, ctx.health, ctx.metrics, ctx.stop)
            .await
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", self.endpoint))
            })?;
        tracing::info!(extension = %ctx.id, %addr,
            "health at http://{addr}{} and metrics at http://{addr}/metrics", self.path);
        Ok(task)
    }
}
