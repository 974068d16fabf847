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

use crate::model::decoded_size;
use crate::model::memory::{self, ByteClaim, MemoryLimiter};
use crate::model::{AdmitError, Batch, ItemBudget, NotKept, SettleWatch, Signal, SignalData};

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

    /// Charges what the pipeline holds to the process-wide memory budget, and refuses
    /// requests while that is over its soft limit.
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
    /// The process-wide memory budget is spent (or would be by this request).
    #[error(transparent)]
    MemoryLimit(#[from] memory::Refusal),
    /// Found after admission: the pipeline's queue on disk could not take the request.
    #[error("pipeline `{pipeline}` could not store the request ({reason}); retry later")]
    NotStored { pipeline: String, reason: NotKept },
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

    /// The process-wide memory budget the pipelines charge, if one is configured: a
    /// receiver reserves a request's bounded decoded size there before decoding it.
    pub fn memory_limiter(&self) -> Option<&Arc<MemoryLimiter>> {
        self.inputs.iter().find_map(|i| i.memory.as_ref())
    }

    /// Refuses a request before it is read when a pipeline is sure to refuse it as full
    /// (see [`ItemBudget::refuses_now`]) or has no free channel slot.
    pub fn check_room(&self) -> Result<(), ConsumeError> {
        match self
            .inputs
            .iter()
            .find(|i| i.budget.refuses_now() || i.tx.capacity() == 0)
        {
            Some(input) => Err(ConsumeError::Full {
                pipeline: input.name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Like [`Consumer::try_consume`]; a receiver that can wait before answering awaits the
    /// returned [`Settled`], so that with a queue on disk an acknowledged request survives
    /// a crash of the collector.
    pub fn try_consume_durable(&self, data: SignalData) -> Result<Settled, ConsumeError> {
        if let Some(limiter) = self.memory_limiter()
            && limiter.over_soft()
        {
            let limits = limiter.limits();
            return Err(ConsumeError::MemoryLimit(memory::Refusal::Busy {
                held_mib: limiter.held().div_ceil(memory::MIB),
                soft_mib: limits.soft.div_ceil(memory::MIB),
            }));
        }
        self.try_consume_reserved(data, None)
    }

    /// Like [`Consumer::try_consume_durable`] for a request whose memory the receiver
    /// reserved before decoding it (see [`MemoryLimiter::try_reserve`]): the reservation
    /// already passed the limit, and is released here, once the batches' own claims hold
    /// the data in the pipelines (or once the request is refused).
    pub fn try_consume_reserved(
        &self,
        data: SignalData,
        reservation: Option<ByteClaim>,
    ) -> Result<Settled, ConsumeError> {
        let mut settled = Settled {
            waiting: Vec::new(),
        };
        let items = data.item_count();
        if items == 0 {
            return Ok(settled);
        }
        let bytes = if self.memory_limiter().is_some() {
            decoded_size::held(&data)
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
        drop(reservation);
        Ok(settled)
    }
}
