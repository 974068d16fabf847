//! The CloudWatch Logs transport shared by `awscloudwatchlogs` and `awsemf`:
//!
//! - `request_builder`: events into API-sized batches (count, bytes, 24 h span, order,
//!   per-event size);
//! - `service`: the API calls (lazy client, PutLogEvents, create group/stream/retention);
//! - `retry`: which errors are retried;
//! - `sink`: sends batches per log group and says what happened per item;
//! - `target`: group/stream names with placeholders, retention validation;
//! - `marker`: delivery markers that recognise, on replay, what already arrived.

pub mod marker;
pub mod output;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod sink;
pub mod target;
