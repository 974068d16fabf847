//! The `awsemf` exporter: OTLP metrics as CloudWatch Embedded Metric Format documents.
//!
//! - `translate`: OTLP points into samples (per metric type, cumulative to delta, units,
//!   namespace, labels, cardinality guard);
//! - `documents`: samples into EMF documents within CloudWatch's limits (every split or
//!   truncation counted as `component_events{event=...}`, see `documents`' list);
//! - `delta`, `cardinality`, `units`: the state and tables behind `translate`;
//! - output: PutLogEvents through the shared `cloudwatch_logs` sink, or JSON lines on
//!   stdout (Lambda) or in a file.
//!
//! The `delta` and `cardinality` state grows with the number of series and metrics, not
//! with what is in flight: its estimated size is `exporter_held_bytes{component}`, which
//! the memory budget adds in like a processor's held bytes.
//!
//! The namespace of a point is the `aws.emf.namespace` attribute of the point, else of its
//! resource, else the `namespace` option: one exporter serves the monitoring guide's
//! `AuraStream/Application`, `AuraStream/Business`, `AuraStream/Customer` and
//! `AuraStream/Revenue` namespaces.
//!
//! Retries of failed PutLogEvents calls happen inside the sink and never hand the batch
//! back to the driver: the cumulative-to-delta state has already moved on, so a batch
//! translated twice would send zero deltas.

pub(crate) mod cardinality;
pub mod config;
pub(crate) mod delta;
pub(crate) mod documents;
pub(crate) mod translate;
pub(crate) mod units;

impl crate::component::factory::ExporterFactory for EmfExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Metrics]
    }

    fn validate(&self) -> Result<(), Invalid> {
        EmfExporterConfig::validate(self)
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
        Ok(std::sync::Arc::new(EmfExporter::new(
            ctx.id,
            self,
            ctx.metrics,
        )?))
    }
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use self::config::{EmfExporterConfig, OutputDestination};
use self::documents::{BuiltDocument, DimensionPolicy, EVENTS, build_documents};
use self::translate::Translator;
use crate::aws::cloudwatch_logs::marker::{self, Markers};
use crate::aws::cloudwatch_logs::now_ms;
use crate::aws::cloudwatch_logs::output::Output;
use crate::aws::cloudwatch_logs::request_builder::LogEvent;
use crate::aws::cloudwatch_logs::service::LogsService;
use crate::aws::cloudwatch_logs::sink::{self, DeliveryStats, PendingLogs};
use crate::aws::cloudwatch_logs::target::LogTarget;
use crate::aws::cloudwatch_logs::template::{Attributes, GroupLimit, NameKind, Router, Template};
use crate::component::reason::named_counts;
use crate::component::validate::Invalid;
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
    /// What was done to stay within CloudWatch's limits (`documents::EVENTS`), and how
    /// often; also counted on `/metrics`.
    pub events: BTreeMap<&'static str, usize>,
}

pub struct EmfExporter {
    id: String,
    config: EmfExporterConfig,
    translator: Translator,
    policy: DimensionPolicy,
    output: Output,
    /// `log_group_name`; names (and the group cap) are shared with `awscloudwatchlogs`.
    group: Template,
    router: Router,
    folded: Counter,
    /// What document building did to stay within CloudWatch's limits, by event.
    events: BTreeMap<&'static str, Counter>,
    /// Counted per document (one event each).
    stats: Arc<DeliveryStats>,
    /// What the translator's per-series and dimension state holds, for the memory budget.
    held_bytes: Gauge,
}

impl EmfExporter {
    /// Fails only on a configuration `validate` would also reject.
    pub fn new(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
    ) -> Result<EmfExporter, Invalid> {
        let output = match config.output_destination {
            OutputDestination::Api => Output::Api(Arc::new(LogsService::new(
                config.client_settings(),
                config.tags.clone().into_iter().collect(),
            ))),
            OutputDestination::Stdout => Output::Lines(LineWriter::Stdout),
            OutputDestination::File => Output::Lines(LineWriter::file(config.path.clone().ok_or(
                Invalid::Rule("path is required with output_destination: file"),
            )?)),
        };
        Self::with_output(id, config, metrics, output)
    }

    /// With a ready-made CloudWatch Logs service (tests use static credentials).
    pub fn with_service(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
        service: LogsService,
    ) -> Result<EmfExporter, Invalid> {
        Self::with_output(id, config, metrics, Output::Api(Arc::new(service)))
    }

    fn with_output(
        id: &str,
        config: &EmfExporterConfig,
        metrics: &Arc<SelfMetrics>,
        output: Output,
    ) -> Result<EmfExporter, Invalid> {
        // `initial_value: auto` compares start times with this (the client's clock with
        // ours: a client clock running ahead makes a first point look newer than it is).
        let started_unix_nano = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let held_bytes = metrics.exporter_held_bytes(id);
        Ok(EmfExporter {
            id: id.to_string(),
            translator: Translator::new(config, started_unix_nano, &held_bytes),
            held_bytes,
            policy: DimensionPolicy {
                rollup: config.dimension_rollup_option,
                declarations: config.compile_declarations()?,
                long_values: config.long_dimension_values,
            },
            config: config.clone(),
            output,
            group: Template::new(&config.log_group_name, NameKind::Group),
            router: Router::new(
                Template::new(&config.log_stream_name, NameKind::Stream),
                GroupLimit::new(
                    config.max_log_groups,
                    metrics.component_event(id, Signal::Metrics, "log_group_overflow"),
                ),
            ),
            folded: metrics.component_event(id, Signal::Metrics, "cardinality_folded"),
            events: EVENTS
                .iter()
                .map(|e| (*e, metrics.component_event(id, Signal::Metrics, e)))
                .collect(),
            stats: Arc::new(DeliveryStats::new(metrics, id, Signal::Metrics)),
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
        for (event, n) in &built.events {
            if let Some(counter) = self.events.get(event) {
                counter.inc_by(*n as u64);
            }
        }
        let mut dropped = t.dropped;
        for (reason, n) in built.dropped {
            *dropped.entry(reason).or_default() += n;
        }
        Documents {
            documents: built.documents,
            dropped,
            withheld: t.withheld,
            events: built.events,
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
            ..
        } = self.documents(resources);
        let mut dropped = translation_dropped;
        let withheld = named_counts(withheld);
        match &self.output {
            Output::Api(service) => {
                let report = ExportReport {
                    dropped: named_counts(dropped),
                    withheld,
                };
                self.send_to_cloudwatch(service, resources, docs, report, markers.as_ref())
                    .await
            }
            Output::Lines(writer) => {
                self.write_lines(writer, docs, &mut dropped).await;
                Ok(ExportReport {
                    dropped: named_counts(dropped),
                    withheld,
                })
            }
        }
    }

    /// Sends the documents. What CloudWatch does not take yet goes back to the driver as
    /// the PutLogEvents requests themselves: the documents cannot be rebuilt from the batch
    /// (the delta state has moved on), so they are retried as built.
    async fn send_to_cloudwatch(
        &self,
        service: &Arc<LogsService>,
        batch: &[aurastream_proto::otlp::metrics::ResourceMetrics],
        docs: Vec<BuiltDocument>,
        report: ExportReport,
        markers: Option<&Markers>,
    ) -> Result<ExportReport, ExportError> {
        let points: Arc<[usize]> = docs.iter().map(|d| d.points).collect();
        let mut by_target: BTreeMap<LogTarget, Vec<LogEvent>> = BTreeMap::new();
        for (i, d) in docs.into_iter().enumerate() {
            let resource = batch.get(d.resource).and_then(|r| r.resource.as_ref());
            let attrs = Attributes::resource(resource.map_or(&[], |r| r.attributes.as_slice()));
            let target = self
                .router
                .target(&self.group, &attrs, self.config.log_retention);
            by_target.entry(target).or_default().push(LogEvent {
                timestamp_ms: d.timestamp_ms,
                message: d.json,
                origin: i,
            });
        }
        let delivery = sink::deliver(service, by_target, markers).await;
        PendingLogs::settle(
            service.clone(),
            self.stats.clone(),
            points,
            delivery,
            report,
            std::collections::BTreeSet::new(),
        )
    }

    /// Writes documents as lines; a write failure drops them (the delta state has moved on,
    /// so they cannot be rebuilt by a retry) and is counted as `io_error`.
    async fn write_lines(
        &self,
        writer: &LineWriter,
        docs: Vec<BuiltDocument>,
        dropped: &mut BTreeMap<&'static str, usize>,
    ) {
        let points: usize = docs.iter().map(|d| d.points).sum();
        if let Err(e) = writer
            .write(docs.into_iter().map(|d| d.json).collect())
            .await
        {
            tracing::error!(error = %e, "writing EMF documents failed; dropped");
            self.stats.set_error(e.to_string());
            if points > 0 {
                *dropped.entry("io_error").or_default() += points;
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

    fn expire_idle(&self, now: Instant) {
        self.translator.expire_idle(now);
    }

    fn held_bytes_gauge(&self) -> Option<Gauge> {
        Some(self.held_bytes.clone())
    }
}
