//! The contracts between the topology and the components: how a receiver hands data to
//! pipelines ([`Consumer`]), what a processor and an exporter are ([`Processor`],
//! [`Exporter`]), the options every exporter shares ([`delivery`]), and the factory traits
//! through which the registration list in `config::components` builds each component.
//!
//! Components (receivers, processors, exporters, extensions) import from here and from the
//! layers below (`model`, `telemetry`, `aws`, `output`), never from `topology` or `config`.

pub(crate) mod auth;
pub(crate) mod consumer;
pub mod delivery;
pub(crate) mod exporter;
pub mod factory;
pub(crate) mod flush;
pub(crate) mod processor;
pub(crate) mod reason;
pub(crate) mod receiver;
pub(crate) mod validate;

pub use self::consumer::{ConsumeError, Consumer, PipelineInput, STAGE_CHANNEL_CAPACITY, Settled};
pub use self::delivery::{RetryConfig, SendingQueueConfig};
pub use self::exporter::{
    ExportError, ExportReport, Exporter, Pending, Provenance, RequestSender, send_in_order,
};
pub use self::processor::Processor;
pub use self::reason::Reason;
