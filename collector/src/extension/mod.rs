//! Extensions: services of the collector itself rather than of a pipeline.

pub(crate) mod bearertokenauth;
pub(crate) mod health_check;
pub mod sigv4auth;
