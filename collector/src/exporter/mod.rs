//! Exporters: the last stage of a pipeline, each owning one destination (the contract is
//! [`crate::component::Exporter`]).

pub mod cloudwatch_logs;
pub mod debug;
pub mod emf;
pub mod file;
pub mod loadbalancing;
pub mod otlp;
pub mod otlphttp;
pub mod xray;
