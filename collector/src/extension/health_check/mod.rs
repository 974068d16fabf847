//! The `health_check` extension: `/health` and the Prometheus `/metrics` on one listener.

pub(crate) mod config;
pub(crate) mod server;

use self::config::HealthCheckConfig;
use crate::component::factory::BuildError;
use crate::component::validate::Invalid;

#[async_trait::async_trait]
impl crate::component::factory::ExtensionFactory for HealthCheckConfig {
    fn validate(&self) -> Result<(), Invalid> {
        match &self.tls {
            Some(tls) => tls.validate(),
            None => Ok(()),
        }
    }

    async fn start(
        &self,
        ctx: crate::component::factory::ExtensionContext<'_>,
    ) -> Result<tokio::task::JoinHandle<()>, BuildError> {
        let (addr, task) = server::start(self, ctx.health, ctx.metrics, ctx.stop).await?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(extension = %ctx.id, %addr,
            "health at {scheme}://{addr}{} and metrics at {scheme}://{addr}/metrics", self.path);
        Ok(task)
    }
}
