//! The `health_check` extension: `/health` and the Prometheus `/metrics` on one listener.

pub mod config;
pub mod server;

use self::config::HealthCheckConfig;

#[async_trait::async_trait]
impl crate::component::factory::ExtensionFactory for HealthCheckConfig {
    async fn start(
        &self,
        ctx: crate::component::factory::ExtensionContext<'_>,
    ) -> Result<tokio::task::JoinHandle<()>, crate::component::factory::BuildError> {
        let (addr, task) = server::start(self, ctx.health, ctx.metrics, ctx.stop)
            .await
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", self.endpoint))
            })?;
        tracing::info!(extension = %ctx.id, %addr,
            "health at http://{addr}{} and metrics at http://{addr}/metrics", self.path);
        Ok(task)
    }
}
