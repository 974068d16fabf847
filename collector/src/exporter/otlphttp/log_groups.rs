//! `log_groups`: for CloudWatch Logs' OTLP endpoint, which stores a request's records in
//! the group and stream its `x-aws-log-group` / `x-aws-log-stream` headers name and does
//! not create them. Each record is routed as `awscloudwatchlogs` routes it (its
//! `log.category`, the seed's groups and retention: the shared
//! [`crate::aws::cloudwatch_logs::routing`]), the records of one group and stream go in
//! one request with those headers, and a group and stream are created on first use
//! (CreateLogGroup, PutRetentionPolicy, CreateLogStream) with the CloudWatch Logs API.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use aurastream_proto::otlp::logs::{ResourceLogs, ScopeLogs};

use crate::aws::cloudwatch_logs::retry::ErrorClass;
use crate::aws::cloudwatch_logs::routing::{
    CategoryConfig, CategoryRouter, seed_categories, validate_routing,
};
use crate::aws::cloudwatch_logs::service::{ClientSettings, LogsService};
use crate::aws::cloudwatch_logs::target::LogTarget;
use crate::aws::cloudwatch_logs::template::DEFAULT_MAX_LOG_GROUPS;
use crate::component::ExportError;
use crate::component::validate::Invalid;
use crate::model::Signal;
use crate::telemetry::metrics::SelfMetrics;

/// ```yaml
/// log_groups:
///   log_group_name: /aws/aurastream/application   # records with no known category
///   log_stream_name: "{ServiceName}"
///   log_retention: 30                  # days, for the default group; 0 = never expire
///   category_attribute: log.category
///   categories: { audit: { log_group_name: /aws/aurastream/audit, retention_in_days: 2557 } }
///   max_log_groups: 200
///   region: us-east-1                  # CloudWatch Logs API for creating; default: the chain
///   endpoint: http://127.0.0.1:5000    # e.g. moto
/// ```
///
/// The options mean what they mean on `awscloudwatchlogs`; `categories` defaults to the
/// monitoring guide's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogGroupsConfig {
    pub log_group_name: String,
    pub log_stream_name: String,
    pub log_retention: u32,
    pub category_attribute: String,
    pub categories: BTreeMap<String, CategoryConfig>,
    pub max_log_groups: usize,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

impl Default for LogGroupsConfig {
    fn default() -> Self {
        LogGroupsConfig {
            log_group_name: "/aws/aurastream/application".into(),
            log_stream_name: "{ServiceName}".into(),
            // The default group is the seed's application group: its retention.
            log_retention: 30,
            category_attribute: "log.category".into(),
            categories: seed_categories(),
            max_log_groups: DEFAULT_MAX_LOG_GROUPS,
            region: None,
            endpoint: None,
        }
    }
}

impl LogGroupsConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_routing(
            &self.log_group_name,
            &self.log_stream_name,
            self.log_retention,
            &self.categories,
        )?;
        if self.max_log_groups == 0 {
            return Err("max_log_groups must be at least 1".into());
        }
        Ok(())
    }
}

/// Routing and creation for one exporter.
pub struct LogGroups {
    router: CategoryRouter,
    service: LogsService,
    /// Groups and streams known to exist (created, or found existing).
    ready: Mutex<HashSet<(String, String)>>,
}

impl LogGroups {
    pub fn new(
        config: &LogGroupsConfig,
        id: &str,
        metrics: &SelfMetrics,
        timeout: Duration,
    ) -> LogGroups {
        LogGroups::with_service(
            config,
            id,
            metrics,
            LogsService::new(
                ClientSettings {
                    region: config.region.clone(),
                    endpoint: config.endpoint.clone(),
                    timeout,
                },
                Default::default(),
            ),
        )
    }

    /// With a ready-made CloudWatch Logs client (tests use static credentials).
    pub fn with_service(
        config: &LogGroupsConfig,
        id: &str,
        metrics: &SelfMetrics,
        service: LogsService,
    ) -> LogGroups {
        LogGroups {
            router: CategoryRouter::new(
                &config.log_group_name,
                config.log_retention,
                &config.category_attribute,
                &config.categories,
                &config.log_stream_name,
                config.max_log_groups,
                metrics.component_event(id, Signal::Logs, "log_group_overflow"),
            ),
            service,
            ready: Mutex::new(HashSet::new()),
        }
    }

    /// The batch's records per group and stream, each keeping its resource and scope, in
    /// input order within a target.
    pub fn split(&self, resources: &[ResourceLogs]) -> Vec<(LogTarget, Vec<ResourceLogs>)> {
        // Per target: its records so far, and the (resource, scope) of the last one.
        let mut by_target: BTreeMap<LogTarget, (Vec<ResourceLogs>, (usize, usize))> =
            BTreeMap::new();
        for (ri, r) in resources.iter().enumerate() {
            for (si, s) in r.scope_logs.iter().enumerate() {
                for record in &s.log_records {
                    let target = self.router.route(record, r.resource.as_ref());
                    let (out, last) = by_target
                        .entry(target)
                        .or_insert_with(|| (Vec::new(), (usize::MAX, usize::MAX)));
                    if last.0 != ri {
                        out.push(ResourceLogs {
                            resource: r.resource.clone(),
                            scope_logs: Vec::new(),
                            schema_url: r.schema_url.clone(),
                        });
                    }
                    let resource = out.last_mut().expect("a resource was just ensured");
                    if *last != (ri, si) {
                        resource.scope_logs.push(ScopeLogs {
                            scope: s.scope.clone(),
                            log_records: Vec::new(),
                            schema_url: s.schema_url.clone(),
                        });
                    }
                    *last = (ri, si);
                    let scope = resource
                        .scope_logs
                        .last_mut()
                        .expect("a scope was just ensured");
                    scope.log_records.push(record.clone());
                }
            }
        }
        by_target
            .into_iter()
            .map(|(target, (out, _))| (target, out))
            .collect()
    }

    /// Creates `target`'s group (with its retention) and stream unless known to exist.
    pub async fn ensure(&self, target: &LogTarget) -> Result<(), ExportError> {
        let key = (target.group.clone(), target.stream.clone());
        if self
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        self.service
            .create(target)
            .await
            .map_err(|e| match e.class {
                ErrorClass::Permanent(reason) => ExportError::permanent(
                    reason,
                    format!(
                        "creating log group {} / stream {}: {}",
                        target.group, target.stream, e.message
                    ),
                ),
                _ => ExportError::retryable(
                    "log_group_creation",
                    format!(
                        "creating log group {} / stream {}: {}",
                        target.group, target.stream, e.message
                    ),
                ),
            })?;
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        Ok(())
    }
}
