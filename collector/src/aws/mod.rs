//! The shared AWS layer: retry classification of AWS errors and the CloudWatch Logs
//! transport, used by the `awsemf`, `awscloudwatchlogs` and `awsxray` components.

pub mod cloudwatch_logs;
pub mod retry;
pub mod signed_http;
pub mod xray;
