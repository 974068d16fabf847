//! The `awscloudwatchlogs` exporter: log records into CloudWatch Logs events (`format`),
//! sent through the shared transport in [`crate::aws::cloudwatch_logs`], to groups and
//! streams named by its templates (`template`), with the resource's service as the
//! requests' entity (`entity`).

pub mod config;
pub(crate) mod format;

impl crate::component::factory::ExporterFactory for CloudWatchLogsExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Logs]
    }

    fn validate(&self) -> Result<(), Invalid> {
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
        Ok(std::sync::Arc::new(CloudWatchLogsExporter::new(
            ctx.id,
            self,
            ctx.metrics,
        )))
    }
}

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;

use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs};
use aurastream_proto::otlp::resource::Resource;

use self::config::CloudWatchLogsExporterConfig;
use crate::aws::cloudwatch_logs::entity::LogEntity;
use crate::aws::cloudwatch_logs::marker::Markers;
use crate::aws::cloudwatch_logs::now_ms;
use crate::aws::cloudwatch_logs::output::Output;
use crate::aws::cloudwatch_logs::request_builder::{Fitted, LogEvent, fit_event};
use crate::aws::cloudwatch_logs::routing::CategoryRouter;
use crate::aws::cloudwatch_logs::service::LogsService;
use crate::aws::cloudwatch_logs::sink::{self, DeliveryStats, PendingLogs};
use crate::aws::cloudwatch_logs::target::LogTarget;
use crate::component::validate::Invalid;
use crate::component::{ExportError, ExportReport, Exporter, Provenance, Reason};
use crate::model::{Signal, SignalData};
use crate::output::{LineWriter, OutputDestination};
use crate::telemetry::metrics::SelfMetrics;

/// The `awscloudwatchlogs` exporter: log records into CloudWatch log events, routed to a log
/// group by their category.
pub struct CloudWatchLogsExporter {
    id: String,
    config: CloudWatchLogsExporterConfig,
    output: Output,
    /// Each record's group and stream (shared with `otlphttp`).
    router: CategoryRouter,
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
            router: CategoryRouter::new(
                &config.log_group_name,
                config.log_retention,
                &config.category_attribute,
                &config.categories,
                &config.log_stream_name,
                config.max_log_groups,
                metrics.component_event(id, Signal::Logs, "log_group_overflow"),
            ),
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
                    vec![(Reason::Named("empty_message"), empty)]
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
            report.dropped.push((Reason::Named("empty_message"), empty));
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
    /// category is configured, else the default group; `entity` is its resource's.
    fn route(
        &self,
        record: &LogRecord,
        resource: Option<&Resource>,
        entity: Option<&Arc<LogEntity>>,
    ) -> LogTarget {
        LogTarget {
            entity: entity.cloned(),
            ..self.router.route(record, resource)
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
            let entity = resource
                .filter(|_| self.config.send_entity)
                .and_then(|r| LogEntity::of_resource(&r.attributes))
                .map(Arc::new);
            for s in &r.scope_logs {
                for record in &s.log_records {
                    let target = self.route(record, resource, entity.as_ref());
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

/// The events as JSON lines that say where each would have gone (and with which entity),
/// in sending order.
fn as_lines(by_target: BTreeMap<LogTarget, Vec<LogEvent>>) -> Vec<String> {
    let mut lines = Vec::new();
    for (target, events) in by_target {
        let entity = target.entity.as_ref().map(|e| e.to_json());
        for batch in crate::aws::cloudwatch_logs::request_builder::build_batches(events) {
            for e in batch {
                let mut line = serde_json::json!({
                    "logGroupName": target.group,
                    "logStreamName": target.stream,
                    "timestamp": e.timestamp_ms,
                    "message": e.message,
                });
                if let Some(entity) = &entity {
                    line["entity"] = entity.clone();
                }
                lines.push(line.to_string());
            }
        }
    }
    lines
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
