//! The `awsxray` receiver: the X-Ray daemon protocol, so X-Ray SDKs can send to the
//! collector instead of the AWS X-Ray daemon.
//!
//! * UDP ([`packet`]): one segment document per datagram, turned into OTLP spans
//!   ([`segment`]) that flow through the pipelines like any other; the `awsxray` exporter
//!   sends the original documents on unchanged.
//! * TCP ([`proxy`]): the SDKs' sampling calls, signed and forwarded to X-Ray.
//!
//! UDP has no way to push back, so a datagram the pipeline has no room for is dropped
//! and its spans counted (`receiver_refused{reason="queue_full"}`, or `memory_limit`
//! while the memory budget is over its soft limit), as is a datagram that is not a
//! valid document (`no_header`, `bad_header`, `bad_json`, `invalid_segment`,
//! `too_large`; counted once per datagram, since its spans cannot be counted). Either way
//! the receiver logs at debug and keeps serving: a misbehaving client must not be able to
//! stop it or flood the collector's log.
//!
//! `/health` shows the receiver `unhealthy`, naming the task, if the UDP server or the
//! sampling proxy ends while the collector runs.

pub(crate) mod config;
pub(crate) mod packet;
pub(crate) mod proxy;
pub(crate) mod segment;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::config::XrayReceiverConfig;
use self::packet::MAX_PACKET_BYTES;
use self::proxy::SamplingProxy;
use crate::component::validate::Invalid;
use crate::component::{ConsumeError, Consumer};
use crate::model::{Signal, SignalData};
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

/// A datagram as OTLP spans: the document and each subsegment nested in it.
pub fn decode(
    packet: &[u8],
) -> Result<aurastream_proto::otlp::trace::ResourceSpans, packet::PacketError> {
    segment::to_resource_spans(packet::body(packet)?)
}

/// `transport` label of the segments' counters.
const UDP: &str = "udp";

/// Binds the UDP socket and, when configured, the sampling proxy (failing start-up if a
/// port is taken) and serves until `stop` is cancelled.
pub async fn start(
    id: &str,
    config: &XrayReceiverConfig,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    health: &HealthRegistry,
    stop: CancellationToken,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let cannot_listen = |what: &str, endpoint: &str, e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("receiver `{id}` ({what}) cannot listen on {endpoint}: {e}"),
        )
    };
    let socket = UdpSocket::bind(&config.endpoint)
        .await
        .map_err(|e| cannot_listen("udp", &config.endpoint, e))?;
    let addr = socket.local_addr()?;
    tracing::info!(receiver = id, %addr, "X-Ray daemon protocol (UDP) listening");
    let mut endpoints = vec![format!("udp {addr}")];
    let mut tasks = Vec::new();
    let segments = Segments::new(id, consumers.get(&Signal::Traces).cloned(), metrics.clone());
    tasks.push((
        "udp server",
        tokio::spawn(segments.serve(socket, stop.clone())),
    ));
    if let Some(proxy_config) = &config.proxy_server {
        let listener = TcpListener::bind(&proxy_config.endpoint)
            .await
            .map_err(|e| cannot_listen("proxy_server", &proxy_config.endpoint, e))?;
        let addr = listener.local_addr()?;
        tracing::info!(receiver = id, %addr, "X-Ray sampling proxy (TCP) listening");
        endpoints.push(format!("sampling proxy tcp {addr}"));
        let proxy = Arc::new(SamplingProxy::new(proxy_config));
        let component = format!("receiver/{id}/proxy");
        tasks.push((
            "sampling proxy",
            proxy::serve(listener, component, proxy, metrics, stop.clone()),
        ));
    }
    Ok(crate::component::receiver::watch_servers(
        id,
        health,
        endpoints.join(", "),
        tasks,
        &stop,
    ))
}

/// The UDP half: datagrams in, spans to the traces pipelines.
pub struct Segments {
    receiver: String,
    /// `None` when no traces pipeline lists the receiver: datagrams are then counted as
    /// refused (`no_pipeline`).
    consumer: Option<Consumer>,
    metrics: Arc<SelfMetrics>,
}

impl Segments {
    pub fn new(receiver: &str, consumer: Option<Consumer>, metrics: Arc<SelfMetrics>) -> Self {
        Segments {
            receiver: receiver.to_owned(),
            consumer,
            metrics,
        }
    }

    /// Reads datagrams until `stop` is cancelled. Errors reading the socket (an ICMP
    /// error reported on it, for instance) are logged and reading goes on.
    pub async fn serve(self, socket: UdpSocket, stop: CancellationToken) {
        let mut buf = vec![0u8; MAX_PACKET_BYTES + 1];
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                r = socket.recv_from(&mut buf) => r,
            };
            match received {
                Ok((len, from)) => {
                    let accepted = self.handle(&buf[..len]);
                    tracing::trace!(%from, bytes = len, accepted, "X-Ray datagram");
                }
                Err(e) => tracing::debug!(receiver = %self.receiver, error = %e,
                    "reading the X-Ray UDP socket failed"),
            }
        }
    }

    /// Decodes one datagram and hands its spans to the pipelines; whether they took it.
    pub fn handle(&self, datagram: &[u8]) -> bool {
        let refused = |reason: &str, count: u64| {
            self.metrics
                .receiver_refused(&self.receiver, UDP, Signal::Traces, reason)
                .inc_by(count);
        };
        let spans = match decode(datagram) {
            Ok(spans) => spans,
            Err(e) => {
                tracing::debug!(receiver = %self.receiver, reason = e.reason(), error = %e,
                    "X-Ray datagram refused");
                refused(e.reason(), 1);
                return false;
            }
        };
        let data = SignalData::Traces(vec![spans]);
        let items = data.item_count() as u64;
        let Some(consumer) = &self.consumer else {
            refused("no_pipeline", items);
            return false;
        };
        match consumer.try_consume(data) {
            Ok(()) => {
                self.metrics
                    .receiver_accepted(&self.receiver, UDP, Signal::Traces)
                    .inc_by(items);
                true
            }
            Err(e) => {
                let reason = match &e {
                    ConsumeError::Full { .. } => "queue_full",
                    ConsumeError::TooLarge { .. } => "over_capacity",
                    ConsumeError::ShuttingDown => "shutting_down",
                    ConsumeError::NotStored { .. } => "storage_error",
                    ConsumeError::MemoryLimit(_) => "memory_limit",
                };
                tracing::debug!(receiver = %self.receiver, error = %e, spans = items,
                    "X-Ray segment dropped: UDP cannot ask the SDK to retry");
                refused(reason, items);
                false
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::component::factory::ReceiverFactory for XrayReceiverConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Traces]
    }

    fn validate(&self) -> Result<(), Invalid> {
        XrayReceiverConfig::validate(self)
    }

    async fn start(
        &self,
        ctx: crate::component::factory::ReceiverContext<'_>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, crate::component::factory::BuildError> {
        Ok(self::start(
            ctx.id,
            self,
            ctx.consumers,
            ctx.metrics,
            ctx.health,
            ctx.stop,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests;
