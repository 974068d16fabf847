//! The `file` exporter: OTLP/JSON lines, one export request per line, rotated by size.
//!
//! Serialization happens on the async task; the write itself runs on the blocking pool so
//! a slow disk never stalls the receivers.

pub(crate) mod config;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use self::config::FileExporterConfig;
use crate::component::validate::Invalid;
use crate::component::{ExportError, ExportReport, Exporter};
use crate::model::{Signal, SignalData};
use crate::output::otlp_json::to_otlp_json;
use crate::output::rotate::RotatingFile;

pub struct FileExporter {
    file: Arc<Mutex<RotatingFile>>,
    path: std::path::PathBuf,
}

impl FileExporter {
    pub fn new(config: &FileExporterConfig) -> FileExporter {
        let rotation = config
            .rotation
            .as_ref()
            .map(|r| (r.max_megabytes.saturating_mul(1024 * 1024), r.max_backups));
        FileExporter {
            file: Arc::new(Mutex::new(RotatingFile::new(config.path.clone(), rotation))),
            path: config.path.clone(),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[async_trait]
impl Exporter for FileExporter {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        let mut line =
            to_otlp_json(batch).map_err(|e| ExportError::permanent("serialize", e.to_string()))?;
        line.push(b'\n');
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_line(&line)
        })
        .await
        .map_err(|e| ExportError::retryable("io", e.to_string()))?
        .map_err(|e| ExportError::retryable("io", format!("{}: {e}", self.path.display())))?;
        Ok(ExportReport::delivered())
    }

    async fn flush(&self) -> Result<(), ExportError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.lock().unwrap_or_else(|p| p.into_inner()).sync())
            .await
            .map_err(|e| ExportError::retryable("io", e.to_string()))?
            .map_err(|e| ExportError::retryable("io", e.to_string()))
    }

    fn health_detail(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }
}

impl crate::component::factory::ExporterFactory for FileExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
        FileExporterConfig::validate(self)
    }

    fn delivery(
        &self,
    ) -> (
        &crate::component::RetryConfig,
        &crate::component::SendingQueueConfig,
    ) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    fn output_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    fn build(
        &self,
        _ctx: &crate::component::factory::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, crate::component::factory::BuildError>
    {
        Ok(std::sync::Arc::new(FileExporter::new(self)))
    }
}
