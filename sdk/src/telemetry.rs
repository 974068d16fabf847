//! The handle application code holds: the seed's metrics, the structured logger and the
//! HTTP layer, sharing one set of providers.

use opentelemetry::metrics::Meter;
use opentelemetry_sdk::logs::SdkLogger;

use crate::logs::StructuredLogger;
use crate::metrics::SeedMetrics;
use crate::middleware::TelemetryLayer;

/// Cheap to clone; put it in your application state.
#[derive(Clone)]
pub struct Telemetry {
    metrics: SeedMetrics,
    logs: StructuredLogger,
}

impl Telemetry {
    /// Builds the handle from a meter and a logger. `init` does this for you; tests use it
    /// with in-memory providers.
    pub fn new(meter: &Meter, logger: SdkLogger, customer_id_dimension: bool) -> Telemetry {
        Telemetry {
            metrics: SeedMetrics::new(meter, customer_id_dimension),
            logs: StructuredLogger::new(logger),
        }
    }

    /// The guide's metrics (`AuraStream/Application`, `/Business`, `/Customer`, `/Revenue`).
    pub fn metrics(&self) -> &SeedMetrics {
        &self.metrics
    }

    /// The guide's structured logs.
    pub fn logs(&self) -> &StructuredLogger {
        &self.logs
    }

    /// The tower layer that traces, measures and logs every HTTP request.
    pub fn http_layer(&self) -> TelemetryLayer {
        TelemetryLayer::new(self.clone())
    }
}
