//! The shared AWS layer: retry classification of AWS errors, SigV4 signing and the
//! CloudWatch Logs transport, used by the `awsemf`, `awscloudwatchlogs`, `awsxray`,
//! `otlphttp` and `sigv4auth` components.

pub mod cloudwatch_logs;
pub(crate) mod credentials;
pub(crate) mod retry;
pub(crate) mod signed_http;
pub mod sigv4;
pub mod transaction_search;
pub(crate) mod xray;
