//! The `debug` exporter: telemetry printed to stdout for a human to read.
//!
//! Like the OpenTelemetry Collector's debug exporter: `basic` prints a count per batch,
//! `normal` one line per item, `detailed` the whole OTLP/JSON request, pretty-printed.
//! Writing happens on the blocking pool: a stdout nobody reads must slow this exporter down
//! (and so push back on senders), not stall the runtime.

pub(crate) mod config;
mod format;

use std::io::Write;

use async_trait::async_trait;

use self::config::{DebugExporterConfig, Verbosity};
use crate::component::validate::Invalid;
use crate::component::{ExportError, ExportReport, Exporter};
use crate::model::{Signal, SignalData};

pub struct DebugExporter {
    verbosity: Verbosity,
}

impl DebugExporter {
    pub fn new(config: &DebugExporterConfig) -> DebugExporter {
        DebugExporter {
            verbosity: config.verbosity,
        }
    }
}

#[async_trait]
impl Exporter for DebugExporter {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        let text = match self.verbosity {
            Verbosity::Basic => format::summary(batch),
            Verbosity::Normal => format::lines(batch),
            Verbosity::Detailed => format::detailed(batch),
        };
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        })
        .await
        .map_err(|e| ExportError::retryable("io", e.to_string()))?
        .map_err(|e| ExportError::retryable("io", format!("stdout: {e}")))?;
        Ok(ExportReport::delivered())
    }
}

impl crate::component::factory::ExporterFactory for DebugExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
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
        Ok(std::sync::Arc::new(DebugExporter::new(self)))
    }
}
