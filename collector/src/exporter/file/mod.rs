//! The `file` exporter: OTLP/JSON lines, one export request per line, rotated by size.
//!
//! Serialization happens on the async task; the write itself runs on the blocking pool so
//! a slow disk never stalls the receivers.

pub mod config;
pub(crate) mod rotate;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use aurastream_proto::otlp::logs::ResourceLogs;
use aurastream_proto::otlp::metrics::ResourceMetrics;
use aurastream_proto::otlp::trace::ResourceSpans;

use self::config::FileExporterConfig;
use self::rotate::RotatingFile;
use super::{ExportError, ExportReport, Exporter};
use crate::pipeline::signal::{Signal, SignalData};

pub struct FileExporter {
    file: Arc<Mutex<RotatingFile>>,
    path: std::path::PathBuf,
}

/// One line: the OTLP/JSON shape of an export request, serialized without copying.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Line<'a> {
    ResourceSpans(&'a [ResourceSpans]),
    ResourceMetrics(&'a [ResourceMetrics]),
    ResourceLogs(&'a [ResourceLogs]),
}

/// Serializes a batch as one OTLP/JSON export request (`{"resourceSpans":[...]}` etc.).
pub fn to_otlp_json(batch: &SignalData) -> Result<Vec<u8>, serde_json::Error> {
    let line = match batch {
        SignalData::Traces(r) => Line::ResourceSpans(r),
        SignalData::Metrics(r) => Line::ResourceMetrics(r),
        SignalData::Logs(r) => Line::ResourceLogs(r),
    };
    serde_json::to_vec(&line)
}

impl FileExporter {
    pub fn new(config: &FileExporterConfig) -> FileExporter {
        let rotation = config
            .rotation
            .as_ref()
            .map(|r| (r.max_megabytes * 1024 * 1024, r.max_backups));
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
        let mut line = to_otlp_json(batch)
            .map_err(|e| ExportError::permanent("serialize", e.to_string()))?;
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
