//! The collector watching itself: `/health`, `/metrics` (Prometheus) and its own logs.

pub(crate) mod health;
pub mod logging;
pub mod metrics;
