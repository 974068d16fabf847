//! The factory traits: how the topology and the service create a component from its
//! options without knowing its type.
//!
//! Each component's `config.rs` implements [`Registered`] (its type name in YAML) and one of
//! the factory traits on its options struct. `config::components` lists every options
//! struct once; that list generates the typed config enums, the "this build knows" lists
//! and the dispatch to these traits, so adding a component touches its own folder and one
//! line there. Nothing else names a component type.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::{Authenticator, Authenticators};
use super::delivery::{RetryConfig, SendingQueueConfig};
use super::flush::FlushControl;
use super::validate::Invalid;
use super::{Consumer, Exporter, Processor};
use crate::model::Signal;
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

/// A component type's name, as written in component ids (`otlp`, `awsxray/gateway`).
pub trait Registered {
    const TYPE: &'static str;
}

/// Why a component could not be built or started. The id of the component is added by
/// the caller.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The options cannot be used (a rule set that does not compile, a second `lambda`
    /// receiver).
    #[error(transparent)]
    Options(#[from] Invalid),
    /// A block of options names files or settings that cannot be used (a `tls` block's
    /// certificate, key or versions); `option` is where it sits, `source` the typed cause
    /// from the layer that found it (e.g. `net::tls_error::TlsError`).
    #[error("{option}: {source}")]
    Unusable {
        option: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A listener could not bind, a file could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl BuildError {
    /// The options at `option` cannot be used, for the typed reason `source`.
    pub fn unusable(
        option: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BuildError {
        BuildError::Unusable {
            option: option.into(),
            source: Box::new(source),
        }
    }
}

/// What a receiver is started with.
pub struct ReceiverContext<'a> {
    pub id: &'a str,
    /// Per signal, the pipelines' entrance; only signals some pipeline lists the receiver
    /// for are present, and the map may be empty (Lambda's receiver runs regardless).
    pub consumers: BTreeMap<Signal, Consumer>,
    pub metrics: Arc<SelfMetrics>,
    pub health: &'a HealthRegistry,
    /// Cancelled when receivers must stop accepting (shutdown).
    pub stop: CancellationToken,
    /// Set when the collector runs as a Lambda extension.
    pub lambda: Option<&'a LambdaRuntime>,
    /// For a receiver's `auth: { authenticator: ID }`.
    pub auth: &'a Authenticators,
}

/// What the Lambda extension offers the receivers it starts: where to report that an
/// invocation has ended, and where the Telemetry API listener says it is listening, so
/// the extension can subscribe to it.
#[derive(Debug)]
pub struct LambdaRuntime {
    /// Request ids of ended invocations (`platform.runtimeDone`).
    pub runtime_done: mpsc::UnboundedSender<String>,
    /// Set once by the receiver that serves the Telemetry API.
    pub telemetry_listener: OnceLock<TelemetryListener>,
}

/// A listener for the Lambda Telemetry API, as the subscription must describe it.
#[derive(Debug, Clone)]
pub struct TelemetryListener {
    pub addr: SocketAddr,
    /// Host name Lambda reaches the listener by (`sandbox.localdomain`).
    pub destination_host: String,
    pub max_items: u32,
    pub max_bytes: u32,
    pub timeout_ms: u32,
    /// Whether the function's own log lines are wanted (a logs pipeline lists the receiver).
    pub function_logs: bool,
    /// How long the extension flushes after each invocation before asking for the next.
    pub flush_timeout: std::time::Duration,
    /// When the extension exports (the `lambda` receiver's `flush`).
    pub flush: LambdaFlush,
    /// How often the extension exports in the background (`flush_interval`).
    pub flush_interval: std::time::Duration,
}

/// When the Lambda extension exports what the pipelines hold; the rules are in
/// `lambda_extension::cadence`. Declared here because the `lambda` receiver parses it and
/// the extension, a layer above, acts on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LambdaFlush {
    /// After every invocation, before asking for the next event (billed time).
    EndOfInvocation,
    /// In the background while later invocations run, and at SHUTDOWN.
    Periodic,
    /// End of invocation while invocations are rare, periodic once they come often.
    #[default]
    Adaptive,
}

#[async_trait]
pub trait ReceiverFactory: Send + Sync {
    /// The signals this receiver can produce.
    fn signals(&self) -> &'static [Signal];

    /// Checks the options on their own; the message is shown after the option's path.
    fn validate(&self) -> Result<(), Invalid>;

    /// At most one receiver of this type per collector; the reason, to show otherwise.
    fn one_per_collector(&self) -> Option<&'static str> {
        None
    }

    /// Started even when no pipeline lists it (Lambda's Telemetry API receiver: its
    /// end-of-invocation notices drive the extension whatever becomes of its data).
    fn runs_without_pipelines(&self) -> bool {
        false
    }

    /// Binds the listeners (failing start-up when a port is taken) and serves until
    /// `ctx.stop`; shutdown waits for the returned tasks before draining the pipelines.
    async fn start(&self, ctx: ReceiverContext<'_>) -> Result<Vec<JoinHandle<()>>, BuildError>;

    /// `(option path, extension id)` of every `auth.authenticator` it names, checked
    /// against `service.extensions` by config validation.
    fn authenticators(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Listeners reachable from the network with neither TLS nor authentication, as
    /// warnings for `validate` and start-up.
    fn exposure_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a processor is built with.
pub struct ProcessorContext<'a> {
    pub id: &'a str,
    pub pipeline: &'a str,
    pub metrics: &'a Arc<SelfMetrics>,
    /// Flush requests (Lambda's end of invocation) for processors that hold data.
    pub flush: &'a FlushControl,
}

pub trait ProcessorFactory: Send + Sync {
    /// The signals this processor can work on.
    fn signals(&self) -> &'static [Signal];

    fn validate(&self) -> Result<(), Invalid>;

    /// One instance per pipeline that lists the processor.
    fn build(&self, ctx: &ProcessorContext<'_>) -> Result<Box<dyn Processor>, BuildError>;
}

/// What an exporter is built with.
pub struct ExporterContext<'a> {
    pub id: &'a str,
    pub metrics: &'a Arc<SelfMetrics>,
    /// For an exporter's `auth: { authenticator: ID }`.
    pub auth: &'a Authenticators,
}

pub trait ExporterFactory: Send + Sync {
    /// The signals this exporter can take.
    fn signals(&self) -> &'static [Signal];

    fn validate(&self) -> Result<(), Invalid>;

    /// `retry_on_failure` and `sending_queue`: carried out by the topology's driver.
    fn delivery(&self) -> (&RetryConfig, &SendingQueueConfig);

    /// The file this exporter writes to, when it writes to one (for the start-up banner).
    fn output_file(&self) -> Option<&Path> {
        None
    }

    /// AWS regions whose X-Ray must have Transaction Search on for this exporter to work
    /// (it sends OTLP traces there), for `validate --check-aws`.
    fn transaction_search_regions(&self) -> Vec<String> {
        Vec::new()
    }

    /// One instance per exporter id, shared by every pipeline that lists it.
    fn build(&self, ctx: &ExporterContext<'_>) -> Result<Arc<dyn Exporter>, BuildError>;

    /// `(option path, extension id)` of every `auth.authenticator` it names.
    fn authenticators(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What an extension is started with.
pub struct ExtensionContext<'a> {
    pub id: &'a str,
    pub health: Arc<HealthRegistry>,
    pub metrics: Arc<SelfMetrics>,
    pub stop: CancellationToken,
}

#[async_trait]
pub trait ExtensionFactory: Send + Sync {
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// What this extension offers receivers and exporters that name it in their `auth`
    /// block; built before the pipelines. Most extensions offer none.
    async fn authenticator(&self, _id: &str) -> Result<Option<Authenticator>, BuildError> {
        Ok(None)
    }

    /// Starts the extension; it runs until `ctx.stop`.
    async fn start(&self, ctx: ExtensionContext<'_>) -> Result<JoinHandle<()>, BuildError>;
}
