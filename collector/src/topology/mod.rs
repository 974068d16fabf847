//! The one place that knows how components are connected: pipelines built from the
//! configuration, the fan-out to exporters, the exporter driver (the one retry layer), the
//! queue on disk, and flushing.
//!
//! Data flow, one chain per pipeline: receiver → [`crate::component::Consumer`] (admission
//! against the item budget) → processors → fan-out → one driver per exporter. Stages are
//! tokio tasks joined by bounded channels.

pub(crate) mod build;
pub mod driver;
pub mod persistent_queue;
