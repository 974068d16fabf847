//! Exporters: the last stage of a pipeline, each owning one destination (the contract is
//! [`crate::component::Exporter`]).

//!
//! `awscloudwatchlogs`, `awsxray`, `otlp` and `loadbalancing` are cargo features (on by
//! default; the lean Lambda layer leaves them out).

#[cfg(feature = "awscloudwatchlogs")]
pub mod cloudwatch_logs;
pub(crate) mod debug;
pub mod emf;
pub mod file;
#[cfg(feature = "grpc-exporters")]
pub(crate) mod loadbalancing;
#[cfg(feature = "grpc-exporters")]
pub mod otlp;
pub mod otlphttp;
#[cfg(feature = "awsxray")]
pub mod xray;
