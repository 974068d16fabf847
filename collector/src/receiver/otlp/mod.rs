//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) for all three signals.
//!
//! Both transports share [`Ingest`]: validate (refusing bad items through OTLP partial
//! success), then hand the rest to the pipelines, or refuse the whole request with a
//! retryable error when a pipeline is full.

pub(crate) mod authorization;
pub(crate) mod config;
pub mod decode;
mod grpc;
mod http;
mod request_limits;
pub mod signal;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::authorization::{Authorization, AuthorizationConfig};
use self::config::OtlpReceiverConfig;
use self::request_limits::LimitError;
use self::signal::{OtlpSignal, Rejected};
use crate::component::auth::{AuthConfig, Authenticators};
use crate::component::factory::BuildError;
use crate::component::validate::Invalid;
use crate::component::{ConsumeError, Consumer};
use crate::model::memory::{ByteClaim, MIB, MemoryLimiter, Refusal};
use crate::model::{Signal, SignalData, decoded_size};
use crate::net::tls_server::{ServerTls, ServerTlsConfig};
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

/// Why a request was not accepted, mapped to gRPC codes and HTTP statuses by the
/// transports.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no {0} pipeline takes data from this receiver")]
    NoPipeline(Signal),
    #[error(transparent)]
    Refused(#[from] ConsumeError),
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl IngestError {
    /// The process-wide memory budget refused it.
    fn memory(refusal: Refusal) -> IngestError {
        IngestError::Refused(ConsumeError::MemoryLimit(refusal))
    }
}

/// Memory reserved for a request before its body is read.
#[derive(Debug, Default)]
pub struct Reserved {
    claim: Option<ByteClaim>,
    /// The claim covers what the body decodes to, not only the body.
    decoding_covered: bool,
}

/// The transport-independent half of the receiver.
pub struct Ingest {
    receiver: String,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    max_items: usize,
    max_attributes: usize,
    authorization: Option<Authorization>,
}

impl Ingest {
    pub fn new(
        receiver: &str,
        consumers: BTreeMap<Signal, Consumer>,
        metrics: Arc<SelfMetrics>,
    ) -> Ingest {
        let defaults = OtlpReceiverConfig::default();
        Ingest {
            receiver: receiver.into(),
            consumers,
            metrics,
            max_items: defaults.max_items_per_request,
            max_attributes: defaults.max_attributes_per_item,
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

    /// `max_items_per_request` and `max_attributes_per_item` from `config`.
    pub fn request_limits(mut self, config: &OtlpReceiverConfig) -> Ingest {
        self.max_items = config.max_items_per_request;
        self.max_attributes = config.max_attributes_per_item;
        self
    }

    /// Refuses at once, before a body is read, while the memory budget is over its soft
    /// limit or a pipeline is sure to refuse the request as full: under overload a
    /// refusal costs almost nothing and the core goes to what was already admitted.
    /// Counted per request (`memory_limit`, `queue_full`).
    pub fn check_room(&self, transport: &str, signal: Signal) -> Result<(), IngestError> {
        if let Some(limiter) = self.limiter(signal)
            && limiter.over_soft()
        {
            let refusal = Refusal::Busy {
                held_mib: limiter.held().div_ceil(MIB),
                soft_mib: limiter.limits().soft.div_ceil(MIB),
            };
            return Err(self.refused_request(transport, signal, refusal));
        }
        if let Some(consumer) = self.consumers.get(&signal)
            && let Err(full) = consumer.check_room()
        {
            self.metrics
                .receiver_refused_requests(&self.receiver, transport, signal, "queue_full")
                .inc();
            return Err(IngestError::Refused(full));
        }
        Ok(())
    }

    /// Before a body of `wire_len` bytes (uncompressed) is read: reserves what it can
    /// decode to at most by the fast bound ([`decoded_size::bound`]) if that fits, else
    /// only the body itself, leaving the decoded size to [`Ingest::reserve_body`]. Refused
    /// when not even the body fits: nothing is read.
    pub fn reserve_declared(
        &self,
        transport: &str,
        signal: Signal,
        wire_len: usize,
    ) -> Result<Reserved, IngestError> {
        let Some(limiter) = self.limiter(signal) else {
            return Ok(Reserved::default());
        };
        if let Ok(claim) = limiter.try_reserve(decoded_size::bound(signal, wire_len)) {
            return Ok(Reserved {
                claim: Some(claim),
                decoding_covered: true,
            });
        }
        match limiter.try_reserve(wire_len) {
            Ok(claim) => Ok(Reserved {
                claim: Some(claim),
                decoding_covered: false,
            }),
            Err(refusal) => Err(self.refused_request(transport, signal, refusal)),
        }
    }

    /// Once the (decompressed) body is read and before it is decoded: reserves what it can
    /// decode to, unless `before` covers that already. The fast bound first; if that does
    /// not fit, the bound from walking a protobuf body ([`decoded_size::scan`]), which is
    /// tight. Refused when even that does not fit. `None` without a memory limiter.
    pub fn reserve_body(
        &self,
        transport: &str,
        signal: Signal,
        body: &[u8],
        encoding: decode::Encoding,
        before: Reserved,
    ) -> Result<Option<ByteClaim>, IngestError> {
        if before.decoding_covered {
            return Ok(before.claim);
        }
        let Some(limiter) = self.limiter(signal) else {
            return Ok(None);
        };
        // What the body costs is part of both bounds.
        drop(before.claim);
        let fast = decoded_size::bound(signal, body.len());
        let refusal = match limiter.try_reserve(fast) {
            Ok(claim) => return Ok(Some(claim)),
            Err(refusal) => refusal,
        };
        let scanned = match encoding {
            decode::Encoding::Protobuf => decoded_size::scan(signal, body),
            decode::Encoding::Json => None,
        };
        let Some(needed) = scanned else {
            return Err(self.refused_request(transport, signal, refusal));
        };
        limiter
            .try_reserve(needed)
            .map(Some)
            .map_err(|refusal| self.refused_request(transport, signal, refusal))
    }

    fn limiter(&self, signal: Signal) -> Option<&Arc<MemoryLimiter>> {
        self.consumers
            .get(&signal)
            .and_then(Consumer::memory_limiter)
    }

    /// Counts a request refused by the memory limiter before it was decoded.
    fn refused_request(&self, transport: &str, signal: Signal, refusal: Refusal) -> IngestError {
        let reason = match refusal {
            Refusal::Busy { .. } => "memory_limit",
            Refusal::TooLarge { .. } => "memory_limit_too_large",
        };
        self.metrics
            .receiver_refused_requests(&self.receiver, transport, signal, reason)
            .inc();
        IngestError::memory(refusal)
    }

    /// Accepts a decoded request, or says why not. With a queue on disk behind the
    /// pipeline, answers only once the request is written there. `reservation` is the
    /// memory reserved for it before decoding ([`Ingest::reserve`]), released once the
    /// data is in the pipelines (charged there as batches) or refused.
    pub async fn ingest<S: OtlpSignal>(
        &self,
        transport: &str,
        request: S::Request,
        reservation: Option<ByteClaim>,
    ) -> Result<S::Response, IngestError> {
        let consumer = self
            .consumers
            .get(&S::SIGNAL)
            .ok_or(IngestError::NoPipeline(S::SIGNAL))?;
        let (mut data, mut rejected) = S::accept(request);
        let sent = data.item_count() + rejected.items;
        if let Err(e) = request_limits::check(&data, sent, self.max_items, self.max_attributes) {
            let reason = match e {
                LimitError::TooManyItems { .. } => "too_many_items",
                LimitError::TooManyAttributes { .. } => "too_many_attributes",
            };
            self.metrics
                .receiver_refused(&self.receiver, transport, S::SIGNAL, reason)
                .inc_by(sent as u64);
            return Err(e.into());
        }
        if rejected.items > 0 {
            self.metrics
                .receiver_refused(&self.receiver, transport, S::SIGNAL, "invalid")
                .inc_by(rejected.items as u64);
            tracing::debug!(receiver = %self.receiver, transport, rejected = rejected.items,
                reason = %rejected.message, "rejected part of a request");
        }
        self.authorize(transport, &mut data, &mut rejected);
        let items = data.item_count();
        let consumed = match reservation {
            Some(reserved) => consumer.try_consume_reserved(data, Some(reserved)),
            None => consumer.try_consume_durable(data),
        };
        let consumed = match consumed {
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
                    ConsumeError::MemoryLimit(_) => "memory_limit",
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
            .request_limits(config)
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
        let served = door.serve(listener, routes, grpc.limits(), stop.clone());
        tasks.push(("grpc server", served));
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
        let served = door.serve(listener, routes, http.limits(), stop.clone());
        tasks.push(("http server", served));
    }
    Ok(crate::component::receiver::watch_servers(
        id,
        health,
        endpoints.join(", "),
        tasks,
        &stop,
    ))
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
                ServerTls::load_counted(t, &component, metrics).map_err(|source| {
                    BuildError::unusable(format!("protocols.{transport}.tls"), source)
                })
            })
            .transpose()?;
        let auth = auth
            .map(|a| {
                authenticators
                    .server(&a.authenticator)
                    .map_err(|e| BuildError::unusable(format!("protocols.{transport}.auth"), e))
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

    fn validate(&self) -> Result<(), Invalid> {
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
