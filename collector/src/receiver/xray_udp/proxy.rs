//! The daemon's TCP side: X-Ray SDKs ask the daemon address for sampling rules
//! (`POST /GetSamplingRules`) and targets (`POST /SamplingTargets`), unsigned, because
//! they hold no AWS credentials of their own for it. The proxy signs each call with SigV4
//! (the collector's credentials, from the standard chain) and forwards it to X-Ray as it
//! is, then hands back X-Ray's answer as it is: status, content type and body. Forwarding
//! bytes rather than re-encoding API structs means new fields of the sampling API reach
//! the SDKs without a collector release: adaptive sampling's
//! `SamplingBoostStatisticsDocuments` (an SDK's anomaly counts per rule) go to X-Ray as
//! sent, and the `SamplingBoost` in X-Ray's targets comes back as answered.
//!
//! Only these two paths are forwarded. Anything else gets 404: a signing proxy open to
//! every X-Ray API would let any local process delete sampling rules or read traces with
//! the collector's role.

use std::sync::Arc;
use std::time::SystemTime;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::ProxyServerConfig;

/// The paths the X-Ray SDKs call on the daemon address.
pub const FORWARDED_PATHS: [&str; 2] = ["/GetSamplingRules", "/SamplingTargets"];
/// SigV4 signing name of X-Ray.
const SIGNING_NAME: &str = "xray";

/// Why a call could not be forwarded; answered with 502 and the message, so an SDK log
/// says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no AWS region for the X-Ray sampling proxy: set `proxy_server.region` or AWS_REGION")]
    NoRegion,
    #[error("no AWS credentials for the X-Ray sampling proxy: {0}")]
    Credentials(String),
    #[error("cannot load TLS root certificates for X-Ray: {0}")]
    Tls(#[from] std::io::Error),
    #[error("cannot sign the request: {0}")]
    Sign(String),
    #[error("X-Ray at {url} did not answer: {message}")]
    Upstream { url: String, message: String },
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What the proxy resolves once, on its first call, so the collector starts without
/// credentials, network or CA certificates.
struct Upstream {
    sdk: SdkConfig,
    region: String,
    base_url: String,
    client: HttpClient,
}

/// The forwarding half, shared by all connections.
pub struct SamplingProxy {
    config: ProxyServerConfig,
    base: Option<SdkConfig>,
    upstream: OnceCell<Upstream>,
}

impl SamplingProxy {
    pub fn new(config: &ProxyServerConfig) -> SamplingProxy {
        SamplingProxy {
            config: config.clone(),
            base: None,
            upstream: OnceCell::new(),
        }
    }

    /// Uses `sdk` (credentials, region) instead of the standard AWS chain; for embedding
    /// and tests. The `region` and `aws_endpoint` options still apply on top.
    pub fn with_sdk_config(mut self, sdk: SdkConfig) -> SamplingProxy {
        self.base = Some(sdk);
        self
    }

    async fn upstream(&self) -> Result<&Upstream, ProxyError> {
        self.upstream
            .get_or_try_init(|| async {
                let sdk = match &self.base {
                    Some(sdk) => sdk.clone(),
                    None => aws_config::defaults(BehaviorVersion::latest()).load().await,
                };
                let region = self
                    .config
                    .region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .ok_or(ProxyError::NoRegion)?;
                let base_url = self
                    .config
                    .aws_endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://xray.{region}.amazonaws.com"))
                    .trim_end_matches('/')
                    .to_owned();
                // The provider is named, not left to rustls's process-wide default: a
                // build that also links `ring` (any dependency may enable it) would make
                // the default ambiguous and the first TLS connection panic.
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client = Client::builder(TokioExecutor::new()).build(connector);
                tracing::debug!(%region, url = %base_url, "X-Ray sampling proxy ready");
                Ok(Upstream {
                    sdk,
                    region,
                    base_url,
                    client,
                })
            })
            .await
    }

    /// Signs `body` for `path` and sends it to X-Ray; X-Ray's answer, whatever its status.
    pub async fn forward(&self, path: &str, body: Bytes) -> Result<Response, ProxyError> {
        let upstream = self.upstream().await?;
        let credentials = upstream
            .sdk
            .credentials_provider()
            .ok_or_else(|| ProxyError::Credentials("no credentials provider configured".into()))?
            .provide_credentials()
            .await
            .map_err(|e| ProxyError::Credentials(e.to_string()))?;
        let url = format!("{}{path}", upstream.base_url);
        let uri: Uri = url.parse().map_err(|e| ProxyError::Upstream {
            url: url.clone(),
            message: format!("not a valid URL: {e}"),
        })?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let mut request = http::Request::post(uri)
            .header(header::HOST, &host)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| ProxyError::Sign(e.to_string()))?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&upstream.region)
            .name(SIGNING_NAME)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ProxyError::Sign(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            [
                (header::HOST.as_str(), host.as_str()),
                (header::CONTENT_TYPE.as_str(), "application/json"),
            ]
            .into_iter(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| ProxyError::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ProxyError::Sign(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);

        let upstream_error = |message: String| ProxyError::Upstream {
            url: url.clone(),
            message,
        };
        let response = upstream
            .client
            .request(request)
            .await
            .map_err(|e| upstream_error(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| upstream_error(e.to_string()))?
            .to_bytes();
        let mut out = Response::new(Body::from(body));
        *out.status_mut() = parts.status;
        if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        Ok(out)
    }
}

/// Serves the proxy on `listener` until `stop` is cancelled.
pub fn serve(
    listener: TcpListener,
    proxy: Arc<SamplingProxy>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let mut router = Router::new();
    for path in FORWARDED_PATHS {
        router = router.route(
            path,
            axum::routing::post(
                move |State(proxy): State<Arc<SamplingProxy>>, body: Bytes| async move {
                    handle(&proxy, path, body).await
                },
            ),
        );
    }
    let router = router
        .fallback(|uri: Uri| async move {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "{} is not forwarded; the X-Ray daemon proxy serves POST {}",
                    uri.path(),
                    FORWARDED_PATHS.join(" and POST ")
                ),
            )
        })
        .with_state(proxy);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "X-Ray sampling proxy stopped");
        }
    })
}

async fn handle(proxy: &SamplingProxy, path: &str, body: Bytes) -> Response {
    match proxy.forward(path, body).await {
        Ok(response) => {
            tracing::debug!(path, status = %response.status(), "sampling call forwarded to X-Ray");
            response
        }
        Err(e) => {
            tracing::warn!(path, error = %e, "sampling call not forwarded");
            let body = serde_json::json!({"message": e.to_string()}).to_string();
            let mut response = (StatusCode::BAD_GATEWAY, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}
