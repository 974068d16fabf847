//! The collector's own logs, through `tracing`: text for people, JSON for log pipelines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use serde::Deserialize;

/// Installs the global subscriber. The level comes from `--log-level`, else `RUST_LOG`,
/// else the config's `service.telemetry.logs.level`. Logs go to stderr so that stdout stays
/// free for exported data (`debug` exporter, EMF to stdout in Lambda).
pub fn init(flag_level: Option<&str>, config_level: &str, encoding: LogEncoding) {
    let filter = match flag_level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config_level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match encoding {
        LogEncoding::Text => builder.try_init(),
        LogEncoding::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `service.telemetry.logs.encoding`: how the collector writes its own log.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Text,
    Json,
}
