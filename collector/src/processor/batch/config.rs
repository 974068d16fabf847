//! Options of the `batch` processor, as in the OpenTelemetry Collector.

use std::time::Duration;

use serde::Deserialize;

/// ```yaml
/// processors:
///   batch:
///     send_batch_size: 8192      # send once this many items are buffered
///     send_batch_max_size: 0     # split larger batches (0 = no upper bound)
///     timeout: 200ms             # send whatever is buffered after this long
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub send_batch_size: usize,
    pub send_batch_max_size: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: Duration::from_millis(200),
        }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.send_batch_size == 0 {
            return Err("send_batch_size must be at least 1".into());
        }
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(format!(
                "send_batch_max_size ({}) must be 0 or at least send_batch_size ({})",
                self.send_batch_max_size, self.send_batch_size
            ));
        }
        if self.timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        if self.timeout > crate::component::validate::MAX_DURATION {
            return Err(format!(
                "timeout ({}) is too long; at most {}",
                humantime::format_duration(self.timeout),
                humantime::format_duration(crate::component::validate::MAX_DURATION)
            ));
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for BatchConfig {
    const TYPE: &'static str = "batch";
}

impl crate::component::factory::ProcessorFactory for BatchConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), String> {
        BatchConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::component::factory::ProcessorContext<'_>,
    ) -> Result<Box<dyn crate::component::Processor>, crate::component::factory::BuildError> {
        Ok(Box::new(super::BatchProcessor::new(
            self.clone(),
            ctx.metrics
                .pipeline_dropped(ctx.pipeline, ctx.id, "shutdown"),
            ctx.flush.subscribe(),
        )))
    }
}
