//! The `loadbalancing` exporter: sends all spans of a trace to the same gateway collector.
//!
//! Tail sampling needs the whole trace in one place, but a trace's spans leave from every
//! service it crosses, each through its own sidecar. Every sidecar runs this exporter with
//! the same backend list; each span goes to the backend that owns its trace id on a
//! consistent-hash ring ([`ring`]), so every sidecar picks the same gateway for a trace
//! without talking to the others. Each backend is an [`OtlpExporter`].
//!
//! Failures are per backend: when one gateway is down, the spans routed to the others are
//! delivered and only the failed part comes back as retryable
//! ([`ExportError::PartiallyRetryable`]); the driver retries that part, and the retry is
//! routed again, so once the resolver drops the dead gateway the part goes to its
//! successor on the ring. A backend's permanent refusal counts its spans as dropped with
//! that reason.
//!
//! Backends are resolved on the first export and, for `dns`, again on the first export
//! after each `interval` (an idle sidecar has nothing to route, so it does not resolve).
//! A failed resolution keeps the backends in force. Exporters of backends that stay are
//! kept, with their connections.

pub(crate) mod config;
pub(crate) mod resolver;
pub(crate) mod ring;
pub(crate) mod split;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tokio::time::Instant;

use self::config::LoadBalancingExporterConfig;
use self::resolver::Resolver;
use self::ring::HashRing;
use self::split::split_by_trace;
use super::otlp::config::Transport;
use super::otlp::{OtlpExporter, Security};
use crate::component::factory::BuildError;
use crate::component::validate::Invalid;
use crate::component::{ExportError, ExportReport, Exporter, Pending, Reason};
use crate::model::{Signal, SignalData};

/// The ring and an exporter per backend, index for index.
#[derive(Default)]
struct Routing {
    ring: HashRing,
    backends: Vec<Arc<OtlpExporter>>,
}

/// Routes spans by trace id to OTLP backends; cheap to clone (the state is shared), so the
/// spans left to retry can be routed again by the same balancer.
#[derive(Clone)]
pub struct LoadBalancingExporter(Arc<Balancer>);

impl std::ops::Deref for LoadBalancingExporter {
    type Target = Balancer;
    fn deref(&self) -> &Balancer {
        &self.0
    }
}

pub struct Balancer {
    id: String,
    transport: Transport,
    /// TLS, headers and credentials, loaded once and shared by every backend.
    security: Security,
    resolver: Resolver,
    routing: RwLock<Arc<Routing>>,
    /// When the backends were last resolved; held while resolving, so concurrent exports
    /// wait for one resolution instead of each starting their own.
    resolved_at: tokio::sync::Mutex<Option<Instant>>,
}

impl LoadBalancingExporter {
    /// Splits spans by trace id across the backends and sends each part, one attempt each.
    async fn route(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        let SignalData::Traces(resource_spans) = batch else {
            return Err(ExportError::permanent(
                "unsupported_signal",
                format!("{}: routes traces only", self.id),
            ));
        };
        let routing = self.routing().await;
        if routing.ring.is_empty() {
            return Err(ExportError::retryable(
                "no_backends",
                format!("{}: no load-balancing backend is known yet", self.id),
            ));
        }
        let parts = split_by_trace(resource_spans, &routing.ring);
        let sends = parts
            .into_iter()
            .zip(&routing.backends)
            .filter(|(part, _)| !part.is_empty())
            .map(|(part, backend)| async move {
                let data = SignalData::Traces(part);
                let result = backend.export(&data).await;
                if let Err(e) = &result {
                    tracing::warn!(backend = %backend.uri(), spans = data.item_count(),
                        error = %e, "load-balancing backend export failed");
                }
                (data, result)
            });
        let mut outcome = Outcome::default();
        for (part, result) in join_all(sends).await {
            let items = part.item_count();
            outcome.add(Some(part), items, result);
        }
        outcome.finish(self)
    }

    pub fn new(
        id: &str,
        config: &LoadBalancingExporterConfig,
        authenticators: &crate::component::auth::Authenticators,
    ) -> Result<Self, BuildError> {
        let transport = config.protocol.otlp.transport();
        Ok(LoadBalancingExporter(Arc::new(Balancer {
            id: id.to_string(),
            security: Security::new(&transport, false, authenticators)?,
            transport,
            resolver: Resolver::new(&config.resolver)?,
            routing: RwLock::new(Arc::new(Routing::default())),
            resolved_at: tokio::sync::Mutex::new(None),
        })))
    }

    fn current(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The routing to use now, resolving first if it is due.
    async fn routing(&self) -> Arc<Routing> {
        let mut resolved_at = self.resolved_at.lock().await;
        let due = match (*resolved_at, self.resolver.interval()) {
            (None, _) => true,
            (Some(at), Some(interval)) => at.elapsed() >= interval,
            (Some(_), None) => false,
        };
        if due {
            *resolved_at = Some(Instant::now());
            match self.resolver.resolve().await {
                Ok(endpoints) => self.update(endpoints),
                Err(e) => tracing::warn!(exporter = %self.id, error = %e,
                    "cannot resolve the load-balancing backends; the previous ones stay"),
            }
        }
        self.current()
    }

    /// Swaps in a ring for `endpoints` (sorted) if they changed.
    fn update(&self, endpoints: Vec<String>) {
        let old = self.current();
        if old.ring.backends() == endpoints.as_slice() {
            return;
        }
        let mut exporters: HashMap<String, Arc<OtlpExporter>> = HashMap::new();
        for uri in endpoints {
            if let Some(b) = old.backends.iter().find(|b| b.uri() == uri) {
                exporters.insert(uri, b.clone());
                continue;
            }
            match OtlpExporter::connect(&uri, &self.transport, self.security.clone()) {
                Ok(b) => {
                    exporters.insert(uri, Arc::new(b));
                }
                Err(e) => tracing::warn!(exporter = %self.id, error = %e,
                    "skipping a load-balancing backend with an unusable address"),
            }
        }
        let ring = HashRing::new(exporters.keys().cloned());
        let backends = ring
            .backends()
            .iter()
            .filter_map(|uri| exporters.remove(uri))
            .collect();
        tracing::info!(exporter = %self.id, backends = ?ring.backends(),
            "load-balancing backends changed");
        *self.routing.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Routing { ring, backends });
    }
}

/// What the per-backend outcomes add up to.
#[derive(Default)]
struct Outcome {
    report: ExportReport,
    /// Spans a backend did not take at all: routed again on the retry.
    retry: Vec<aurastream_proto::otlp::trace::ResourceSpans>,
    retry_items: usize,
    /// Requests a backend built and has not delivered yet: sent again as they are.
    pending: Vec<Box<dyn Pending>>,
    /// Some part reached a final outcome (delivered or refused for good), so what is left
    /// is a partial retry rather than the whole batch.
    settled_any: bool,
    last_error: Option<(Reason, String)>,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn add(
        &mut self,
        part: Option<SignalData>,
        items: usize,
        result: Result<ExportReport, ExportError>,
    ) {
        match result {
            Ok(report) => {
                self.settled_any = true;
                self.report.dropped.extend(report.dropped);
            }
            Err(ExportError::Permanent { reason, message }) => {
                tracing::error!(error = %message, spans = items,
                    "a load-balancing backend refused spans permanently");
                self.settled_any = true;
                self.report.dropped.push((reason, items));
            }
            Err(ExportError::Retryable {
                reason,
                message,
                retry_after,
            }) => {
                match part {
                    Some(SignalData::Traces(r)) => {
                        self.retry_items += items;
                        self.retry.extend(r);
                    }
                    _ => {
                        // A retry of built requests answers with what is left, never
                        // "all of it again"; had one done so, nothing could be rebuilt.
                        self.settled_any = true;
                        self.report
                            .dropped
                            .push((Reason::Named("retry_lost"), items));
                    }
                }
                self.retry_after = self.retry_after.max(retry_after);
                self.last_error = Some((reason, message));
            }
            Err(ExportError::Retry {
                reason,
                message,
                pending,
                report,
            }) => {
                self.settled_any = true;
                self.report.dropped.extend(report.dropped);
                self.pending.push(pending);
                self.last_error = Some((reason, message));
            }
        }
    }

    fn finish(self, balancer: &LoadBalancingExporter) -> Result<ExportReport, ExportError> {
        let Some((reason, message)) = self.last_error else {
            return Ok(self.report);
        };
        if self.retry_items == 0 && self.pending.is_empty() {
            return Ok(self.report);
        }
        if !self.settled_any {
            return Err(ExportError::Retryable {
                reason,
                message,
                retry_after: self.retry_after,
            });
        }
        Err(ExportError::Retry {
            reason,
            message,
            pending: Box::new(PendingSpans {
                balancer: balancer.clone(),
                spans: self.retry,
                requests: self.pending,
            }),
            report: self.report,
        })
    }
}

/// What one export left: spans to route again, and backends' requests to send again.
struct PendingSpans {
    balancer: LoadBalancingExporter,
    spans: Vec<aurastream_proto::otlp::trace::ResourceSpans>,
    requests: Vec<Box<dyn Pending>>,
}

#[async_trait]
impl Pending for PendingSpans {
    fn item_count(&self) -> usize {
        let spans: usize = self
            .spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        spans + self.requests.iter().map(|p| p.item_count()).sum::<usize>()
    }

    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError> {
        let PendingSpans {
            balancer,
            spans,
            requests,
        } = *self;
        let mut outcome = Outcome {
            settled_any: true,
            ..Outcome::default()
        };
        if !spans.is_empty() {
            let data = SignalData::Traces(spans);
            let items = data.item_count();
            let result = balancer.route(&data).await;
            outcome.add(Some(data), items, result);
        }
        for p in requests {
            let items = p.item_count();
            let result = p.send().await;
            outcome.add(None, items, result);
        }
        outcome.finish(&balancer)
    }
}

#[async_trait]
impl Exporter for LoadBalancingExporter {
    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        self.route(batch).await
    }

    fn health_detail(&self) -> Option<String> {
        let routing = self.current();
        Some(format!("backends: {}", routing.ring.backends().join(", ")))
    }
}

impl crate::component::factory::ExporterFactory for LoadBalancingExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Traces]
    }

    fn validate(&self) -> Result<(), Invalid> {
        LoadBalancingExporterConfig::validate(self)
    }

    fn delivery(
        &self,
    ) -> (
        &crate::component::RetryConfig,
        &crate::component::SendingQueueConfig,
    ) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    fn build(
        &self,
        ctx: &crate::component::factory::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, crate::component::factory::BuildError>
    {
        Ok(std::sync::Arc::new(LoadBalancingExporter::new(
            ctx.id, self, ctx.auth,
        )?))
    }

    fn authenticators(&self) -> Vec<(String, String)> {
        self.protocol
            .otlp
            .auth
            .iter()
            .map(|a| {
                (
                    "protocol.otlp.auth.authenticator".to_string(),
                    a.authenticator.clone(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
