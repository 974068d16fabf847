//! The data model every layer shares: the three OTLP signals as one value that can be
//! counted, split and merged, and the accounting that travels with it (item budget tickets,
//! byte claims). It imports nothing else from this crate, so every other module may use it.

pub(crate) mod batch;
pub(crate) mod budget;
pub mod decoded_size;
pub(crate) mod held_bytes;
pub(crate) mod ids;
pub(crate) mod json;
pub mod memory;
pub(crate) mod signal;

pub use self::batch::Batch;
pub use self::budget::{AdmitError, ItemBudget, NotKept, SettleWatch, Ticket};
pub use self::signal::{Signal, SignalData, metric_point_count};
