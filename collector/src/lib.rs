//! The AuraStream collector: receives OTLP, batches and samples it, and exports it to
//! CloudWatch (EMF metrics, Logs), AWS X-Ray, files or stdout.
//!
//! Data flow, configuration and accounting are described in `pipeline`, `config` and
//! `telemetry::metrics`; the binary in `main.rs` only parses flags and calls [`run`].

pub mod config;
pub mod exporter;
pub mod fuzzing;
pub mod lambda;
pub mod pipeline;
pub mod processor;
pub mod receiver;
pub mod service;
pub mod telemetry;
