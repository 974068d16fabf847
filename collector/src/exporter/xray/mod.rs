//! The `awsxray` exporter: spans as AWS X-Ray segment documents.
//!
//! Every span becomes one document ([`translate`]), trimmed to X-Ray's 64 KB limit
//! ([`trim`]), and goes to `PutTraceSegments` ([`service`]) in calls of at most 50
//! documents ([`batch`]), several calls at a time. Documents X-Ray leaves unprocessed and
//! calls that were throttled or hit a server error ([`retry`] classifies them) go back to
//! the pipeline driver as the documents themselves, which it sends again after its backoff
//! without translating anything twice; documents refused for good are reported as
//! dropped with the AWS error code. With `output_destination: stdout` or `file` the same
//! documents are written one per line instead. Spans that came in as X-Ray documents (the
//! `awsxray` receiver) carry their document and it is sent unchanged ([`original`]).

mod batch;
pub mod config;
mod original;
mod retry;
mod service;
mod translate;
mod trim;

impl crate::component::factory::ExporterFactory for XrayExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Traces]
    }

    fn validate(&self) -> Result<(), Invalid> {
        XrayExporterConfig::validate(self)
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
        if let Some(max_retries) = self.max_retries {
            tracing::warn!(
                exporter = %ctx.id,
                max_retries,
                "max_retries is ignored: retry_on_failure governs every retry of this exporter"
            );
        }
        Ok(std::sync::Arc::new(XrayExporter::new(
            ctx.id,
            self,
            ctx.metrics,
        )))
    }
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;

use aurastream_proto::otlp::trace::ResourceSpans;

pub use self::original::SEGMENT_DOCUMENT_ATTRIBUTE;

use self::config::{OutputDestination, XrayExporterConfig};
use self::retry::Class;
use self::service::{CallError, Unprocessed, XrayService};
use self::translate::Translator;
use crate::component::reason::named_counts;
use crate::component::validate::Invalid;
use crate::component::{ExportError, ExportReport, Exporter, Pending, Reason};
use crate::model::{Signal, SignalData};
use crate::output::LineWriter;
use crate::telemetry::metrics::SelfMetrics;

/// One span's document, serialized and within the size limit.
struct Document {
    id: String,
    body: String,
}

/// What one round of calls did with a set of documents.
#[derive(Default)]
struct Delivery {
    /// Documents worth sending again (throttled, server errors, unprocessed).
    pending: Vec<Document>,
    /// Documents X-Ray refused for good, by AWS error code.
    refused: BTreeMap<Reason, usize>,
    /// The last error seen (code, message), to explain a retry or a failure.
    last_error: Option<(Reason, String)>,
    /// Documents resent after a call X-Ray may have applied (timeout, broken connection).
    /// X-Ray keeps one segment per id, and a resent document is identical, so these are
    /// overwritten rather than doubled; counted so that stores which keep every copy can be
    /// checked against it.
    possibly_duplicated: usize,
}

impl Delivery {
    /// Sorts the documents of one finished call into delivered, to retry and refused.
    fn record(&mut self, call: Vec<Document>, result: Result<Vec<Unprocessed>, CallError>) {
        match result {
            Ok(unprocessed) => {
                let mut candidates = call;
                for u in unprocessed {
                    let Some(pos) = candidates.iter().position(|d| d.id == u.id) else {
                        tracing::warn!(id = %u.id,
                            "X-Ray reported an unknown segment id as unprocessed");
                        continue;
                    };
                    let document = candidates.swap_remove(pos);
                    let code = u
                        .code
                        .as_deref()
                        .map_or(Reason::Named("unprocessed"), Reason::destination);
                    let message = u.message.unwrap_or_default();
                    if retry::classify_unprocessed(u.code.as_deref()) == Class::Permanent {
                        tracing::warn!(id = %u.id, %code, %message,
                            "X-Ray refused a segment document");
                        *self.refused.entry(code.clone()).or_default() += 1;
                    } else {
                        self.pending.push(document);
                    }
                    self.last_error = Some((code, message));
                }
            }
            Err(e) if e.class == Class::Permanent => {
                tracing::error!(documents = call.len(), error = %e,
                    "PutTraceSegments failed permanently");
                *self.refused.entry(e.code.clone()).or_default() += call.len();
                self.last_error = Some((e.code, e.message));
            }
            Err(e) => {
                tracing::debug!(documents = call.len(), error = %e,
                    "PutTraceSegments failed; kept for a retry");
                if e.maybe_delivered {
                    self.possibly_duplicated += call.len();
                }
                self.pending.extend(call);
                self.last_error = Some((e.code, e.message));
            }
        }
    }
}

enum Output {
    Xray(Arc<XrayService>),
    Lines {
        writer: LineWriter,
        /// Where the lines go, for `/health`.
        label: String,
    },
}

pub struct XrayExporter {
    translator: Translator,
    output: Output,
    sender: Sender,
    /// Documents that had parts removed to fit in 64 KB.
    trimmed: Counter,
}

/// What sends documents to PutTraceSegments: shared by the exporter and the retries it
/// hands to the driver.
#[derive(Clone)]
struct Sender {
    num_workers: usize,
    /// Documents resent after a failure X-Ray may have applied anyway.
    possibly_duplicated: Counter,
}

impl XrayExporter {
    pub fn new(id: &str, config: &XrayExporterConfig, metrics: &SelfMetrics) -> XrayExporter {
        let output = match config.output_destination {
            OutputDestination::Api => Output::Xray(Arc::new(XrayService::new(
                config.region.clone(),
                config.endpoint.clone(),
                config.request_timeout(),
            ))),
            OutputDestination::Stdout => Output::Lines {
                writer: LineWriter::Stdout,
                label: "stdout".into(),
            },
            OutputDestination::File => {
                let path = config.path.clone().unwrap_or_default();
                Output::Lines {
                    label: path.display().to_string(),
                    writer: LineWriter::file(path),
                }
            }
        };
        XrayExporter {
            translator: Translator::new(config),
            output,
            sender: Sender {
                num_workers: config.num_workers.max(1),
                possibly_duplicated: metrics.component_event(
                    id,
                    Signal::Traces,
                    "possibly_duplicated",
                ),
            },
            trimmed: metrics.component_event(id, Signal::Traces, "document_trimmed"),
        }
    }

    /// Uses `sdk` (credentials, region, HTTP client) instead of the standard AWS chain; for
    /// embedding and tests. `region` and `endpoint` options still apply on top.
    pub fn with_sdk_config(mut self, sdk: aws_types::SdkConfig) -> XrayExporter {
        self.output = match self.output {
            Output::Xray(service) => match Arc::try_unwrap(service) {
                Ok(service) => Output::Xray(Arc::new(service.with_sdk_config(sdk))),
                Err(shared) => Output::Xray(shared),
            },
            lines => lines,
        };
        self
    }

    /// Turns every span into a document; spans that cannot be sent are counted by reason.
    fn translate_batch(
        &self,
        batch: &[ResourceSpans],
    ) -> (Vec<Document>, BTreeMap<&'static str, usize>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut documents = Vec::new();
        let mut dropped: BTreeMap<&'static str, usize> = BTreeMap::new();
        for rs in batch {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    if let Some((id, body)) = original::document(span) {
                        documents.push(Document {
                            id,
                            body: body.to_owned(),
                        });
                        continue;
                    }
                    let mut doc = match self.translator.translate(rs.resource.as_ref(), span, now) {
                        Ok(doc) => doc,
                        Err(skip) => {
                            tracing::debug!(reason = skip.reason(), span = %span.name,
                                "span not exported to X-Ray");
                            *dropped.entry(skip.reason()).or_default() += 1;
                            continue;
                        }
                    };
                    match trim::fit(&mut doc) {
                        Ok((body, trimmed)) => {
                            if trimmed {
                                self.trimmed.inc();
                            }
                            documents.push(Document { id: doc.id, body });
                        }
                        Err(e) => {
                            tracing::warn!(span = %span.name, error = %e, "span dropped");
                            *dropped.entry("document_too_large").or_default() += 1;
                        }
                    }
                }
            }
        }
        (documents, dropped)
    }
}

impl Sender {
    /// One round of calls (at most 50 documents each, `num_workers` at a time) over
    /// `documents`.
    async fn round(&self, service: &XrayService, documents: Vec<Document>) -> Delivery {
        let sizes: Vec<usize> = documents
            .iter()
            .map(|d| batch::request_size(&d.body))
            .collect();
        let calls = batch::calls(sizes.iter().copied().enumerate());
        let mut slots: Vec<Option<Document>> = documents.into_iter().map(Some).collect();
        let calls: Vec<(Vec<Document>, usize)> = calls
            .into_iter()
            .map(|call| {
                let size = call.iter().map(|&i| sizes[i]).sum();
                let docs = call.into_iter().filter_map(|i| slots[i].take()).collect();
                (docs, size)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(calls)
            .map(|(call, size)| async move {
                let result = service
                    .put(call.iter().map(|d| d.body.as_str()), size)
                    .await;
                (call, result)
            })
            .buffer_unordered(self.num_workers)
            .collect()
            .await;
        let mut delivery = Delivery::default();
        for (call, result) in results {
            delivery.record(call, result);
        }
        self.possibly_duplicated
            .inc_by(delivery.possibly_duplicated as u64);
        delivery
    }
}

/// Documents PutTraceSegments has not taken yet, kept as built for the driver's retry.
struct PendingDocuments {
    service: Arc<XrayService>,
    sender: Sender,
    documents: Vec<Document>,
}

#[async_trait]
impl Pending for PendingDocuments {
    fn item_count(&self) -> usize {
        self.documents.len()
    }

    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError> {
        let PendingDocuments {
            service,
            sender,
            documents,
        } = *self;
        let sent = documents.len();
        let delivery = sender.round(&service, documents).await;
        settle(service, sender, delivery, sent, ExportReport::default())
    }
}

/// Turns a round into what the driver needs: delivered (with drops), the documents still
/// to send, or a permanent failure when X-Ray refused every document of the round and
/// nothing else of the batch was dropped. `sent` is how many documents the round had.
fn settle(
    service: Arc<XrayService>,
    sender: Sender,
    delivery: Delivery,
    sent: usize,
    mut report: ExportReport,
) -> Result<ExportReport, ExportError> {
    let Delivery {
        pending,
        refused,
        last_error,
        ..
    } = delivery;
    let refused_count: usize = refused.values().sum();
    let (reason, message) =
        last_error.unwrap_or_else(|| (Reason::Named("unprocessed"), String::new()));
    if pending.is_empty() && refused_count == sent && report.dropped.is_empty() {
        let reason = match refused.keys().next() {
            Some(code) if refused.len() == 1 => code.clone(),
            _ => Reason::Named("refused"),
        };
        return Err(ExportError::permanent(reason, message));
    }
    report.dropped.extend(refused);
    if pending.is_empty() {
        return Ok(report);
    }
    Err(ExportError::Retry {
        reason,
        message,
        pending: Box::new(PendingDocuments {
            service,
            sender,
            documents: pending,
        }),
        report,
    })
}

#[async_trait]
impl Exporter for XrayExporter {
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        let SignalData::Traces(spans) = batch else {
            return Err(ExportError::permanent(
                "unsupported_signal",
                format!("the awsxray exporter takes traces, not {}", batch.signal()),
            ));
        };
        let (documents, dropped) = self.translate_batch(spans);
        let report = ExportReport {
            dropped: named_counts(dropped),
            ..ExportReport::default()
        };
        match &self.output {
            Output::Xray(service) => {
                if documents.is_empty() {
                    return Ok(report);
                }
                let sent = documents.len();
                let delivery = self.sender.round(service, documents).await;
                settle(service.clone(), self.sender.clone(), delivery, sent, report)
            }
            Output::Lines { writer, label } => {
                writer
                    .write(documents.into_iter().map(|d| d.body).collect())
                    .await
                    .map_err(|e| ExportError::retryable("io", format!("{label}: {e}")))?;
                Ok(report)
            }
        }
    }

    async fn flush(&self) -> Result<(), ExportError> {
        match &self.output {
            Output::Lines { writer, .. } => writer
                .sync()
                .await
                .map_err(|e| ExportError::retryable("io", e.to_string())),
            Output::Xray(_) => Ok(()),
        }
    }

    fn health_detail(&self) -> Option<String> {
        Some(match &self.output {
            Output::Xray(_) => "PutTraceSegments".to_owned(),
            Output::Lines { label, .. } => label.clone(),
        })
    }
}
