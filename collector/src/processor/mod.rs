//! Processors: stages between receivers and exporters, one instance per pipeline.
//!
//! A processor is a task that reads batches from its input channel and writes batches to
//! its output; it ends (after flushing what it holds) when its input closes. Anything a
//! processor decides not to pass on is counted as dropped with a reason.

pub mod batch;
pub mod xray_sampling;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::pipeline::Batch;

#[async_trait]
pub trait Processor: Send + 'static {
    async fn run(self: Box<Self>, input: mpsc::Receiver<Batch>, output: mpsc::Sender<Batch>);
}
