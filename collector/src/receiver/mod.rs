//! Receivers: where telemetry enters the collector.

pub mod lambda;
pub mod otlp;
pub mod xray_udp;
