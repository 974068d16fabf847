//! The `health_check` extension: `/health` and the Prometheus `/metrics` on one listener.

pub mod config;
pub mod server;
