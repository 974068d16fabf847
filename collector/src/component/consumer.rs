//! Wiring: receivers → processors → fan-out → exporters, one chain per pipeline.
//!
//! Stages are tokio tasks joined by bounded channels. Receivers enter a pipeline through a
//! [`Consumer`], which admits a request only if every pipeline it feeds has room for it
//! (item budget and channel slot); otherwise the receiver refuses the request with a
//! retryable error and nothing is acknowledged. After the last processor, a fan-out task
//! hands each batch (shared, not copied) to one driver task per exporter.

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use std::sync::Arc;

use crate::model::memory::{self, ByteClaim, MemoryLimiter};
use crate::model::{AdmitError, Batch, ItemBudget, SettleWatch, Signal, SignalData};

/// Batches held in a channel between two stages. Small: the item budget, not the channel,
/// is what bounds memory; the channel only needs to keep stages busy.
pub const STAGE_CHANNEL_CAPACITY: usize = 64;

/// The entrance of one pipeline.
#[derive(Clone)]
pub struct PipelineInput {
    pub name: String,
    budget: ItemBudget,
    tx: mpsc::Sender<Batch>,
    accepted: Counter,
    /// An exporter of this pipeline keeps a queue on disk: acknowledge a request only once
    /// its items are settled (on disk, exported or dropped with a reason).
    durable: bool,
    memory: Option<Arc<MemoryLimiter>>,
}

impl PipelineInput {
    pub fn new(name: &str, budget: ItemBudget, tx: mpsc::Sender<Batch>, accepted: Counter) -> Self {
        PipelineInput {
            name: name.into(),
            budget,
            tx,
            accepted,
            durable: false,
            memory: None,
        }
    }

    /// Refuses requests while the pipeline holds more bytes than its soft limit.
    pub fn memory_limiter(mut self, limiter: Option<Arc<MemoryLimiter>>) -> Self {
        self.memory = limiter;
        self
    }

    /// Makes receivers wait for this pipeline to settle a request before acknowledging it.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

/// What a receiver waits on before acknowledging a request to a durable pipeline.
#[must_use = "dropping it acknowledges without waiting"]
pub struct Settled {
    /// Per durable pipeline: its name and what to wait on.
    waiting: Vec<(String, SettleWatch)>,
}

impl Settled {
    /// Resolves once every durable pipeline has settled the request. The items' tickets
    /// close the channels when they are dropped, whatever became of the items, so this
    /// never waits for longer than the items stay in the pipeline. An error means a
    /// pipeline could not write (part of) the request to its queue on disk: the request
    /// must be refused, not acknowledged.
    pub async fn wait(self) -> Result<(), ConsumeError> {
        let mut refused = None;
        for (pipeline, watch) in self.waiting {
            if let Err(reason) = watch.wait().await {
                refused.get_or_insert(ConsumeError::NotStored { pipeline, reason });
            }
        }
        refused.map_or(Ok(()), Err)
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
    /// Found after admission: the pipeline's queue on disk could not take the request.
    #[error("pipeline `{pipeline}` could not store the request ({reason}); retry later")]
    NotStored { pipeline: String, reason: String },
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
        self.try_consume_durable(data).map(|_settled| ())
    }

    /// Like [`Consumer::try_consume`]; a receiver that can wait before answering awaits the
    /// returned [`Settled`], so that with a queue on disk an acknowledged request survives
    /// a crash of the collector.
    pub fn try_consume_durable(&self, data: SignalData) -> Result<Settled, ConsumeError> {
        let mut settled = Settled {
            waiting: Vec::new(),
        };
        let items = data.item_count();
        if items == 0 {
            return Ok(settled);
        }
        for input in &self.inputs {
            if input.memory.as_ref().is_some_and(|m| m.over_soft()) {
                return Err(ConsumeError::Full {
                    pipeline: input.name.clone(),
                });
            }
        }
        let bytes = if self.inputs.iter().any(|i| i.memory.is_some()) {
            memory::encoded_len(&data)
        } else {
            0
        };
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
        for (i, ((input, mut ticket), permit)) in
            self.inputs.iter().zip(tickets).zip(permits).enumerate()
        {
            let data = if i == last {
                data.take().expect("moved only for the last pipeline")
            } else {
                data.clone()
                    .expect("still present before the last pipeline")
            };
            if let Some(limiter) = &input.memory {
                ticket.claim_bytes(ByteClaim::new(limiter.clone(), bytes));
            }
            if input.durable {
                settled.waiting.push((input.name.clone(), ticket.watch()));
            }
            permit.send(Batch { data, ticket });
            input.accepted.inc_by(items as u64);
        }
        Ok(settled)
    }
}
