//! The `redaction` processor: personal and secret values never leave the collector.
//!
//! The OpenTelemetry Collector contrib `redactionprocessor`'s options and semantics
//! ([`config`]), applied to every attribute list of all three signals, to log bodies
//! (string or structured) and to the X-Ray documents the `awsxray` receiver carries on its
//! spans. Blocked values are masked (`****`) or hashed, with a keyed HMAC when the token
//! must not be guessable, so joins across signals still work on the token.
//!
//! The processor changes items in place and passes every item on: nothing is dropped here.

pub mod config;
pub(crate) mod error;
mod json_text;
mod masking;
mod rules;
mod signals;
pub(crate) mod summary;
mod xray_document;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use self::config::RedactionConfig;
pub use self::rules::Rules;
use crate::component::Processor;
use crate::component::factory::{BuildError, ProcessorContext, ProcessorFactory};
use crate::component::validate::Invalid;
use crate::model::{Batch, Signal};

pub struct RedactionProcessor {
    rules: Rules,
    /// Counted if the next stage has gone away (only possible while shutting down).
    lost: Counter,
}

#[async_trait]
impl Processor for RedactionProcessor {
    async fn run(self: Box<Self>, mut input: mpsc::Receiver<Batch>, output: mpsc::Sender<Batch>) {
        while let Some(mut batch) = input.recv().await {
            self.rules.redact(&mut batch.data);
            let n = batch.item_count();
            if output.send(batch).await.is_err() {
                self.lost.inc_by(n as u64);
            }
        }
    }
}

impl ProcessorFactory for RedactionConfig {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    /// Compiles the patterns and reads the key, so a bad regex or a missing key fails
    /// `validate` and start-up alike, naming the option.
    fn validate(&self) -> Result<(), Invalid> {
        Rules::compile(self).map(drop).map_err(Invalid::own)
    }

    fn build(&self, ctx: &ProcessorContext<'_>) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(RedactionProcessor {
            rules: Rules::compile(self).map_err(|e| BuildError::Options(Invalid::own(e)))?,
            lost: ctx
                .metrics
                .pipeline_dropped(ctx.pipeline, ctx.id, "shutdown"),
        }))
    }
}

#[cfg(test)]
mod tests;
