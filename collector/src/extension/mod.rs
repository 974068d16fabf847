//! Extensions: services of the collector itself rather than of a pipeline.

pub mod bearertokenauth;
pub mod health_check;
pub mod sigv4auth;
