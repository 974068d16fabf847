//! Options of the `awsxray` exporter.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::aws::cloudwatch_logs::template::{NameKind, Template};
use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};

/// ```yaml
/// exporters:
///   awsxray:
///     output_destination: cloudwatch  # cloudwatch | stdout | file
///     region: eu-west-1               # default: the standard AWS region chain
///     endpoint: http://127.0.0.1:5000 # e.g. moto or a VPC endpoint
///     indexed_attributes: [order.id, tenant]
///     index_all_attributes: false
///     aws_log_groups: [/aws/ecs/checkout]   # templates over resource attributes, as in
///                                     #   awscloudwatchlogs; default: the groups of the
///                                     #   awscloudwatchlogs exporters in use
///     enforce_legacy_trace_id_epoch: false
///     num_workers: 16                 # concurrent PutTraceSegments calls per batch
///     request_timeout_seconds: 30
/// ```
///
/// Option names follow the OpenTelemetry Collector's `awsxray` exporter where it has them.
/// With `file` or `stdout`, every line is exactly one segment document as it would be sent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct XrayExporterConfig {
    pub output_destination: OutputDestination,
    /// Required with `output_destination: file`, refused otherwise.
    pub path: Option<PathBuf>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Span attributes turned into X-Ray annotations (searchable), when they hold a string,
    /// number or boolean.
    pub indexed_attributes: Vec<String>,
    /// Turn every scalar span attribute not already mapped to a segment field into an
    /// annotation. X-Ray indexes at most 50 annotations per trace, so use with care.
    pub index_all_attributes: bool,
    /// Log groups the console links segments to (`aws.log.group.names` on the resource
    /// wins when present), as name templates filled from the span's resource. Left empty,
    /// configuration loading fills it with the groups of the `awscloudwatchlogs` exporters
    /// in use.
    pub aws_log_groups: Vec<String>,
    /// Drop spans whose trace id does not start with a recent epoch second, as X-Ray did
    /// before it accepted W3C ids. Off by default: X-Ray takes any 128-bit id today.
    pub enforce_legacy_trace_id_epoch: bool,
    /// `PutTraceSegments` calls in flight per batch (times `sending_queue.num_consumers`
    /// batches at once).
    pub num_workers: usize,
    /// Accepted so ADOT configurations load unchanged, and ignored: every retry (throttled
    /// calls, unprocessed documents) is made by the pipeline under `retry_on_failure`, so
    /// one setting bounds the whole effort. Setting it logs a warning at start-up.
    pub max_retries: Option<u32>,
    /// Limit on one `PutTraceSegments` call, retries excluded.
    pub request_timeout_seconds: u64,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

pub use crate::output::OutputDestination;

impl Default for XrayExporterConfig {
    fn default() -> Self {
        XrayExporterConfig {
            output_destination: OutputDestination::Api,
            path: None,
            region: None,
            endpoint: None,
            indexed_attributes: Vec::new(),
            index_all_attributes: false,
            aws_log_groups: Vec::new(),
            enforce_legacy_trace_id_epoch: false,
            num_workers: 16,
            max_retries: None,
            request_timeout_seconds: 30,
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

impl XrayExporterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        match (self.output_destination, &self.path) {
            (OutputDestination::File, None) => {
                return Err("path is required with output_destination: file".into());
            }
            (OutputDestination::File, Some(p)) if p.as_os_str().is_empty() => {
                return Err("path must not be empty".into());
            }
            (OutputDestination::Api | OutputDestination::Stdout, Some(_)) => {
                return Err("path is only used with output_destination: file".into());
            }
            _ => {}
        }
        if let Some(endpoint) = &self.endpoint {
            crate::component::validate::check_http_url("endpoint", endpoint)?;
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            return Err(
                "region must not be empty (leave it out to use the AWS region chain)".into(),
            );
        }
        if self.num_workers == 0 {
            return Err("num_workers must be at least 1".into());
        }
        if self.request_timeout_seconds == 0 {
            return Err("request_timeout_seconds must be at least 1".into());
        }
        if self.indexed_attributes.iter().any(String::is_empty) {
            return Err("indexed_attributes must not contain empty names".into());
        }
        for (i, g) in self.aws_log_groups.iter().enumerate() {
            Template::parse(g, NameKind::Group)
                .map_err(|e| Invalid::unparsable(format!("aws_log_groups[{i}]"), g, e))?;
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }
}

impl crate::component::factory::Registered for XrayExporterConfig {
    const TYPE: &'static str = "awsxray";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<XrayExporterConfig, String> {
        let c: XrayExporterConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_send_to_xray() {
        let c = parse("{}").unwrap();
        assert_eq!(c.output_destination, OutputDestination::Api);
        assert_eq!(c.num_workers, 16);
        assert!(!c.enforce_legacy_trace_id_epoch);
    }

    #[test]
    fn go_exporter_option_names_are_accepted() {
        let c = parse(
            "region: eu-west-1\nendpoint: http://127.0.0.1:5000\nindexed_attributes: [a, b]\n\
             index_all_attributes: true\naws_log_groups: [g]\n",
        )
        .unwrap();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.indexed_attributes, ["a", "b"]);
        assert!(c.index_all_attributes);
        assert_eq!(c.aws_log_groups, ["g"]);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (yaml, want) in [
            ("output_destination: file", "path is required"),
            ("path: /tmp/x", "only used with output_destination: file"),
            ("endpoint: localhost:5000", "http:// or https://"),
            ("num_workers: 0", "num_workers"),
            ("region: ''", "region must not be empty"),
            ("local_mode: true", "unknown field"),
            ("output_destination: kinesis", "unknown variant"),
            (
                "aws_log_groups: [\"/a/{x\"]",
                "aws_log_groups[0] `/a/{x`: `{` at byte 3",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        assert!(parse("output_destination: file\npath: /tmp/x.jsonl").is_ok());
    }
}
