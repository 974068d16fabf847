//! Options of the `file` exporter.

use std::path::PathBuf;

use serde::Deserialize;

use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};

/// ```yaml
/// exporters:
///   file:
///     path: ./aurastream-data/traces.jsonl
///     rotation:
///       max_megabytes: 100   # start a new file past this size
///       max_backups: 10      # rotated files to keep (0 = keep all)
/// ```
///
/// Each line is one OTLP/JSON export request (`{"resourceSpans": [...]}` and so on), the
/// format the OpenTelemetry Collector's file exporter and `otlpjsonfile` receiver use.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileExporterConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub rotation: Option<RotationConfig>,
    #[serde(default)]
    pub format: FileFormat,
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
    #[serde(default)]
    pub sending_queue: SendingQueueConfig,
}

impl Default for FileExporterConfig {
    fn default() -> Self {
        FileExporterConfig {
            path: PathBuf::new(),
            rotation: None,
            format: FileFormat::Json,
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

/// Only OTLP/JSON lines are written; the option exists so a Collector config that says
/// `format: json` validates, and one that says `proto` is told why not.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    pub max_megabytes: u64,
    pub max_backups: usize,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: 100,
            max_backups: 100,
        }
    }
}

impl FileExporterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err("path is required".into());
        }
        if let Some(r) = &self.rotation {
            if r.max_megabytes == 0 {
                return Err("rotation.max_megabytes must be at least 1".into());
            }
            if r.max_megabytes.checked_mul(1024 * 1024).is_none() {
                return Err(Invalid::TooLarge {
                    option: "rotation.max_megabytes",
                    value: r.max_megabytes,
                });
            }
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for FileExporterConfig {
    const TYPE: &'static str = "file";
}
