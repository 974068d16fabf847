//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) for all three signals.
//!
//! Both transports share [`Ingest`]: validate (refusing bad items through OTLP partial
//! success), then hand the rest to the pipelines, or refuse the whole request with a
//! retryable error when a pipeline is full.

pub mod authorization;
pub mod config;
pub mod decode;
mod grpc;
mod http;
pub mod signal;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::authorization::{Authorization, AuthorizationConfig};
use self::config::OtlpReceiverConfig;
use self::signal::{OtlpSignal, Rejected};
use crate::component::auth::{AuthConfig, Authenticators};
use crate::component::factory::BuildError;
use crate::component::{ConsumeError, Consumer};
use crate::model::{Signal, SignalData};
use crate::net::tls_server::{ServerTls, ServerTlsConfig};
use crate::telemetry::health::{ComponentStatus, HealthRegistry};
use crate::telemetry::metrics::SelfMetrics;

/// Why a request was not accepted, mapped to gRPC codes and HTTP statuses by the
/// transports.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no {0} pipeline takes data from this receiver")]
    NoPipeline(Signal),
    #[error(transparent)]
    Refused(#[from] ConsumeError),
}

/// The transport-independent half of the receiver.
pub struct Ingest {
    receiver: String,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    authorization: Option<Authorization>,
}

impl Ingest {
    pub fn new(
        receiver: &str,
        consumers: BTreeMap<Signal, Consumer>,
        metrics: Arc<SelfMetrics>,
    ) -> Ingest {
        Ingest {
            receiver: receiver.into(),
            consumers,
            metrics,
            authorization: None,
        }
    }

    /// Checks log records against `config` (see [`authorization`]).
    pub fn with_authorization(mut self, config: Option<&AuthorizationConfig>) -> Ingest {
        self.authorization = config.map(Authorization::new);
        self
    }

    /// Applies the receiver's authorization to `data`; refused records join `rejected`.
    fn authorize(&self, transport: &str, data: &mut SignalData, rejected: &mut Rejected) {
        let Some(authorization) = &self.authorization else {
            return;
        };
        let outcome = authorization.apply(data, &crate::net::authenticate::current_caller());
        if outcome.refused > 0 {
            self.metrics
                .receiver_refused(&self.receiver, transport, data.signal(), "unauthorized")
                .inc_by(outcome.refused as u64);
            rejected.note(
                outcome.refused,
                "log records in a sensitive category from a caller not allowed to write it",
            );
        }
        if outcome.rerouted > 0 {
            self.metrics
                .component_event(
                    &format!("receiver/{}/{transport}", self.receiver),
                    data.signal(),
                    "rerouted_unauthorized",
                )
                .inc_by(outcome.rerouted as u64);
        }
    }

    /// Accepts a decoded request, or says why not. With a queue on disk behind the
    /// pipeline, answers only once the request is written there.
    pub async fn ingest<S: OtlpSignal>(
        &self,
        transport: &str,
        request: S::Request,
    ) -> Result<S::Response, IngestError> {
        let consumer = self
            .consumers
            .get(&S::SIGNAL)
            .ok_or(IngestError::NoPipeline(S::SIGNAL))?;
        let (mut data, mut rejected) = S::accept(request);
        if rejected.items > 0 {
            self.metrics
                .receiver_refused(&self.receiver, transport, S::SIGNAL, "invalid")
                .inc_by(rejected.items as u64);
            tracing::debug!(receiver = %self.receiver, transport, rejected = rejected.items,
                reason = %rejected.message, "rejected part of a request");
        }
        self.authorize(transport, &mut data, &mut rejected);
        let items = data.item_count();
        let consumed = match consumer.try_consume_durable(data) {
            Ok(settled) => settled.wait().await,
            Err(e) => Err(e),
        };
        match consumed {
            Ok(()) => {
                self.metrics
                    .receiver_accepted(&self.receiver, transport, S::SIGNAL)
                    .inc_by(items as u64);
                Ok(S::response(&rejected))
            }
            Err(e) => {
                let reason = match &e {
                    ConsumeError::Full { .. } => "queue_full",
                    ConsumeError::TooLarge { .. } => "too_large",
                    ConsumeError::ShuttingDown => "shutting_down",
                    ConsumeError::NotStored { .. } => "storage_error",
                };
                self.metrics
                    .receiver_refused(&self.receiver, transport, S::SIGNAL, reason)
                    .inc_by(items as u64);
                Err(IngestError::Refused(e))
            }
        }
    }

    /// Counts a request that could not even be decoded.
    pub fn malformed(&self, transport: &str, signal: Signal) {
        self.metrics
            .component_event(
                &format!("receiver/{}/{transport}", self.receiver),
                signal,
                "malformed_request",
            )
            .inc();
    }
}

/// Binds the configured listeners (failing start-up if a port is taken, a TLS file is
/// unusable or an authenticator is missing) and serves until `stop` is cancelled.
pub async fn start(
    id: &str,
    config: &OtlpReceiverConfig,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    health: &HealthRegistry,
    auth: &Authenticators,
    stop: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, BuildError> {
    let ingest = Arc::new(
        Ingest::new(id, consumers, metrics.clone())
            .with_authorization(config.authorization.as_ref()),
    );
    let mut tasks = Vec::new();
    let mut endpoints = Vec::new();
    if let Some(grpc) = &config.protocols.grpc {
        let door = Door::new(
            id,
            "grpc",
            grpc.tls.as_ref(),
            grpc.auth.as_ref(),
            auth,
            &metrics,
        )?;
        let listener = bind(&grpc.endpoint, id, "grpc").await?;
        let addr = listener.local_addr()?;
        endpoints.push(format!("grpc{} {addr}", door.scheme_note()));
        tracing::info!(receiver = id, %addr, tls = door.tls.is_some(), "OTLP/gRPC listening");
        let routes = door.guard(
            grpc::routes(ingest.clone(), grpc.max_recv_msg_bytes()),
            true,
        );
        tasks.push(door.serve(listener, routes, grpc.limits(), stop.clone()));
    }
    if let Some(http) = &config.protocols.http {
        let door = Door::new(
            id,
            "http",
            http.tls.as_ref(),
            http.auth.as_ref(),
            auth,
            &metrics,
        )?;
        let listener = bind(&http.endpoint, id, "http").await?;
        let addr = listener.local_addr()?;
        endpoints.push(format!("http{} {addr}", door.scheme_note()));
        tracing::info!(receiver = id, %addr, tls = door.tls.is_some(), "OTLP/HTTP listening");
        let routes = door.guard(http::routes(ingest.clone(), http), false);
        tasks.push(door.serve(listener, routes, http.limits(), stop.clone()));
    }
    let detail = endpoints.join(", ");
    health.register(&format!("receiver/{id}"), move || {
        ComponentStatus::healthy(detail.clone())
    });
    Ok(tasks)
}

/// What stands between a listener and its routes: TLS and the authenticator.
struct Door {
    component: String,
    tls: Option<ServerTls>,
    auth: Option<Arc<dyn crate::component::auth::ServerAuthenticator>>,
    metrics: Arc<SelfMetrics>,
}

impl Door {
    fn new(
        id: &str,
        transport: &str,
        tls: Option<&ServerTlsConfig>,
        auth: Option<&AuthConfig>,
        authenticators: &Authenticators,
        metrics: &Arc<SelfMetrics>,
    ) -> Result<Door, BuildError> {
        let component = format!("receiver/{id}/{transport}");
        let tls = tls
            .map(|t| {
                let reloaded = metrics.listener_event(&component, "tls_reloaded");
                let failed = metrics.listener_event(&component, "tls_reload_failed");
                ServerTls::load(
                    t,
                    Arc::new(move |ok| {
                        if ok {
                            reloaded.inc()
                        } else {
                            failed.inc()
                        };
                    }),
                )
                .map_err(|e| BuildError::Options(format!("protocols.{transport}.{e}")))
            })
            .transpose()?;
        let auth = auth
            .map(|a| {
                authenticators
                    .server(&a.authenticator)
                    .map_err(|e| BuildError::Options(format!("protocols.{transport}.auth: {e}")))
            })
            .transpose()?;
        Ok(Door {
            component,
            tls,
            auth,
            metrics: metrics.clone(),
        })
    }

    fn scheme_note(&self) -> &'static str {
        if self.tls.is_some() { "+tls" } else { "" }
    }

    fn guard(&self, routes: axum::Router, grpc: bool) -> axum::Router {
        let routes = crate::net::authenticate::with_caller(routes);
        match &self.auth {
            Some(a) => crate::net::authenticate::require(
                routes,
                a.clone(),
                self.metrics
                    .listener_event(&self.component, "unauthenticated"),
                grpc,
            ),
            None => routes,
        }
    }

    fn serve(
        self,
        listener: TcpListener,
        routes: axum::Router,
        limits: crate::net::limits::Limits,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let spec = crate::net::server::Listener {
            component: self.component,
            tls: self.tls,
            limits,
        };
        crate::net::server::serve(listener, spec, routes, self.metrics, stop)
    }
}

async fn bind(endpoint: &str, id: &str, transport: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(endpoint).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("receiver `{id}` ({transport}) cannot listen on {endpoint}: {e}"),
        )
    })
}

impl Rejected {
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }
}

#[async_trait::async_trait]
impl crate::component::factory::ReceiverFactory for OtlpReceiverConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), String> {
        OtlpReceiverConfig::validate(self)
    }

    async fn start(
        &self,
        ctx: crate::component::factory::ReceiverContext<'_>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, crate::component::factory::BuildError> {
        self::start(
            ctx.id,
            self,
            ctx.consumers,
            ctx.metrics,
            ctx.health,
            ctx.auth,
            ctx.stop,
        )
        .await
    }

    fn authenticators(&self) -> Vec<(String, String)> {
        let grpc = self.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref());
        let http = self.protocols.http.as_ref().and_then(|h| h.auth.as_ref());
        [
            ("protocols.grpc.auth.authenticator", grpc),
            ("protocols.http.auth.authenticator", http),
        ]
        .into_iter()
        .filter_map(|(at, a)| a.map(|a| (at.to_string(), a.authenticator.clone())))
        .collect()
    }

    fn exposure_warnings(&self) -> Vec<String> {
        let grpc = self
            .protocols
            .grpc
            .as_ref()
            .map(|g| ("grpc", &g.endpoint, g.tls.is_some() || g.auth.is_some()));
        let http = self
            .protocols
            .http
            .as_ref()
            .map(|h| ("http", &h.endpoint, h.tls.is_some() || h.auth.is_some()));
        [grpc, http]
            .into_iter()
            .flatten()
            .filter(|(_, endpoint, guarded)| !guarded && !crate::net::is_loopback(endpoint))
            .map(|(transport, endpoint, _)| {
                format!(
                    "protocols.{transport} listens on {endpoint}, beyond this host, with \
                     neither `tls` nor `auth`: anyone who can reach the port can send data"
                )
            })
            .collect()
    }
}
