//! Receivers: where telemetry enters the collector.

pub mod otlp;
pub mod xray_udp;
