//! Options of the `batch` processor, as in the OpenTelemetry Collector.

use std::time::Duration;

use crate::component::validate::Invalid;
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
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.send_batch_size == 0 {
            return Err("send_batch_size must be at least 1".into());
        }
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(Invalid::Order {
                option: "send_batch_max_size",
                value: self.send_batch_max_size.to_string(),
                relation: "0 or at least",
                other: "send_batch_size",
                other_value: self.send_batch_size.to_string(),
            });
        }
        if self.timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        crate::component::validate::check_duration("timeout", self.timeout)?;
        Ok(())
    }
}

impl crate::component::factory::Registered for BatchConfig {
    const TYPE: &'static str = "batch";
}
