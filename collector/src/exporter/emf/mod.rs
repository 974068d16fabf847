//! The `awsemf` exporter: OTLP metrics as CloudWatch Embedded Metric Format documents.
//!
//! - `translate`: OTLP points into samples (per metric type, cumulative to delta, units,
//!   namespace, labels, cardinality guard);
//! - `documents`: samples into EMF documents within CloudWatch's limits;
//! - `delta`, `cardinality`, `units`: the state and tables behind `translate`;
//! - output: PutLogEvents through the shared `cloudwatch_logs` sink, or JSON lines on
//!   stdout (Lambda) or in a file.
//!
//! The namespace of a point is the `aws.emf.namespace` attribute of the point, else of its
//! resource, else the `namespace` option: one exporter serves the monitoring guide's
//! `AuraStream/Application`, `AuraStream/Business`, `AuraStream/Customer` and
//! `AuraStream/Revenue` namespaces.
//!
//! Retries of failed PutLogEvents calls happen inside the sink and never hand the batch
//! back to the driver: the cumulative-to-delta state has already moved on, so a batch
//! translated twice would send zero deltas.

pub mod cardinality;
pub mod config;
pub mod delta;
pub mod documents;
pub mod translate;
pub mod units;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;

use self::config::{EmfExporterConfig, OutputDestination};
use self::documents::{BuiltDocument, DimensionPolicy, build_documents};
use self::translate::Translator;
use super::cloudwatch_logs::now_ms;
use crate::aws::cloudwatch_logs::marker::{self, Markers};
use crate::aws::cloudwatch_logs::output::Output;
use crate::aws::cloudwatch_logs::request_builder::LogEvent;
use crate::aws::cloudwatch_logs::service::LogsService;
use crate::aws::cloudwatch_logs::sink;
use crate::aws::cloudwatch_logs::target::{LogTarget, fill_placeholders};
use crate::component::{ExportError, ExportReport, Exporter, Provenance};
use crate::model::{Signal, SignalData};
use crate::output::LineWriter;
use crate::telemetry::metrics::SelfMetrics;

/// A batch as EMF documents, and the points that did not become part of one.
#[derive(Debug)]
pub struct Documents {
    pub documents: Vec<BuiltDocument>,
    /// Points lost, by reason: counted as failed.
    pub dropped: BTreeMap<&'static str, usize>,
    /// Points withheld with nothing lost (cumulative baselines), by reason: not failures.
    pub withheld: BTreeMap<&'static str, usize>,
}

pub struct EmfExporter {
    id: String,
    config: EmfExporterConfig,
    translator: Translator,
    policy: DimensionPolicy,
    output: Output,
    folded: Counter,
    split: Counter,
    /// Counted per document (one event each).
    stats: sink::DeliveryStats,
}

impl EmfExporter {
    /// Fails only on a configuration `validate` would also reject.
    pub fn new(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
    ) -> Result<EmfExporter, String> {
        let output = match config.output_destination {
            OutputDestination::Api => Output::Api(LogsService::new(
                config.client_settings(),
                config.tags.clone().into_iter().collect(),
            )),
            OutputDestination::Stdout => Output::Lines(LineWriter::Stdout),
            OutputDestination::File => Output::Lines(LineWriter::file(
                config
                    .path
                    .clone()
                    .ok_or("path is required with output_destination: file")?,
            )),
        };
        Self::with_output(id, config, metrics, output)
    }

    /// With a ready-made CloudWatch Logs service (tests use static credentials).
    pub fn with_service(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
        service: LogsService,
    ) -> Result<EmfExporter, String> {
        Self::with_output(id, config, metrics, Output::Api(service))
    }

    fn with_output(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
        output: Output,
    ) -> Result<EmfExporter, String> {
        Ok(EmfExporter {
            id: id.to_string(),
            translator: Translator::new(config),
            policy: DimensionPolicy {
                rollup: config.dimension_rollup_option,
                declarations: config.compile_declarations()?,
            },
            config: config.clone(),
            output,
            folded: metrics.component_event(id, Signal::Metrics, "cardinality_folded"),
            split: metrics.component_event(id, Signal::Metrics, "event_split"),
            stats: sink::DeliveryStats::new(metrics, id, Signal::Metrics),
        })
    }

    /// Translates a batch into documents, counting what could not be represented.
    pub fn documents(
        &self,
        batch: &[aurastream_proto::otlp::metrics::ResourceMetrics],
    ) -> Documents {
        let t = self.translator.translate(batch, Instant::now(), now_ms());
        self.folded.inc_by(t.folded as u64);
        let built = build_documents(
            t.samples,
            &t.properties,
            &self.policy,
            self.config.max_event_size,
        );
        self.split.inc_by(built.splits as u64);
        let mut dropped = t.dropped;
        for (reason, n) in built.dropped {
            *dropped.entry(reason).or_default() += n;
        }
        Documents {
            documents: built.documents,
            dropped,
            withheld: t.withheld,
        }
    }

    /// Translates and sends a batch; with `markers`, every PutLogEvents request carries a
    /// delivery marker and (on replay) is skipped if CloudWatch already holds it.
    async fn send(
        &self,
        batch: &SignalData,
        markers: Option<Markers>,
    ) -> Result<ExportReport, ExportError> {
        let SignalData::Metrics(resources) = batch else {
            return Err(ExportError::permanent(
                "unsupported_signal",
                format!("awsemf takes metrics, not {}", batch.signal()),
            ));
        };
        let Documents {
            documents: docs,
            dropped: translation_dropped,
            withheld,
        } = self.documents(resources);
        let mut dropped: BTreeMap<String, usize> = translation_dropped
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect();
        match &self.output {
            Output::Api(service) => {
                self.send_to_cloudwatch(service, resources, docs, &mut dropped, markers.as_ref())
                    .await
            }
            Output::Lines(writer) => self.write_lines(writer, docs, &mut dropped).await,
        }
        Ok(ExportReport {
            dropped: dropped.into_iter().collect(),
            withheld: withheld
                .into_iter()
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
        })
    }

    async fn send_to_cloudwatch(
        &self,
        service: &LogsService,
        batch: &[aurastream_proto::otlp::metrics::ResourceMetrics],
        docs: Vec<BuiltDocument>,
        dropped: &mut BTreeMap<String, usize>,
        markers: Option<&Markers>,
    ) {
        let points: Vec<usize> = docs.iter().map(|d| d.points).collect();
        let mut by_target: BTreeMap<LogTarget, Vec<LogEvent>> = BTreeMap::new();
        for (i, d) in docs.into_iter().enumerate() {
            let resource = batch.get(d.resource).and_then(|r| r.resource.as_ref());
            let target = LogTarget {
                group: fill_placeholders(&self.config.log_group_name, resource),
                stream: fill_placeholders(&self.config.log_stream_name, resource),
                retention_days: self.config.log_retention,
            };
            by_target.entry(target).or_default().push(LogEvent {
                timestamp_ms: d.timestamp_ms,
                message: d.json,
                origin: i,
            });
        }
        let delivery =
            sink::deliver(service, &self.config.retry_on_failure, by_target, markers).await;
        self.stats.record(&delivery);
        for (origin, reason) in delivery.dropped.iter().chain(&delivery.undelivered) {
            let n = points.get(*origin).copied().unwrap_or(0);
            if n > 0 {
                *dropped.entry(reason.clone()).or_default() += n;
            }
        }
    }

    /// Writes documents as lines; a write failure drops them (the delta state has moved on,
    /// so they cannot be rebuilt by a retry) and is counted as `io_error`.
    async fn write_lines(
        &self,
        writer: &LineWriter,
        docs: Vec<BuiltDocument>,
        dropped: &mut BTreeMap<String, usize>,
    ) {
        let points: usize = docs.iter().map(|d| d.points).sum();
        if let Err(e) = writer
            .write(docs.into_iter().map(|d| d.json).collect())
            .await
        {
            tracing::error!(error = %e, "writing EMF documents failed; dropped");
            self.stats.set_error(e.to_string());
            if points > 0 {
                *dropped.entry("io_error".into()).or_default() += points;
            }
        }
    }
}

#[async_trait]
impl Exporter for EmfExporter {
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Metrics]
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        self.send(batch, None).await
    }

    async fn export_queued(
        &self,
        batch: &SignalData,
        provenance: Provenance,
    ) -> Result<ExportReport, ExportError> {
        let markers = marker::for_queued(
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
