//! The CloudWatch Logs transport shared by `awscloudwatchlogs` and `awsemf`:
//!
//! - `request_builder`: events into API-sized batches (count, bytes, 24 h span, order,
//!   per-event size);
//! - `service`: the API calls (lazy client, PutLogEvents, create group/stream/retention);
//! - `retry`: which errors are retried;
//! - `sink`: sends batches per log group and says what happened per item;
//! - `routing`: a record's group and stream by its log category;
//! - `target`: where a batch goes (group, stream, entity), retention validation;
//! - `template`: group and stream names from templates over attributes, the group cap;
//! - `entity`: the service a request's events come from, for CloudWatch's related telemetry;
//! - `marker`: delivery markers that recognise, on replay, what already arrived.

pub(crate) mod entity;
pub mod marker;
pub(crate) mod output;
pub mod request_builder;
pub(crate) mod retry;
pub(crate) mod routing;
pub mod service;
pub(crate) mod sink;
pub(crate) mod target;
pub(crate) mod template;

/// Now in milliseconds since the epoch: the unit of CloudWatch Logs event timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
