//! Errors raised while setting up or tearing down telemetry.

use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_sdk::error::OTelSdkError;

use crate::tls::TlsError;

/// Why [`crate::TelemetryBuilder::install`] or a flush/shutdown failed, phrased so that the
/// operator knows what to change.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// An OTLP exporter could not be built (bad endpoint URL or `OTEL_EXPORTER_OTLP_*` value).
    #[error(
        "cannot build the OTLP {signal} exporter (check OTEL_EXPORTER_OTLP_ENDPOINT / \
         OTEL_EXPORTER_OTLP_PROTOCOL and the builder's endpoint): {source}"
    )]
    Exporter {
        signal: &'static str,
        source: ExporterBuildError,
    },
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` holds something other than `grpc`, `http/protobuf`,
    /// `http/json`.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not supported: use `grpc` (default), \
         `http/protobuf` or `http/json`"
    )]
    UnsupportedProtocol(String),
    /// A CA file, client certificate or key (builder or `OTEL_EXPORTER_OTLP_CERTIFICATE`,
    /// `_CLIENT_CERTIFICATE`, `_CLIENT_KEY`) cannot be used, or the system has no CA
    /// certificates for an `https://` endpoint.
    #[error("TLS to the collector: {0}")]
    Tls(#[from] TlsError),
    /// Only one of the client certificate and key variables is set.
    #[error("{set} is set but {missing} is not: mTLS needs both the certificate and its key")]
    IncompleteClientCertificate {
        set: &'static str,
        missing: &'static str,
    },
    /// The bearer token has characters a bearer token cannot have (the token itself is
    /// not repeated here, so the message can be logged).
    #[error(
        "the bearer token must be RFC 6750 token characters (letters, digits, `-._~+/`, \
         trailing `=`); check for whitespace or quotes around it"
    )]
    InvalidBearerToken,
    /// Export needs a running tokio runtime: the tonic channel spawns its connection task
    /// on it, and the HTTP client sends its requests from it.
    #[error(
        "telemetry export needs a tokio runtime: call install() from inside #[tokio::main] \
         (or Runtime::block_on) and keep that runtime alive while the guard lives"
    )]
    NoTokioRuntime,
    /// A global `tracing` subscriber was already installed by someone else.
    #[error(
        "a global tracing subscriber is already installed; call \
         .install_tracing_subscriber(false) and add TelemetryGuard::tracing_layers() to yours: {0}"
    )]
    SubscriberAlreadySet(String),
    /// Flushing or shutting down one of the providers failed (the collector is down or slow).
    #[error("{signal} {operation} failed (is the collector reachable?): {source}")]
    Provider {
        signal: &'static str,
        operation: &'static str,
        source: OTelSdkError,
    },
    /// The blocking flush task could not be joined (it panicked or the runtime is shutting down).
    #[error("the background flush task did not complete: {0}")]
    Join(String),
}
