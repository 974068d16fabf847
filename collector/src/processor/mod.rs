//! Processors: stages between receivers and exporters, one instance per pipeline (the
//! contract is [`crate::component::Processor`]).

pub mod batch;
pub mod xray_sampling;
