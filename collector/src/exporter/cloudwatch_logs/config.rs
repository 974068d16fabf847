//! Options of the `awscloudwatchlogs` exporter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::aws::cloudwatch_logs::request_builder::{DEFAULT_MAX_EVENT_SIZE, validate_event_size};
use crate::aws::cloudwatch_logs::routing::validate_routing;
use crate::aws::cloudwatch_logs::service::ClientSettings;
use crate::aws::cloudwatch_logs::template::DEFAULT_MAX_LOG_GROUPS;
use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::output::OutputDestination;

/// ```yaml
/// exporters:
///   awscloudwatchlogs:
///     region: us-east-1                 # default: the standard chain (AWS_REGION, profile, IMDS)
///     endpoint: http://127.0.0.1:5000   # default: the regional endpoint (set for moto)
///     log_group_name: /aws/aurastream/application   # records with no known category
///     log_stream_name: "{ServiceName}"   # templates (see template.rs): {service.name},
///                                        #   {log.category}, any record or resource
///                                        #   attribute, {key:-fallback}; the Collector's
///                                        #   {ServiceName} {TaskId} {ClusterName} ... too
///     max_log_groups: 200                # distinct groups from templates; beyond: the
///                                        #   overflow group (placeholders = `overflow`)
///     send_entity: true                  # PutLogEvents `entity` from the resource (service)
///     log_retention: 30                  # days, for groups this exporter creates; 0 = never expire
///     tags: {team: platform}             # put on groups this exporter creates
///     raw_log: false                     # true: send the body as is, no JSON wrapping
///     category_attribute: log.category   # record (or resource) attribute naming the category
///     categories:                        # default: the monitoring guide's categories, below
///       security:    {log_group_name: /aws/aurastream/security,    retention_in_days: 2557}
///       audit:       {log_group_name: /aws/aurastream/audit,       retention_in_days: 2557}
///       application: {log_group_name: /aws/aurastream/application, retention_in_days: 30}
///       performance: {log_group_name: /aws/aurastream/performance, retention_in_days: 90}
///       business:    {log_group_name: /aws/aurastream/business,    retention_in_days: 365}
///     max_event_size: 262144             # bytes incl. CloudWatch's 26-byte overhead (max 1 MiB)
///     timeout: 30s                       # per API call
///     delivery_markers: true             # default: on with sending_queue.storage (see marker.rs)
///     output_destination: cloudwatch     # cloudwatch | stdout | file (JSON lines:
///     path: ./aurastream-data/logs.jsonl #   {logGroupName, logStreamName, timestamp, message,
///                                        #    entity})
/// ```
///
/// Retention must be a value CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180,
/// 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653). The monitoring guide's
/// `RetentionInDays: 2555` ("7 years") is not one of them; 2557 is the nearest and the
/// default for `security` and `audit` here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CloudWatchLogsExporterConfig {
    pub output_destination: OutputDestination,
    pub path: Option<PathBuf>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub log_group_name: String,
    pub log_stream_name: String,
    /// Distinct log groups the templates may name before events go to the overflow group.
    pub max_log_groups: usize,
    /// Send the resource's service as the PutLogEvents `entity` (see `entity.rs`), so
    /// CloudWatch relates the logs to the service's other telemetry. Resources without
    /// `service.name` never get one.
    pub send_entity: bool,
    pub log_retention: u32,
    pub tags: BTreeMap<String, String>,
    pub raw_log: bool,
    pub category_attribute: String,
    pub categories: BTreeMap<String, CategoryConfig>,
    pub max_event_size: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A marker event in every PutLogEvents request, so a batch replayed from the queue on
    /// disk is not stored twice. `None` = on when `sending_queue.storage` is set.
    pub delivery_markers: Option<bool>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

pub use crate::aws::cloudwatch_logs::routing::{CategoryConfig, seed_categories};

impl Default for CloudWatchLogsExporterConfig {
    fn default() -> Self {
        CloudWatchLogsExporterConfig {
            output_destination: OutputDestination::Api,
            path: None,
            region: None,
            endpoint: None,
            log_group_name: String::new(),
            log_stream_name: "{ServiceName}".into(),
            max_log_groups: DEFAULT_MAX_LOG_GROUPS,
            send_entity: true,
            log_retention: 0,
            tags: BTreeMap::new(),
            raw_log: false,
            category_attribute: "log.category".into(),
            categories: seed_categories(),
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            timeout: Duration::from_secs(30),
            delivery_markers: None,
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

impl CloudWatchLogsExporterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.log_group_name.is_empty() {
            return Err("log_group_name is required".into());
        }
        if self.output_destination == OutputDestination::File && self.path.is_none() {
            return Err("path is required with output_destination: file".into());
        }
        if self.max_log_groups == 0 {
            return Err("max_log_groups must be at least 1".into());
        }
        validate_routing(
            &self.log_group_name,
            &self.log_stream_name,
            self.log_retention,
            &self.categories,
        )?;
        validate_event_size(self.max_event_size)
    }

    /// Every group template this exporter routes to: the default group and each
    /// category's (what the `awsxray` exporter lists in segments when told nothing else).
    pub fn log_group_names(&self) -> Vec<String> {
        std::iter::once(&self.log_group_name)
            .chain(self.categories.values().map(|c| &c.log_group_name))
            .cloned()
            .collect()
    }

    pub fn client_settings(&self) -> ClientSettings {
        ClientSettings {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        }
    }
}

impl crate::component::factory::Registered for CloudWatchLogsExporterConfig {
    const TYPE: &'static str = "awscloudwatchlogs";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<CloudWatchLogsExporterConfig, String> {
        let c: CloudWatchLogsExporterConfig =
            serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_carry_the_seed_categories() {
        let c = parse("log_group_name: /aws/aurastream/default").expect("valid");
        assert_eq!(c.categories["security"].retention_in_days, 2557);
        assert_eq!(c.categories["audit"].retention_in_days, 2557);
        assert_eq!(c.categories["application"].retention_in_days, 30);
        assert_eq!(c.categories["performance"].retention_in_days, 90);
        assert_eq!(c.categories["business"].retention_in_days, 365);
        assert_eq!(c.category_attribute, "log.category");
    }

    #[test]
    fn retention_2555_is_rejected_at_validation_naming_2557() {
        let err = parse(
            "log_group_name: g\ncategories:\n  security: {log_group_name: /s, retention_in_days: 2555}\n",
        )
        .expect_err("2555 is not allowed");
        assert!(
            err.contains("categories.security.retention_in_days"),
            "{err}"
        );
        assert!(err.contains("nearest allowed value is 2557"), "{err}");
        let err = parse("log_group_name: g\nlog_retention: 10\n").expect_err("10 is not allowed");
        assert!(err.contains("nearest allowed value is"), "{err}");
    }

    #[test]
    fn templates_are_checked_at_start_up() {
        let c = parse(
            "log_group_name: \"/aws/ecs/{aws.ecs.cluster.name:-default}\"\nlog_stream_name: \"{service.name}/{log.category}\"\n",
        )
        .expect("valid templates");
        assert_eq!(c.max_log_groups, 200);
        assert!(c.send_entity);
        let err = parse("log_group_name: \"/aws/{service.name\"\n").expect_err("unclosed");
        assert_eq!(
            err,
            "log_group_name `/aws/{service.name`: `{` at byte 5 is not closed by `}`"
        );
        let err = parse("log_group_name: g\nlog_stream_name: \"a:{x}\"\n").expect_err("colon");
        assert!(
            err.starts_with("log_stream_name `a:{x}`: `:` is not allowed"),
            "{err}"
        );
        let err = parse("log_group_name: g\ncategories:\n  audit: {log_group_name: \"a b\"}\n")
            .expect_err("space");
        assert!(
            err.starts_with("categories.audit.log_group_name `a b`"),
            "{err}"
        );
        assert!(parse("log_group_name: g\nmax_log_groups: 0\n").is_err());
    }

    #[test]
    fn unknown_options_and_missing_group_fail() {
        assert!(parse("log_group_name: g\nlog_groups: x\n").is_err());
        assert!(parse("region: us-east-1\n").is_err());
        assert!(parse("log_group_name: g\nmax_event_size: 2000000\n").is_err());
    }
}
