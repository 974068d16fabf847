//! The collector watching itself: `/health`, `/metrics` (Prometheus) and its own logs.

pub mod config;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod server;
