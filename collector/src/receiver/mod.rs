//! Receivers: where telemetry enters the collector.

pub(crate) mod lambda;
pub mod otlp;
/// The `awsxray` receiver: a cargo feature, on by default.
#[cfg(feature = "awsxray")]
pub mod xray_udp;
