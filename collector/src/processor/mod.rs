//! Processors: stages between receivers and exporters, one instance per pipeline (the
//! contract is [`crate::component::Processor`]).

pub mod batch;
pub mod redaction;
pub mod xray_sampling;
