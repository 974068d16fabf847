//! Wire and output formats of AuraStream Telemetry, as plain data with serde.
//!
//! OTLP comes from `opentelemetry-proto` (pre-generated prost types, so no `protoc` is
//! needed); this crate re-exports it under [`otlp`] so the rest of the workspace names one
//! path. The AWS output formats (EMF, X-Ray segment documents, sampling rules, Lambda
//! Telemetry API events) live in their own modules. No I/O and no async runtime here.
#![forbid(unsafe_code)]

pub mod emf;
pub mod lambda;
pub mod otlp;
pub mod sampling;
pub mod xray;
