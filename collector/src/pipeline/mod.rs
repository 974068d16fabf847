//! Wiring: receivers → processors → fan-out → exporters, one chain per pipeline.
//!
//! Stages are tokio tasks joined by bounded channels. Receivers enter a pipeline through a
//! [`Consumer`], which admits a request only if every pipeline it feeds has room for it
//! (item budget and channel slot); otherwise the receiver refuses the request with a
//! retryable error and nothing is acknowledged. After the last processor, a fan-out task
//! hands each batch (shared, not copied) to one driver task per exporter.

pub mod build;
pub mod flush;
pub mod queue;
pub mod signal;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use self::queue::{AdmitError, ItemBudget, Ticket};
use self::signal::{Signal, SignalData};

/// Batches held in a channel between two stages. Small: the item budget, not the channel,
/// is what bounds memory; the channel only needs to keep stages busy.
pub const STAGE_CHANNEL_CAPACITY: usize = 64;

/// A batch moving through a pipeline, with its claim on the pipeline's item budget.
#[derive(Debug)]
pub struct Batch {
    pub data: SignalData,
    pub ticket: Ticket,
}

impl Batch {
    pub fn item_count(&self) -> usize {
        self.data.item_count()
    }

    /// Splits off the first `n` items with their share of the ticket.
    pub fn split_front(&mut self, n: usize) -> Batch {
        let data = self.data.split_front(n);
        let ticket = self.ticket.split(data.item_count());
        Batch { data, ticket }
    }

    pub fn append(&mut self, other: Batch) {
        self.data.append(other.data);
        self.ticket.merge(other.ticket);
    }
}

/// The entrance of one pipeline.
#[derive(Clone)]
pub struct PipelineInput {
    pub name: String,
    budget: ItemBudget,
    tx: mpsc::Sender<Batch>,
    accepted: Counter,
}

impl PipelineInput {
    pub fn new(name: &str, budget: ItemBudget, tx: mpsc::Sender<Batch>, accepted: Counter) -> Self {
        PipelineInput {
            name: name.into(),
            budget,
            tx,
            accepted,
        }
    }
}

/// Why a consumer refused a request. The sender has not been told "accepted", so it still
/// owns the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    #[error("pipeline `{pipeline}` is full; retry later")]
    Full { pipeline: String },
    #[error(
        "request holds {items} items, more than pipeline `{pipeline}` may hold at once \
         ({capacity}); send smaller requests"
    )]
    TooLarge {
        pipeline: String,
        items: usize,
        capacity: usize,
    },
    #[error("the collector is shutting down")]
    ShuttingDown,
}

/// What a receiver holds for one signal: the inputs of every pipeline that lists it.
#[derive(Clone)]
pub struct Consumer {
    pub signal: Signal,
    inputs: Vec<PipelineInput>,
}

impl Consumer {
    pub fn new(signal: Signal, inputs: Vec<PipelineInput>) -> Consumer {
        Consumer { signal, inputs }
    }

    /// Hands `data` to every pipeline, or to none: room is reserved in all of them before
    /// anything is sent, so a full pipeline never leaves another with a partial delivery.
    pub fn try_consume(&self, data: SignalData) -> Result<(), ConsumeError> {
        let items = data.item_count();
        if items == 0 {
            return Ok(());
        }
        let mut tickets = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let ticket = input.budget.try_admit(items).map_err(|e| match e {
                AdmitError::Full => ConsumeError::Full {
                    pipeline: input.name.clone(),
                },
                AdmitError::TooLarge { items, capacity } => ConsumeError::TooLarge {
                    pipeline: input.name.clone(),
                    items,
                    capacity,
                },
            })?;
            tickets.push(ticket);
        }
        let mut permits = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let permit = input.tx.try_reserve().map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => ConsumeError::Full {
                    pipeline: input.name.clone(),
                },
                mpsc::error::TrySendError::Closed(()) => ConsumeError::ShuttingDown,
            })?;
            permits.push(permit);
        }
        let last = self.inputs.len() - 1;
        let mut data = Some(data);
        for (i, ((input, ticket), permit)) in
            self.inputs.iter().zip(tickets).zip(permits).enumerate()
        {
            let data = if i == last {
                data.take().expect("moved only for the last pipeline")
            } else {
                data.clone()
                    .expect("still present before the last pipeline")
            };
            permit.send(Batch { data, ticket });
            input.accepted.inc_by(items as u64);
        }
        Ok(())
    }
}
