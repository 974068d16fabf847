//! The `awsxray` exporter: spans as AWS X-Ray segment documents.
//!
//! Every span becomes one document ([`translate`]), trimmed to X-Ray's 64 KB limit
//! ([`trim`]), and goes to `PutTraceSegments` ([`service`]) in calls of at most 50
//! documents ([`batch`]), several calls at a time. Documents X-Ray leaves unprocessed and
//! calls that were throttled or hit a server error are retried one by one with backoff
//! ([`retry`]); whatever is still not delivered after `max_retries` goes back to the
//! pipeline driver as the spans to retry, and documents refused for good are reported as
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

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;

use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans};

pub use self::original::SEGMENT_DOCUMENT_ATTRIBUTE;

use self::config::{OutputDestination, XrayExporterConfig};
use self::retry::Class;
use self::service::{CallError, Unprocessed, XrayService};
use self::translate::Translator;
use crate::component::{ExportError, ExportReport, Exporter};
use crate::model::{Signal, SignalData};
use crate::output::rotate::RotatingFile;
use crate::telemetry::metrics::SelfMetrics;

/// Where a span sits in a batch: resource, scope and span index.
type SpanLoc = (usize, usize, usize);

/// One span's document, serialized and within the size limit.
struct Document {
    loc: SpanLoc,
    id: String,
    body: String,
}

/// Where the documents of one export stand after the exporter's own attempts.
#[derive(Default)]
struct Delivery {
    /// Indexes of documents still to retry.
    pending: Vec<usize>,
    /// Documents X-Ray refused for good, by AWS error code.
    refused: BTreeMap<String, usize>,
    /// The last error seen (code, message), to explain a retry or a failure.
    last_error: Option<(String, String)>,
    /// Documents resent after a call X-Ray may have applied (timeout, broken connection).
    /// X-Ray keeps one segment per id, and a resent document is identical, so these are
    /// overwritten rather than doubled; counted so that stores which keep every copy can be
    /// checked against it.
    possibly_duplicated: usize,
}

impl Delivery {
    /// Sorts the documents of one finished call into delivered, to retry and refused.
    fn record(
        &mut self,
        documents: &[Document],
        call: Vec<usize>,
        result: Result<Vec<Unprocessed>, CallError>,
        attempt: u32,
        retry: &mut Vec<usize>,
    ) {
        match result {
            Ok(unprocessed) => {
                let mut candidates = call;
                for u in unprocessed {
                    let Some(pos) = candidates.iter().position(|&i| documents[i].id == u.id) else {
                        tracing::warn!(id = %u.id,
                            "X-Ray reported an unknown segment id as unprocessed");
                        continue;
                    };
                    let index = candidates.swap_remove(pos);
                    let code = u.code.clone().unwrap_or_else(|| "unprocessed".into());
                    let message = u.message.unwrap_or_default();
                    if retry::classify_unprocessed(u.code.as_deref()) == Class::Permanent {
                        tracing::warn!(id = %u.id, %code, %message,
                            "X-Ray refused a segment document");
                        *self.refused.entry(code.clone()).or_default() += 1;
                    } else {
                        retry.push(index);
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
                tracing::debug!(documents = call.len(), error = %e, attempt,
                    "PutTraceSegments failed; will retry");
                if e.maybe_delivered {
                    self.possibly_duplicated += call.len();
                }
                retry.extend(call);
                self.last_error = Some((e.code, e.message));
            }
        }
    }
}

enum Output {
    Xray(Box<XrayService>),
    Stdout,
    File {
        file: Arc<Mutex<RotatingFile>>,
        path: PathBuf,
    },
}

pub struct XrayExporter {
    translator: Translator,
    output: Output,
    num_workers: usize,
    max_retries: u32,
    /// Documents that had parts removed to fit in 64 KB.
    trimmed: Counter,
    /// Documents resent after a failure X-Ray may have applied anyway.
    possibly_duplicated: Counter,
}

impl XrayExporter {
    pub fn new(id: &str, config: &XrayExporterConfig, metrics: &SelfMetrics) -> XrayExporter {
        let output = match config.output_destination {
            OutputDestination::Api => Output::Xray(Box::new(XrayService::new(
                config.region.clone(),
                config.endpoint.clone(),
                config.request_timeout(),
            ))),
            OutputDestination::Stdout => Output::Stdout,
            OutputDestination::File => {
                let path = config.path.clone().unwrap_or_default();
                Output::File {
                    file: Arc::new(Mutex::new(RotatingFile::new(path.clone(), None))),
                    path,
                }
            }
        };
        XrayExporter {
            translator: Translator::new(config),
            output,
            num_workers: config.num_workers.max(1),
            max_retries: config.max_retries,
            trimmed: metrics.component_event(id, Signal::Traces, "document_trimmed"),
            possibly_duplicated: metrics.component_event(id, Signal::Traces, "possibly_duplicated"),
        }
    }

    /// Uses `sdk` (credentials, region, HTTP client) instead of the standard AWS chain; for
    /// embedding and tests. `region` and `endpoint` options still apply on top.
    pub fn with_sdk_config(mut self, sdk: aws_config::SdkConfig) -> XrayExporter {
        if let Output::Xray(service) = self.output {
            self.output = Output::Xray(Box::new(service.with_sdk_config(sdk)));
        }
        self
    }

    /// Turns every span into a document; spans that cannot be sent are counted by reason.
    fn translate_batch(&self, batch: &[ResourceSpans]) -> (Vec<Document>, BTreeMap<String, usize>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut documents = Vec::new();
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        for (ri, rs) in batch.iter().enumerate() {
            for (si, ss) in rs.scope_spans.iter().enumerate() {
                for (i, span) in ss.spans.iter().enumerate() {
                    if let Some((id, body)) = original::document(span) {
                        documents.push(Document {
                            loc: (ri, si, i),
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
                            *dropped.entry(skip.reason().to_owned()).or_default() += 1;
                            continue;
                        }
                    };
                    match trim::fit(&mut doc) {
                        Ok((body, trimmed)) => {
                            if trimmed {
                                self.trimmed.inc();
                            }
                            documents.push(Document {
                                loc: (ri, si, i),
                                id: doc.id,
                                body,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(span = %span.name, error = %e, "span dropped");
                            *dropped.entry("document_too_large".to_owned()).or_default() += 1;
                        }
                    }
                }
            }
        }
        (documents, dropped)
    }

    /// Sends the documents, retrying throttled calls and unprocessed documents up to
    /// `max_retries` times.
    async fn deliver(&self, service: &XrayService, documents: &[Document]) -> Delivery {
        let sizes: Vec<usize> = documents
            .iter()
            .map(|d| batch::request_size(&d.body))
            .collect();
        let mut delivery = Delivery {
            pending: (0..documents.len()).collect(),
            ..Default::default()
        };
        let mut attempt = 0;
        loop {
            let calls = batch::calls(delivery.pending.iter().map(|&i| (i, sizes[i])));
            let results: Vec<_> = futures::stream::iter(calls)
                .map(|call| async move {
                    let bodies = call.iter().map(|&i| documents[i].body.clone()).collect();
                    let result = service.put(bodies).await;
                    (call, result)
                })
                .buffer_unordered(self.num_workers)
                .collect()
                .await;
            let mut retry = Vec::new();
            for (call, result) in results {
                delivery.record(documents, call, result, attempt, &mut retry);
            }
            retry.sort_unstable();
            delivery.pending = retry;
            // Under memory pressure the driver sheds what is left instead of waiting here.
            if delivery.pending.is_empty()
                || attempt >= self.max_retries
                || crate::model::memory::shedding()
            {
                return delivery;
            }
            tokio::time::sleep(retry::backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// Turns a delivery into what the driver needs: delivered (with drops), the spans still
    /// to retry, or a permanent failure when X-Ray refused every document.
    fn settle(
        delivery: Delivery,
        batch: &[ResourceSpans],
        documents: &[Document],
        mut report: ExportReport,
    ) -> Result<ExportReport, ExportError> {
        let Delivery {
            pending,
            refused,
            last_error,
            ..
        } = delivery;
        let refused_count: usize = refused.values().sum();
        let skipped = report.dropped_items();
        let (reason, message) = last_error.unwrap_or_else(|| ("unprocessed".into(), String::new()));
        if pending.is_empty() && refused_count == documents.len() && skipped == 0 {
            let reason = match refused.keys().next() {
                Some(code) if refused.len() == 1 => code.clone(),
                _ => "refused".into(),
            };
            return Err(ExportError::permanent(reason, message));
        }
        report.dropped.extend(refused);
        if pending.is_empty() {
            return Ok(report);
        }
        if pending.len() == documents.len() && report.dropped.is_empty() {
            return Err(ExportError::Retryable {
                reason,
                message,
                retry_after: None,
            });
        }
        let keep: BTreeSet<SpanLoc> = pending.iter().map(|&i| documents[i].loc).collect();
        Err(ExportError::PartiallyRetryable {
            reason,
            message,
            remaining: SignalData::Traces(select(batch, &keep)),
            report,
        })
    }

    /// Writes one document per line to stdout or the file.
    async fn write_lines(&self, documents: &[Document]) -> Result<(), ExportError> {
        let mut buf = Vec::with_capacity(documents.iter().map(|d| d.body.len() + 1).sum());
        for d in documents {
            buf.extend_from_slice(d.body.as_bytes());
            buf.push(b'\n');
        }
        let (result, target) = match &self.output {
            Output::File { file, path } => {
                let file = file.clone();
                let r = tokio::task::spawn_blocking(move || {
                    file.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .write_line(&buf)
                })
                .await;
                (r, path.display().to_string())
            }
            _ => {
                let r = tokio::task::spawn_blocking(move || {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf).and_then(|()| out.flush())
                })
                .await;
                (r, "stdout".to_owned())
            }
        };
        result
            .map_err(|e| ExportError::retryable("io", e.to_string()))?
            .map_err(|e| ExportError::retryable("io", format!("{target}: {e}")))
    }
}

/// The spans at `keep`, with their resources and scopes: what is left to retry.
fn select(batch: &[ResourceSpans], keep: &BTreeSet<SpanLoc>) -> Vec<ResourceSpans> {
    let mut out = Vec::new();
    for (ri, rs) in batch.iter().enumerate() {
        let scopes: Vec<ScopeSpans> = rs
            .scope_spans
            .iter()
            .enumerate()
            .filter_map(|(si, ss)| {
                let spans: Vec<_> = ss
                    .spans
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| keep.contains(&(ri, si, *i)))
                    .map(|(_, s)| s.clone())
                    .collect();
                (!spans.is_empty()).then(|| ScopeSpans {
                    scope: ss.scope.clone(),
                    spans,
                    schema_url: ss.schema_url.clone(),
                })
            })
            .collect();
        if !scopes.is_empty() {
            out.push(ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: scopes,
                schema_url: rs.schema_url.clone(),
            });
        }
    }
    out
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
            dropped: dropped.into_iter().collect(),
            ..ExportReport::default()
        };
        match &self.output {
            Output::Xray(service) => {
                if documents.is_empty() {
                    return Ok(report);
                }
                let delivery = self.deliver(service, &documents).await;
                self.possibly_duplicated
                    .inc_by(delivery.possibly_duplicated as u64);
                Self::settle(delivery, spans, &documents, report)
            }
            Output::Stdout | Output::File { .. } => {
                self.write_lines(&documents).await?;
                Ok(report)
            }
        }
    }

    async fn flush(&self) -> Result<(), ExportError> {
        let Output::File { file, .. } = &self.output else {
            return Ok(());
        };
        let file = file.clone();
        tokio::task::spawn_blocking(move || file.lock().unwrap_or_else(|p| p.into_inner()).sync())
            .await
            .map_err(|e| ExportError::retryable("io", e.to_string()))?
            .map_err(|e| ExportError::retryable("io", e.to_string()))
    }

    fn health_detail(&self) -> Option<String> {
        Some(match &self.output {
            Output::Xray(_) => "PutTraceSegments".to_owned(),
            Output::Stdout => "stdout".to_owned(),
            Output::File { path, .. } => path.display().to_string(),
        })
    }
}
