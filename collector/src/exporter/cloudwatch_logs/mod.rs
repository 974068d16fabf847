//! The `awscloudwatchlogs` exporter: log records into CloudWatch Logs events (`format`),
//! sent through the shared transport in [`crate::aws::cloudwatch_logs`].

pub mod config;
pub mod format;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;

use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs};
use aurastream_proto::otlp::resource::Resource;

use self::config::CloudWatchLogsExporterConfig;
use crate::aws::cloudwatch_logs::marker::Markers;
use crate::aws::cloudwatch_logs::output::Output;
use crate::aws::cloudwatch_logs::request_builder::{Fitted, LogEvent, fit_event};
use crate::aws::cloudwatch_logs::service::LogsService;
use crate::aws::cloudwatch_logs::sink::{self, DeliveryStats, PendingLogs};
use crate::aws::cloudwatch_logs::target::{LogTarget, fill_placeholders};
use crate::component::{ExportError, ExportReport, Exporter, Provenance};
use crate::model::{Signal, SignalData};
use crate::output::{LineWriter, OutputDestination};
use crate::telemetry::metrics::SelfMetrics;

/// The `awscloudwatchlogs` exporter: log records into CloudWatch log events, routed to a log
/// group by their category.
pub struct CloudWatchLogsExporter {
    id: String,
    config: CloudWatchLogsExporterConfig,
    output: Output,
    trimmed: Counter,
    split: Counter,
    stats: Arc<DeliveryStats>,
}

impl CloudWatchLogsExporter {
    pub fn new(
        id: &str,
        config: &CloudWatchLogsExporterConfig,
        metrics: &Arc<SelfMetrics>,
    ) -> CloudWatchLogsExporter {
        let output = match (config.output_destination, &config.path) {
            (OutputDestination::Stdout, _) => Output::Lines(LineWriter::Stdout),
            (OutputDestination::File, Some(path)) => Output::Lines(LineWriter::file(path.clone())),
            // `validate` rejects `file` without a path; fall back to the API rather than
            // silently discarding.
            (OutputDestination::Api | OutputDestination::File, _) => {
                let tags = config.tags.clone().into_iter().collect();
                Output::Api(Arc::new(LogsService::new(config.client_settings(), tags)))
            }
        };
        Self::with_output(id, config, metrics, output)
    }

    /// With a ready-made service (tests use a client with static credentials).
    pub fn with_service(
        id: &str,
        config: &CloudWatchLogsExporterConfig,
        metrics: &Arc<SelfMetrics>,
        service: LogsService,
    ) -> CloudWatchLogsExporter {
        Self::with_output(id, config, metrics, Output::Api(Arc::new(service)))
    }

    fn with_output(
        id: &str,
        config: &CloudWatchLogsExporterConfig,
        metrics: &Arc<SelfMetrics>,
        output: Output,
    ) -> CloudWatchLogsExporter {
        CloudWatchLogsExporter {
            id: id.to_string(),
            config: config.clone(),
            output,
            trimmed: metrics.component_event(id, Signal::Logs, "event_trimmed"),
            split: metrics.component_event(id, Signal::Logs, "event_split"),
            stats: Arc::new(DeliveryStats::new(metrics, id, Signal::Logs)),
        }
    }

    /// Sends log records; with `markers`, every PutLogEvents request carries a delivery
    /// marker and (on replay) is skipped if CloudWatch already holds it.
    async fn send(
        &self,
        batch: &SignalData,
        markers: Option<Markers>,
    ) -> Result<ExportReport, ExportError> {
        let SignalData::Logs(resources) = batch else {
            return Err(ExportError::permanent(
                "unsupported_signal",
                format!("awscloudwatchlogs takes logs, not {}", batch.signal()),
            ));
        };
        let (by_target, empty) = self.events(resources);
        let service = match &self.output {
            Output::Api(service) => service,
            Output::Lines(writer) => {
                // No state depends on this batch, so a failed write can simply be retried.
                let dropped = if empty > 0 {
                    vec![("empty_message".to_string(), empty)]
                } else {
                    Vec::new()
                };
                return writer
                    .write(as_lines(by_target))
                    .await
                    .map(|()| ExportReport {
                        dropped,
                        ..ExportReport::default()
                    })
                    .map_err(|e| ExportError::retryable("io", e.to_string()));
            }
        };
        let records = by_target
            .values()
            .flatten()
            .map(|e| e.origin + 1)
            .max()
            .unwrap_or(0);
        let delivery = sink::deliver(service, by_target, markers.as_ref()).await;
        let mut report = ExportReport::default();
        if empty > 0 {
            report.dropped.push(("empty_message".into(), empty));
        }
        PendingLogs::settle(
            service.clone(),
            self.stats.clone(),
            vec![1; records].into(),
            delivery,
            report,
            BTreeSet::new(),
        )
    }

    /// The group, stream and retention for one record: its category's group if the
    /// category is configured, else the default group.
    fn route(&self, record: &LogRecord, resource: Option<&Resource>) -> LogTarget {
        let category = format::attribute(record, resource, &self.config.category_attribute)
            .and_then(|c| self.config.categories.get(&c.to_ascii_lowercase()));
        let (group, retention_days) = match category {
            Some(c) => (c.log_group_name.as_str(), c.retention_in_days),
            None => (
                self.config.log_group_name.as_str(),
                self.config.log_retention,
            ),
        };
        LogTarget {
            group: fill_placeholders(group, resource),
            stream: fill_placeholders(&self.config.log_stream_name, resource),
            retention_days,
        }
    }

    /// Every record as log events per target, in input order (`origin` = the record's
    /// position), plus how many records had an empty message and were left out.
    fn events(&self, resources: &[ResourceLogs]) -> (BTreeMap<LogTarget, Vec<LogEvent>>, usize) {
        let now = now_ms();
        let mut by_target: BTreeMap<LogTarget, Vec<LogEvent>> = BTreeMap::new();
        let mut origin = 0usize;
        let mut empty = 0usize;
        for r in resources {
            let resource = r.resource.as_ref();
            for s in &r.scope_logs {
                for record in &s.log_records {
                    let target = self.route(record, resource);
                    let message = format::record_message(record, resource, self.config.raw_log);
                    if message.is_empty() {
                        // CloudWatch rejects a whole request containing an empty message.
                        empty += 1;
                        origin += 1;
                        continue;
                    }
                    let ts = format::record_timestamp_ms(record, now);
                    let (events, fitted) =
                        fit_event(ts, message, origin, self.config.max_event_size);
                    match fitted {
                        Fitted::AsIs => {}
                        Fitted::Trimmed => {
                            self.trimmed.inc();
                        }
                        Fitted::Split(_) => {
                            self.split.inc();
                        }
                    }
                    by_target.entry(target).or_default().extend(events);
                    origin += 1;
                }
            }
        }
        (by_target, empty)
    }
}

/// The events as JSON lines that say where each would have gone, in sending order.
fn as_lines(by_target: BTreeMap<LogTarget, Vec<LogEvent>>) -> Vec<String> {
    let mut lines = Vec::new();
    for (target, events) in by_target {
        for batch in crate::aws::cloudwatch_logs::request_builder::build_batches(events) {
            for e in batch {
                lines.push(
                    serde_json::json!({
                        "logGroupName": target.group,
                        "logStreamName": target.stream,
                        "timestamp": e.timestamp_ms,
                        "message": e.message,
                    })
                    .to_string(),
                );
            }
        }
    }
    lines
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Exporter for CloudWatchLogsExporter {
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Logs]
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        self.send(batch, None).await
    }

    async fn export_queued(
        &self,
        batch: &SignalData,
        provenance: Provenance,
    ) -> Result<ExportReport, ExportError> {
        let markers = crate::aws::cloudwatch_logs::marker::for_queued(
            self.config.delivery_markers,
            &self.config.sending_queue,
            &self.id,
            provenance,
        );
        self.send(batch, markers).await
    }

    async fn flush(&self) -> Result<(), ExportError> {
        self.output.flush().await
    }

    fn health_detail(&self) -> Option<String> {
        self.stats.health_detail()
    }
}
