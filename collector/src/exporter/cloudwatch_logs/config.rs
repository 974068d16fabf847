//! Options of the `awscloudwatchlogs` exporter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::aws::cloudwatch_logs::request_builder::{
    DEFAULT_MAX_EVENT_SIZE, HARD_MAX_EVENT_SIZE, MIN_EVENT_SIZE,
};
use crate::aws::cloudwatch_logs::service::ClientSettings;
use crate::aws::cloudwatch_logs::target::validate_retention;
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::output::OutputDestination;

/// ```yaml
/// exporters:
///   awscloudwatchlogs:
///     region: us-east-1                 # default: the standard chain (AWS_REGION, profile, IMDS)
///     endpoint: http://127.0.0.1:5000   # default: the regional endpoint (set for moto)
///     log_group_name: /aws/aurastream/application   # records with no known category
///     log_stream_name: "{ServiceName}"   # placeholders: {ServiceName} {ServiceNamespace}
///                                        #   {TaskId} {TaskDefinitionFamily} {ClusterName}
///                                        #   {ContainerInstanceId} {FunctionName} {InstanceId}
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
///     path: ./aurastream-data/logs.jsonl #   {logGroupName, logStreamName, timestamp, message})
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

/// Where the records of one log category go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub log_group_name: String,
    #[serde(default)]
    pub retention_in_days: u32,
}

/// The monitoring guide's log categories and retention (`7 years` = 2557 days, the nearest
/// value CloudWatch accepts; `1 year` = 365 days).
pub fn seed_categories() -> BTreeMap<String, CategoryConfig> {
    [
        ("security", 2557),
        ("audit", 2557),
        ("application", 30),
        ("performance", 90),
        ("business", 365),
    ]
    .into_iter()
    .map(|(name, days)| {
        (
            name.to_string(),
            CategoryConfig {
                log_group_name: format!("/aws/aurastream/{name}"),
                retention_in_days: days,
            },
        )
    })
    .collect()
}

impl Default for CloudWatchLogsExporterConfig {
    fn default() -> Self {
        CloudWatchLogsExporterConfig {
            output_destination: OutputDestination::Api,
            path: None,
            region: None,
            endpoint: None,
            log_group_name: String::new(),
            log_stream_name: "{ServiceName}".into(),
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
    pub fn validate(&self) -> Result<(), String> {
        if self.log_group_name.is_empty() {
            return Err("log_group_name is required".into());
        }
        if self.output_destination == OutputDestination::File && self.path.is_none() {
            return Err("path is required with output_destination: file".into());
        }
        if self.log_stream_name.is_empty() {
            return Err("log_stream_name must not be empty".into());
        }
        validate_retention(self.log_retention).map_err(|e| format!("log_retention: {e}"))?;
        for (name, c) in &self.categories {
            if c.log_group_name.is_empty() {
                return Err(format!(
                    "categories.{name}.log_group_name must not be empty"
                ));
            }
            validate_retention(c.retention_in_days)
                .map_err(|e| format!("categories.{name}.retention_in_days: {e}"))?;
        }
        validate_event_size(self.max_event_size)
    }

    pub fn client_settings(&self) -> ClientSettings {
        ClientSettings {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        }
    }
}

pub fn validate_event_size(size: usize) -> Result<(), String> {
    if !(MIN_EVENT_SIZE..=HARD_MAX_EVENT_SIZE).contains(&size) {
        return Err(format!(
            "max_event_size must be between {MIN_EVENT_SIZE} and {HARD_MAX_EVENT_SIZE} bytes (CloudWatch's hard limit), got {size}"
        ));
    }
    Ok(())
}

impl crate::component::factory::Registered for CloudWatchLogsExporterConfig {
    const TYPE: &'static str = "awscloudwatchlogs";
}

impl crate::component::factory::ExporterFactory for CloudWatchLogsExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Logs]
    }

    fn validate(&self) -> Result<(), String> {
        CloudWatchLogsExporterConfig::validate(self)
    }

    fn delivery(
        &self,
    ) -> (
        &crate::component::RetryConfig,
        &crate::component::SendingQueueConfig,
    ) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    fn output_file(&self) -> Option<&std::path::Path> {
        (self.output_destination == OutputDestination::File)
            .then_some(self.path.as_deref())
            .flatten()
    }

    fn build(
        &self,
        ctx: &crate::component::factory::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, crate::component::factory::BuildError>
    {
        Ok(std::sync::Arc::new(super::CloudWatchLogsExporter::new(
            ctx.id,
            self,
            ctx.metrics,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<CloudWatchLogsExporterConfig, String> {
        let c: CloudWatchLogsExporterConfig =
            serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate()?;
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
    fn unknown_options_and_missing_group_fail() {
        assert!(parse("log_group_name: g\nlog_groups: x\n").is_err());
        assert!(parse("region: us-east-1\n").is_err());
        assert!(parse("log_group_name: g\nmax_event_size: 2000000\n").is_err());
    }
}
