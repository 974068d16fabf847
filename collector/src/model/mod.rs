//! The data model every layer shares: the three OTLP signals as one value that can be
//! counted, split and merged, and the accounting that travels with it (item budget tickets,
//! byte claims). It imports nothing else from this crate, so every other module may use it.

pub mod batch;
pub mod budget;
pub mod decoded_size;
pub mod held_bytes;
pub mod ids;
pub mod json;
pub mod memory;
pub mod signal;

pub use self::batch::Batch;
pub use self::budget::{AdmitError, ItemBudget, SettleWatch, Ticket};
pub use self::signal::{Signal, SignalData, metric_point_count};
