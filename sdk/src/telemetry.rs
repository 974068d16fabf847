//! The handle application code holds: the seed's metrics and the structured logger,
//! sharing one set of providers.
//!
//! The HTTP layer is built from this handle too (`Telemetry::http_layer`), but that method
//! lives in [`crate::middleware`]: the middleware needs the handle, so the handle must not
//! need the middleware, or the two modules would import each other.

use opentelemetry::metrics::Meter;
use opentelemetry_sdk::logs::SdkLogger;

use crate::logs::StructuredLogger;
use crate::metrics::SeedMetrics;

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
}
