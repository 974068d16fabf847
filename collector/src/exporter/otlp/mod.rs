//! The `otlp` exporter: OTLP/gRPC to another collector (a gateway, an ADOT collector, any
//! OTLP receiver).
//!
//! One lazily connected tonic channel per exporter: it reconnects by itself after the peer
//! restarts, and multiplexes concurrent exports (`sending_queue.num_consumers`) over one
//! HTTP/2 connection. The channel is made on the first export rather than at build time
//! because making it spawns its connection task, which needs the runtime the pipelines run
//! on.
//!
//! A batch that would exceed the receiver's message limit is sent as several requests
//! ([`request_size`]); if one of them fails in a way worth retrying, the requests not yet
//! delivered come back as the part to retry.
//!
//! Outcomes, in the driver's terms ([`retry`] has the table): a transient gRPC error is
//! retryable; a request the peer refuses is permanent; OTLP partial success (the peer
//! accepted the request but rejected some items) is a delivery with those items counted
//! as dropped with reason `rejected_by_destination`, since resending them would be
//! rejected again.

pub mod config;
pub(crate) mod request_size;
pub(crate) mod retry;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use aurastream_proto::otlp::metrics_service::metrics_service_client::MetricsServiceClient;
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;
use aurastream_proto::otlp::trace_service::trace_service_client::TraceServiceClient;

use self::config::{Compression, OtlpExporterConfig, Transport, endpoint_uri, is_https};
use self::request_size::MAX_REQUEST_BYTES;
use crate::component::auth::{Authenticators, ClientAuthenticator};
use crate::component::factory::BuildError;
use crate::component::validate::Invalid;
use crate::component::{
    ExportError, ExportReport, Exporter, Pending, Reason, RequestSender, send_in_order,
};
use crate::model::{Signal, SignalData};
use crate::net::tls_client::TlsConnector;

/// Reason for items the peer answered with partial success.
pub const REJECTED_BY_DESTINATION: &str = "rejected_by_destination";

/// An OTLP/gRPC client to one peer; cheap to clone (the state is shared), so the requests
/// left to retry can hold one.
#[derive(Clone)]
pub struct OtlpExporter(Arc<Peer>);

impl std::ops::Deref for OtlpExporter {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.0
    }
}

pub struct Peer {
    /// The URI connected to, for messages and `/health`.
    uri: String,
    endpoint: Endpoint,
    channel: OnceLock<Channel>,
    compression: Option<CompressionEncoding>,
    timeout: Duration,
    security: Security,
}

/// What every connection and request of an exporter carries: TLS (loaded once, at build
/// time, so a bad PEM file fails start-up), fixed headers, and the authenticator's
/// credentials.
#[derive(Clone, Default)]
pub struct Security {
    tls: Option<TlsConnector>,
    headers: http::HeaderMap,
    auth: Option<Arc<dyn ClientAuthenticator>>,
}

impl Security {
    /// `https`: the endpoint's scheme asked for TLS.
    pub fn new(
        transport: &Transport,
        https: bool,
        authenticators: &Authenticators,
    ) -> Result<Security, BuildError> {
        let tls = if transport.tls.enabled(https) {
            let connector = transport.tls.load().and_then(|config| {
                TlsConnector::new(config, transport.tls.server_name_override.as_deref())
            });
            Some(connector.map_err(|source| BuildError::unusable("tls", source))?)
        } else {
            None
        };
        let mut headers = http::HeaderMap::new();
        for (name, value) in &transport.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Invalid::value("headers", name, "is not a valid header name"))?;
            let value = http::HeaderValue::from_str(value)
                .map_err(|e| Invalid::cause(format!("headers.{name}"), e))?;
            headers.insert(name, value);
        }
        let auth = transport
            .auth
            .as_ref()
            .map(|a| {
                authenticators
                    .client(&a.authenticator)
                    .map_err(|e| BuildError::unusable("auth", e))
            })
            .transpose()?;
        Ok(Security { tls, headers, auth })
    }
}

impl OtlpExporter {
    pub fn new(
        config: &OtlpExporterConfig,
        authenticators: &Authenticators,
    ) -> Result<OtlpExporter, BuildError> {
        let uri = endpoint_uri(&config.endpoint)?;
        let transport = config.transport();
        let security = Security::new(&transport, is_https(&config.endpoint), authenticators)?;
        OtlpExporter::connect(&uri, &transport, security)
    }

    /// An exporter for `uri` (`http://host:port`), as the load balancer makes one per
    /// backend. Nothing is connected until the first export.
    pub fn connect(
        uri: &str,
        transport: &Transport,
        security: Security,
    ) -> Result<OtlpExporter, BuildError> {
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| Invalid::unparsable("endpoint", uri, e))?
            .connect_timeout(transport.timeout);
        Ok(OtlpExporter(Arc::new(Peer {
            uri: uri.to_string(),
            endpoint,
            channel: OnceLock::new(),
            compression: match transport.compression {
                Compression::Gzip => Some(CompressionEncoding::Gzip),
                Compression::None => None,
            },
            timeout: transport.timeout,
            security,
        })))
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| match &self.security.tls {
                Some(tls) => self.endpoint.connect_with_connector_lazy(tls.clone()),
                None => self.endpoint.connect_lazy(),
            })
            .clone()
    }

    /// Builds the request with the deadline the peer should also stop at, the configured
    /// headers and the authenticator's credentials. An authenticator that cannot sign now
    /// (its token file unreadable) is a retryable failure.
    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ExportError> {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.headers = self.security.headers.clone();
        if let Some(auth) = &self.security.auth {
            auth.authorize(&mut parts, &[]).await.map_err(|e| {
                ExportError::retryable("authenticator_unavailable", format!("{}: {e}", self.uri))
            })?;
        }
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(parts.headers);
        request.set_timeout(self.timeout);
        Ok(request)
    }

    /// Runs one call under the exporter's timeout and classifies its failure. `rejected`
    /// reads the partial-success count out of the response.
    async fn call<R, F>(
        &self,
        call: F,
        rejected: impl FnOnce(&R) -> i64,
    ) -> Result<ExportReport, ExportError>
    where
        F: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let response = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(retry::classify(&self.uri, &status)),
            Err(_) => {
                return Err(ExportError::retryable(
                    "deadline_exceeded",
                    format!("{}: no answer within {:?}", self.uri, self.timeout),
                ));
            }
        };
        let n = rejected(&response);
        let mut report = ExportReport::delivered();
        if n > 0 {
            tracing::warn!(endpoint = %self.uri, rejected = n,
                "the receiving collector rejected part of a batch (OTLP partial success)");
            report
                .dropped
                .push((Reason::Named(REJECTED_BY_DESTINATION), n as usize));
        }
        Ok(report)
    }
}

/// Applies the configured compression both ways (the answer is small, but a peer that
/// compresses it must not be refused).
macro_rules! client {
    ($client:ident, $self:expr) => {{
        let mut client = $client::new($self.channel());
        if let Some(c) = $self.compression {
            client = client.send_compressed(c).accept_compressed(c);
        }
        client
    }};
}

#[async_trait]
impl Exporter for OtlpExporter {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        let Some(requests) = request_size::split_to_fit(batch, MAX_REQUEST_BYTES) else {
            return self.send(batch).await;
        };
        tracing::debug!(endpoint = %self.uri, requests = requests.len(),
            "batch over the gRPC message limit sent as several requests");
        self.send_all(requests, true).await
    }

    fn health_detail(&self) -> Option<String> {
        Some(self.uri.clone())
    }
}

impl OtlpExporter {
    /// Sends `requests` in order, one attempt each ([`send_in_order`]). `first`: nothing
    /// of the batch was settled before.
    async fn send_all(
        &self,
        requests: Vec<SignalData>,
        first: bool,
    ) -> Result<ExportReport, ExportError> {
        send_in_order(self, requests, ExportReport::delivered(), first).await
    }

    /// One export request.
    async fn send(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        match batch {
            SignalData::Traces(r) => {
                let mut client = client!(TraceServiceClient, self);
                let request = self
                    .request(ExportTraceServiceRequest {
                        resource_spans: r.clone(),
                    })
                    .await?;
                self.call(client.export(request), |resp| {
                    resp.partial_success
                        .as_ref()
                        .map_or(0, |p| p.rejected_spans)
                })
                .await
            }
            SignalData::Metrics(r) => {
                let mut client = client!(MetricsServiceClient, self);
                let request = self
                    .request(ExportMetricsServiceRequest {
                        resource_metrics: r.clone(),
                    })
                    .await?;
                self.call(client.export(request), |resp| {
                    resp.partial_success
                        .as_ref()
                        .map_or(0, |p| p.rejected_data_points)
                })
                .await
            }
            SignalData::Logs(r) => {
                let mut client = client!(LogsServiceClient, self);
                let request = self
                    .request(ExportLogsServiceRequest {
                        resource_logs: r.clone(),
                    })
                    .await?;
                self.call(client.export(request), |resp| {
                    resp.partial_success
                        .as_ref()
                        .map_or(0, |p| p.rejected_log_records)
                })
                .await
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_server;
impl crate::component::factory::ExporterFactory for OtlpExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
        OtlpExporterConfig::validate(self)
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
        Ok(std::sync::Arc::new(OtlpExporter::new(self, ctx.auth)?))
    }

    fn authenticators(&self) -> Vec<(String, String)> {
        self.auth
            .iter()
            .map(|a| ("auth.authenticator".to_string(), a.authenticator.clone()))
            .collect()
    }
}

#[async_trait]
impl RequestSender<SignalData> for OtlpExporter {
    async fn send_request(
        &self,
        request: &SignalData,
    ) -> Result<Vec<(Reason, usize)>, ExportError> {
        self.send(request).await.map(|report| report.dropped)
    }

    fn items(&self, request: &SignalData) -> usize {
        request.item_count()
    }

    fn destination(&self, _: &SignalData) -> String {
        self.uri.clone()
    }

    fn left_over(&self, requests: Vec<SignalData>) -> Box<dyn Pending> {
        Box::new(PendingRequests {
            exporter: self.clone(),
            requests,
        })
    }
}

#[cfg(test)]
mod tests;

/// Requests of one batch the peer has not taken yet, in order.
struct PendingRequests {
    exporter: OtlpExporter,
    requests: Vec<SignalData>,
}

#[async_trait]
impl Pending for PendingRequests {
    fn item_count(&self) -> usize {
        self.requests.iter().map(SignalData::item_count).sum()
    }

    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError> {
        self.exporter.send_all(self.requests, false).await
    }
}
