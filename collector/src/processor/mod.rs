//! Processors: stages between receivers and exporters, one instance per pipeline (the
//! contract is [`crate::component::Processor`]).

pub(crate) mod batch;
pub mod redaction;
/// The `xray_sampling` processor: cargo feature `tail-sampling`, on by default.
#[cfg(feature = "tail-sampling")]
pub mod xray_sampling;
