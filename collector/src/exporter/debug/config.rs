//! Options of the `debug` exporter.

use serde::Deserialize;

use crate::component::{RetryConfig, SendingQueueConfig};

/// ```yaml
/// exporters:
///   debug:
///     verbosity: normal   # basic | normal | detailed
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    pub verbosity: Verbosity,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

/// How much the debug exporter prints per batch.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One line per batch: the item count.
    #[default]
    Basic,
    /// One line per span, data point or log record.
    Normal,
    /// Every field of every item.
    Detailed,
}

impl crate::component::factory::Registered for DebugExporterConfig {
    const TYPE: &'static str = "debug";
}

impl crate::component::factory::ExporterFactory for DebugExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    fn delivery(
        &self,
    ) -> (
        &crate::component::RetryConfig,
        &crate::component::SendingQueueConfig,
    ) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    fn build(
        &self,
        _ctx: &crate::component::factory::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, crate::component::factory::BuildError>
    {
        Ok(std::sync::Arc::new(super::DebugExporter::new(self)))
    }
}
