//! The AuraStream collector: receives OTLP, batches and samples it, and exports it to
//! CloudWatch (EMF metrics, Logs), AWS X-Ray, files or stdout.
//!
//! The layers, lowest first (ARCHITECTURE.md has the picture): `model` (the data and its
//! accounting) → `telemetry` (self-metrics, health) → `component` (the contracts between
//! components and the topology) → `aws`, `output` (shared destination code), `net` (TLS, the
//! accept loop, authentication at the door) → the
//! components in `receiver`, `processor`, `exporter`, `extension` → `config` (parsing and the
//! registration list) → `topology` (pipelines, fan-out, the exporter driver) → `service`,
//! `lambda_extension` (the collector's life). A module imports only from layers below it.
//!
//! A module is `pub` only where the binary, the integration tests, the benches or the fuzz
//! targets reach into it; the rest is `pub(crate)`, so what is private is free to change
//! and dead code shows up as such.
#![forbid(unsafe_code)]

pub mod aws;
pub mod component;
pub mod config;
pub mod exporter;
pub mod extension;
pub mod lambda_extension;
pub mod model;
pub mod net;
pub mod output;
pub mod processor;
pub mod receiver;
pub mod service;
pub mod telemetry;
pub mod topology;
