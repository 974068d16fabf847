//! The processor contract: a task between two channels of one pipeline.
//!
//! A processor reads batches from its input and writes batches to its output; it ends
//! (after flushing what it holds) when its input closes. Anything a processor decides not to
//! pass on is counted as dropped with a reason.

use async_trait::async_trait;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

use crate::model::Batch;

#[async_trait]
pub trait Processor: Send + 'static {
    async fn run(self: Box<Self>, input: mpsc::Receiver<Batch>, output: mpsc::Sender<Batch>);

    /// Bytes the processor holds beyond the batches it keeps (whose tickets are charged
    /// already), kept current by it, for the process-wide memory budget.
    fn held_bytes_gauge(&self) -> Option<Gauge> {
        None
    }
}
