//! The collector watching itself: `/health`, `/metrics` (Prometheus) and its own logs.

pub mod health;
pub mod logging;
pub mod metrics;
