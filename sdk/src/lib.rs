//! # aurastream-sdk
//!
//! Instruments a Rust service for AuraStream Telemetry in one call: traces, metrics and
//! logs go over OTLP to `aurastream-collector`, which forwards them to X-Ray, CloudWatch
//! (EMF) and CloudWatch Logs.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use aurastream_sdk::{Sentiment, init};
//! use std::time::Duration;
//!
//! let guard = init("sentiment-api").install()?;
//! let telemetry = guard.telemetry().clone();
//! telemetry
//!     .metrics()
//!     .record_sentiment_analysis(Sentiment::Positive, 0.97, Duration::from_millis(12));
//! telemetry.logs().log_business_event(
//!     "analysis_completed",
//!     "customer_123",
//!     &serde_json::json!({"characters": 42}),
//! );
//! // axum::Router::new().route(...).layer(telemetry.http_layer())
//! guard.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! * [`init()`]: resource detection, OTLP exporters (gRPC, HTTP/protobuf or HTTP/JSON,
//!   TLS with system roots or a CA file, mTLS, a bearer token, `OTEL_*` variables),
//!   X-Ray trace ids, `X-Amzn-Trace-Id` + `traceparent` propagation, and the `tracing`
//!   bridge, so `#[tracing::instrument]` spans and `tracing` events are exported.
//! * [`metrics`]: the monitoring guide's metrics, with the CloudWatch namespace carried as
//!   the `aws.emf.namespace` data point attribute.
//! * [`logs`]: the guide's JSON log events, routed by `log.category`.
//! * [`middleware`]: a tower layer for HTTP servers; [`inject_current_context`] for
//!   outgoing requests.
#![forbid(unsafe_code)]

pub mod error;
mod http_client;
pub mod init;
pub mod logs;
pub mod metrics;
pub mod middleware;
pub mod propagation;
pub mod resource;
pub mod telemetry;
mod tls;

pub use error::SdkError;
pub use init::{Protocol, TelemetryBuilder, TelemetryGuard, init};
pub use logs::{LogCategory, StructuredLogger};
pub use metrics::{SeedMetrics, Sentiment};
pub use middleware::{CacheHit, RequestId, TelemetryLayer, TelemetryService};
pub use propagation::{current_context, inject_context, inject_current_context, xray_trace_id};
pub use telemetry::Telemetry;
pub use tls::TlsError;

/// Tests that install a thread-local tracing subscriber and read back the spans of a shared
/// callsite. tracing caches each callsite's interest process-wide: a parallel test reaching
/// the same callsite for the first time can cache it as disabled between another test's
/// `rebuild_interest_cache` and its first span, and that test then sees no span. These
/// tests therefore run one at a time.
#[cfg(test)]
pub(crate) mod test_tracing {
    use std::sync::{Mutex, MutexGuard};

    static SERIAL: Mutex<()> = Mutex::new(());

    /// The installed subscriber and the turn; dropping it restores the previous
    /// subscriber, then lets the next test go.
    pub(crate) struct Installed {
        _default: tracing::subscriber::DefaultGuard,
        _turn: MutexGuard<'static, ()>,
    }

    /// Waits for this test's turn, installs `subscriber` for the thread and rebuilds the
    /// interest cache.
    pub(crate) fn install(
        subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    ) -> Installed {
        let turn = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let default = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        Installed {
            _default: default,
            _turn: turn,
        }
    }
}
