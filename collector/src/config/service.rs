//! The `service` section: which components run, wired into which pipelines.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use crate::telemetry::logging::LogEncoding;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Extensions to start, by id (e.g. `health_check`).
    pub extensions: Vec<String>,
    /// Pipelines by name: `traces`, `metrics`, `logs`, or `traces/<name>` and so on.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    pub telemetry: TelemetryConfig,
    /// How long SIGTERM/SIGINT may take to drain the pipelines and flush the exporters;
    /// whatever is still held after this is reported as not flushed.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// The process-wide memory budget; off when absent (the shipped configurations set it).
    pub memory_limiter: Option<super::memory_limiter::MemoryLimiterConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            extensions: Vec::new(),
            pipelines: BTreeMap::new(),
            telemetry: TelemetryConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
            memory_limiter: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
    /// Items (spans, data points, log records) this pipeline may hold between accepting
    /// them and the last exporter finishing with them. When it is full, receivers answer
    /// gRPC `UNAVAILABLE` / HTTP 503 with `Retry-After`, which OTLP clients retry: memory
    /// stays bounded and nothing acknowledged is dropped. A span held costs about 1.3 KB
    /// decoded, so the default's 50,000 hold about 65 MB when full: under overload the
    /// collector stays near 100 MB instead of growing with the senders.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_queue_size() -> usize {
    50_000
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub logs: LogsConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `error`, `warn`, `info`, `debug`, `trace` or a full `RUST_LOG`-style filter.
    /// `--log-level` and `RUST_LOG` take precedence.
    pub level: String,
    pub encoding: LogEncoding,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: "info".into(),
            encoding: LogEncoding::Text,
        }
    }
}
