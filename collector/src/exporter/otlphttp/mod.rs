//! The `otlphttp` exporter: OTLP over HTTP (protobuf or JSON, gzip or not) to any OTLP/HTTP
//! receiver, and to AWS's OTLP endpoints (X-Ray traces, CloudWatch Logs, CloudWatch
//! metrics) when an `auth` extension such as `sigv4auth` signs the requests.
//!
//! The data is sent as it arrived, without translation: the body is encoded straight from
//! the batch ([`encode`]). Each request is signed by the authenticator just before it is
//! sent, on every attempt, because a SigV4 signature carries the time it was made.
//!
//! For X-Ray, [`limits`] first applies the endpoint's documented limits (spans per
//! request, request bytes, span size, timestamp window) so that a batch is never refused
//! as a whole for one of them. One attempt per request; what fails in a way worth retrying
//! is left to the driver as encoded requests ([`PendingRequests`]), and [`response`] says
//! which answers those are.

pub mod config;
pub(crate) mod encode;
pub(crate) mod limits;
pub mod log_groups;
pub(crate) mod response;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;
use tokio::sync::OnceCell;

use self::config::{Compression, OtlpHttpExporterConfig};
use self::log_groups::LogGroups;
use self::response::REJECTED_BY_DESTINATION;
use crate::aws::cloudwatch_logs::target::LogTarget;
use crate::aws::sigv4::aws_endpoint_scope;
use crate::component::auth::{AuthError, ClientAuthenticator};
use crate::component::factory::{BuildError, ExporterContext, ExporterFactory};
use crate::component::validate::Invalid;
use crate::component::{
    ExportError, ExportReport, Exporter, Pending, Reason, RequestSender, RetryConfig,
    SendingQueueConfig, send_in_order,
};
use crate::model::{Signal, SignalData};
use crate::net::error_chain;
use crate::net::tls_error::TlsError;

/// Answers larger than this are not read: an OTLP answer is a few bytes, an error page a
/// few kilobytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An OTLP/HTTP client to one destination; cheap to clone (the state is shared), so the
/// requests left to retry can hold one.
#[derive(Clone)]
pub struct OtlpHttpExporter(Arc<Destination>);

pub struct Destination {
    config: OtlpHttpExporterConfig,
    /// Per signal (`Signal::ALL` order), the URL it is sent to.
    urls: [Option<http::Uri>; 3],
    headers: http::HeaderMap,
    auth: Option<Arc<dyn ClientAuthenticator>>,
    xray_limits: bool,
    log_groups: Option<LogGroups>,
    /// The `tls` block, loaded at start-up (a bad file fails it, naming the file); `None`:
    /// the system trust store, loaded with the client.
    tls: Option<(rustls::ClientConfig, Option<ServerName<'static>>)>,
    /// Made on first use: loading the trust store is start-up work a collector that never
    /// exports (or `validate`) does not need.
    client: OnceCell<HttpClient>,
}

/// One request as built: what the driver resends, unchanged, after a retryable failure.
struct EncodedRequest {
    signal: Signal,
    body: Bytes,
    items: usize,
    /// The log group and stream the request's records go to (`log_groups`).
    log_target: Option<LogTarget>,
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl OtlpHttpExporter {
    pub fn new(
        config: &OtlpHttpExporterConfig,
        auth: Option<Arc<dyn ClientAuthenticator>>,
        log_groups: Option<LogGroups>,
    ) -> Result<OtlpHttpExporter, BuildError> {
        let mut urls: [Option<http::Uri>; 3] = [None, None, None];
        for signal in Signal::ALL {
            if let Some(url) = config.url(signal) {
                urls[signal_index(signal)] = Some(
                    url.parse()
                        .map_err(|e| Invalid::unparsable(format!("{signal} endpoint"), url, e))?,
                );
            }
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &config.headers {
            headers.insert(
                http::HeaderName::try_from(name.as_str())
                    .map_err(|e| Invalid::cause(format!("headers.{name}"), e))?,
                http::HeaderValue::try_from(value.as_str())
                    .map_err(|e| Invalid::cause(format!("headers.{name}"), e))?,
            );
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(config.encoding.content_type()),
        );
        if config.compression == Compression::Gzip {
            headers.insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!(
                "aurastream-collector/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        let tls = if config.tls.has_options() {
            let unusable = |source: TlsError| BuildError::unusable("tls", source);
            let mut tls = (*config.tls.load().map_err(unusable)?).clone();
            // hyper-rustls sets ALPN itself (HTTP/1.1 here) and refuses a preset one.
            tls.alpn_protocols.clear();
            let name = config
                .tls
                .server_name_override
                .as_ref()
                .map(|n| {
                    ServerName::try_from(n.clone()).map_err(|source| {
                        unusable(TlsError::ServerName {
                            name: n.clone(),
                            source,
                        })
                    })
                })
                .transpose()?;
            Some((tls, name))
        } else {
            None
        };
        Ok(OtlpHttpExporter(Arc::new(Destination {
            config: config.clone(),
            urls,
            headers,
            auth,
            xray_limits: config.xray_limits(),
            log_groups,
            tls,
            client: OnceCell::new(),
        })))
    }

    fn url(&self, signal: Signal) -> Result<&http::Uri, ExportError> {
        self.0.urls[signal_index(signal)].as_ref().ok_or_else(|| {
            ExportError::permanent(
                "no_endpoint",
                format!(
                    "no {signal} endpoint: set `endpoint` or `{signal}_endpoint` on the exporter"
                ),
            )
        })
    }

    async fn client(&self) -> &HttpClient {
        self.0
            .client
            .get_or_init(|| async {
                // The provider is named, not left to rustls's process-wide default (see
                // the X-Ray sampling proxy). Without a trust store, http:// still works
                // and https:// fails its handshake with a message saying so.
                let builder = hyper_rustls::HttpsConnectorBuilder::new();
                if let Some((tls, name)) = &self.0.tls {
                    let builder = builder.with_tls_config(tls.clone()).https_or_http();
                    let builder = match name {
                        Some(name) => builder.with_server_name_resolver(
                            hyper_rustls::FixedServerNameResolver::new(name.clone()),
                        ),
                        None => builder,
                    };
                    return Client::builder(TokioExecutor::new())
                        .build(builder.enable_http1().build());
                }
                let connector =
                    match builder.with_provider_and_native_roots(crate::net::crypto_provider()) {
                        Ok(b) => b.https_or_http().enable_http1().build(),
                        Err(e) => {
                            tracing::warn!(error = %e,
                            "no system trust store: https endpoints cannot be verified");
                            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                                crate::net::crypto_provider(),
                            ))
                            .with_safe_default_protocol_versions()
                            .expect("the provider offers the default TLS versions")
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth();
                            hyper_rustls::HttpsConnectorBuilder::new()
                                .with_tls_config(tls)
                                .https_or_http()
                                .enable_http1()
                                .build()
                        }
                    };
                Client::builder(TokioExecutor::new()).build(connector)
            })
            .await
    }

    /// Encodes `batch` (or the parts X-Ray's limits cut it into) as requests.
    fn build(&self, parts: Vec<SignalData>) -> Result<Vec<EncodedRequest>, ExportError> {
        parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|p| self.encode(&p, None))
            .collect()
    }

    fn encode(
        &self,
        batch: &SignalData,
        log_target: Option<LogTarget>,
    ) -> Result<EncodedRequest, ExportError> {
        let body = encode::encode(batch, self.0.config.encoding)
            .map_err(|e| ExportError::permanent("encoding", format!("JSON encoding: {e}")))?;
        Ok(EncodedRequest {
            signal: batch.signal(),
            body: Bytes::from(encode::compress(body, self.0.config.compression)),
            items: batch.item_count(),
            log_target,
        })
    }

    /// Sends `requests` in order, one attempt each ([`send_in_order`]). `first`: nothing
    /// of the batch was settled before.
    async fn send_all(
        &self,
        requests: Vec<EncodedRequest>,
        report: ExportReport,
        first: bool,
    ) -> Result<ExportReport, ExportError> {
        send_in_order(self, requests, report, first).await
    }

    /// One request: signed, sent, its answer classified. `Ok` holds the items the
    /// destination rejected in a partial-success answer.
    async fn send(&self, request: &EncodedRequest) -> Result<Vec<(Reason, usize)>, ExportError> {
        let url = self.url(request.signal)?;
        let (mut parts, ()) = http::Request::post(url.clone())
            .body(())
            .map_err(|e| ExportError::permanent("request", e.to_string()))?
            .into_parts();
        parts.headers = self.0.headers.clone();
        if let (Some(target), Some(groups)) = (&request.log_target, &self.0.log_groups) {
            groups.ensure(target).await?;
            for (name, value) in [
                ("x-aws-log-group", &target.group),
                ("x-aws-log-stream", &target.stream),
            ] {
                let value = http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                    ExportError::permanent(
                        "invalid_log_group",
                        format!("{name} `{value}` is not a valid header value"),
                    )
                })?;
                parts.headers.insert(name, value);
            }
        }
        if let Some(auth) = &self.0.auth {
            auth.authorize(&mut parts, &request.body)
                .await
                .map_err(|e| auth_error(url, e))?;
        }
        let http_request = http::Request::from_parts(parts, Full::new(request.body.clone()));
        let timeout = self.0.config.timeout;
        let exchange = async {
            let response = self
                .client()
                .await
                .request(http_request)
                .await
                .map_err(|e| {
                    ExportError::retryable("connection", format!("{url}: {}", error_chain(&e)))
                })?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, ExportError>((head, body))
        };
        let (head, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                ExportError::retryable("timeout", format!("{url}: no answer within {timeout:?}"))
            })??;
        if !head.status.is_success() {
            return Err(response::refusal(
                &url.to_string(),
                head.status,
                &head.headers,
                &body,
            ));
        }
        let content_type = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let (rejected, message) = response::rejected(request.signal, content_type, &body);
        if rejected == 0 {
            return Ok(Vec::new());
        }
        let n = usize::try_from(rejected)
            .unwrap_or(usize::MAX)
            .min(request.items);
        tracing::warn!(%url, rejected = n, error = %message,
            "the destination rejected part of a request (OTLP partial success)");
        Ok(vec![(Reason::Named(REJECTED_BY_DESTINATION), n)])
    }
}

/// An authenticator's failure as the driver's: credentials that may come later are
/// retried; a request that cannot be signed is refused.
fn auth_error(url: &http::Uri, e: AuthError) -> ExportError {
    match e {
        AuthError::Unavailable(m) => {
            ExportError::retryable("auth_unavailable", format!("{url}: {m}"))
        }
        AuthError::Missing(m) | AuthError::Invalid(m) => {
            ExportError::permanent("auth_failed", format!("{url}: {m}"))
        }
    }
}

#[async_trait]
impl Exporter for OtlpHttpExporter {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
        self.url(batch.signal())?;
        let mut report = ExportReport::delivered();
        let requests = match batch {
            SignalData::Traces(resources) if self.0.xray_limits => {
                match limits::prepare(resources, SystemTime::now()) {
                    limits::Prepared::AsIs => vec![self.encode(batch, None)?],
                    limits::Prepared::Cut {
                        requests,
                        refused,
                        trimmed,
                    } => {
                        if trimmed > 0 {
                            tracing::warn!(
                                spans = trimmed,
                                "spans over X-Ray's 200 KB limit trimmed (aurastream.truncated)"
                            );
                        }
                        report.dropped.extend(refused);
                        self.build(requests)?
                    }
                }
            }
            SignalData::Logs(resources) if self.0.log_groups.is_some() => {
                let groups = self.0.log_groups.as_ref().expect("checked by the guard");
                groups
                    .split(resources)
                    .into_iter()
                    .map(|(target, logs)| self.encode(&SignalData::Logs(logs), Some(target)))
                    .collect::<Result<_, _>>()?
            }
            _ => vec![self.encode(batch, None)?],
        };
        self.send_all(requests, report, true).await
    }

    fn health_detail(&self) -> Option<String> {
        let urls: Vec<String> = self
            .0
            .urls
            .iter()
            .flatten()
            .map(|u| u.to_string())
            .collect();
        Some(urls.join(", "))
    }
}

/// Requests of one batch the destination has not taken yet, in order, as encoded.
struct PendingRequests {
    exporter: OtlpHttpExporter,
    requests: Vec<EncodedRequest>,
}

#[async_trait]
impl Pending for PendingRequests {
    fn item_count(&self) -> usize {
        self.requests.iter().map(|r| r.items).sum()
    }

    async fn send(self: Box<Self>) -> Result<ExportReport, ExportError> {
        self.exporter
            .send_all(self.requests, ExportReport::delivered(), false)
            .await
    }
}

impl ExporterFactory for OtlpHttpExporterConfig {
    fn signals(&self) -> &'static [Signal] {
        &Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
        OtlpHttpExporterConfig::validate(self)
    }

    fn delivery(&self) -> (&RetryConfig, &SendingQueueConfig) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    /// The region of an X-Ray traces endpoint (`xray.<region>.amazonaws.com`).
    fn transaction_search_regions(&self) -> Vec<String> {
        self.url(Signal::Traces)
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| aws_endpoint_scope(u.host()?))
            .filter(|(service, _)| service == "xray")
            .map(|(_, region)| region)
            .into_iter()
            .collect()
    }

    fn build(&self, ctx: &ExporterContext<'_>) -> Result<Arc<dyn Exporter>, BuildError> {
        let auth = match &self.auth {
            Some(a) => Some(
                ctx.auth
                    .client(&a.authenticator)
                    .map_err(|e| BuildError::unusable("auth", e))?,
            ),
            None => None,
        };
        let log_groups = self
            .log_groups
            .as_ref()
            .map(|g| LogGroups::new(g, ctx.id, ctx.metrics, self.timeout));
        Ok(Arc::new(OtlpHttpExporter::new(self, auth, log_groups)?))
    }
}

#[async_trait]
impl RequestSender<EncodedRequest> for OtlpHttpExporter {
    async fn send_request(
        &self,
        request: &EncodedRequest,
    ) -> Result<Vec<(Reason, usize)>, ExportError> {
        self.send(request).await
    }

    fn items(&self, request: &EncodedRequest) -> usize {
        request.items
    }

    fn destination(&self, request: &EncodedRequest) -> String {
        self.url(request.signal)
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    fn left_over(&self, requests: Vec<EncodedRequest>) -> Box<dyn Pending> {
        Box::new(PendingRequests {
            exporter: self.clone(),
            requests,
        })
    }
}

#[cfg(test)]
mod tests;
