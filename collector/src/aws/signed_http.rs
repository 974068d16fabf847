//! SigV4-signed HTTP calls to an AWS service, on one pooled connection client.
//!
//! Used where a typed SDK client costs more than it gives: the X-Ray exporter's
//! `PutTraceSegments` (the hot call: the SDK would escape every document again, byte by
//! byte, into a growing buffer, and run its whole orchestrator per call) and the X-Ray
//! daemon receiver's sampling proxy (which forwards bodies it does not parse). Credentials
//! and region come from an `SdkConfig` (the standard chain unless one is given), resolved on
//! first use so the collector starts, and `validate` works, without credentials or network.

use std::time::Duration;

use aws_types::SdkConfig;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::OnceCell;

use super::sigv4::{SignError, Signer};
use crate::net::error_chain;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why a call got no answer from the service.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    #[error("no AWS region: set the component's `region` option or AWS_REGION")]
    NoRegion,
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("cannot load TLS root certificates: {0}")]
    Tls(String),
    #[error("cannot sign the request: {0}")]
    Sign(String),
    /// No connection could be made: the request never left.
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    /// The request may have reached the service (it timed out or the connection broke
    /// after it was written).
    #[error("no answer from {url}: {message}")]
    NoAnswer { url: String, message: String },
}

impl CallFailure {
    /// Whether the service may have applied the call although no answer came.
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, CallFailure::NoAnswer { .. })
    }

    /// A short code for counters and logs.
    #[cfg(any(test, feature = "awsxray"))]
    pub fn code(&self) -> &'static str {
        match self {
            CallFailure::NoRegion => "no_region",
            CallFailure::Credentials(_) => "no_credentials",
            CallFailure::Tls(_) => "tls_roots",
            CallFailure::Sign(_) => "signing_failed",
            CallFailure::Connect { .. } => "dispatch_failure",
            CallFailure::NoAnswer { .. } => "timeout",
        }
    }
}

/// What the service answered, whatever the status.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The AWS error code of a failed answer: the `x-amzn-ErrorType` header, else the JSON
    /// body's `__type` (both may carry a namespace prefix or a `:`-suffix to strip).
    pub fn error_code(&self) -> Option<String> {
        let raw = self
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
                v.get("__type")?.as_str().map(str::to_owned)
            })?;
        let code = raw.split(':').next().unwrap_or(&raw);
        let code = code.rsplit('#').next().unwrap_or(code);
        (!code.is_empty()).then(|| code.to_owned())
    }

    /// The service's message of a failed answer (`message` or `Message` in the body),
    /// else the body as text.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("Message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

/// Where and as whom to call, resolved once.
struct Resolved {
    signer: Signer,
    base_url: String,
    client: HttpClient,
}

/// Signed calls to one AWS service (`xray`, `logs`, ...).
pub struct SignedHttp {
    signing_name: &'static str,
    region: Option<String>,
    endpoint: Option<String>,
    base: Option<SdkConfig>,
    timeout: Duration,
    resolved: OnceCell<Resolved>,
}

impl SignedHttp {
    /// `region` and `endpoint` override the chain's region and the service's public
    /// endpoint ([`public_endpoint`]).
    pub fn new(
        signing_name: &'static str,
        region: Option<String>,
        endpoint: Option<String>,
        timeout: Duration,
    ) -> SignedHttp {
        SignedHttp {
            signing_name,
            region,
            endpoint,
            base: None,
            timeout,
            resolved: OnceCell::new(),
        }
    }

    /// Uses `sdk` (credentials, region) instead of the standard AWS chain; for embedding
    /// and tests. The `region` and `endpoint` options still apply on top.
    pub fn with_sdk_config(mut self, sdk: SdkConfig) -> SignedHttp {
        self.base = Some(sdk);
        self
    }

    async fn resolved(&self) -> Result<&Resolved, CallFailure> {
        self.resolved
            .get_or_try_init(|| async {
                let sdk = match &self.base {
                    Some(sdk) => sdk.clone(),
                    None => super::credentials::load().await,
                };
                let region = self
                    .region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .ok_or(CallFailure::NoRegion)?;
                // As the SDK: the component's `endpoint`, else `AWS_ENDPOINT_URL` (loaded
                // into the config), else the service's public endpoint.
                let base_url = self
                    .endpoint
                    .clone()
                    .or_else(|| sdk.endpoint_url().map(str::to_owned))
                    .unwrap_or_else(|| public_endpoint(self.signing_name, &region))
                    .trim_end_matches('/')
                    .to_owned();
                // The provider is named, not left to rustls's process-wide default: a
                // build that also links `ring` (any dependency may enable it) would make
                // the default ambiguous and the first TLS connection panic.
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(crate::net::crypto_provider())
                    .map_err(|e| CallFailure::Tls(e.to_string()))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                let client = Client::builder(TokioExecutor::new()).build(connector);
                tracing::debug!(service = self.signing_name, %region, url = %base_url,
                    "AWS endpoint resolved");
                // The signer caches credentials until shortly before they expire, so the
                // chain (IMDS, ECS, STS) is not asked on every call.
                let signer = Signer::new(Some(region), Some(self.signing_name.into()), None)
                    .with_sdk_config(sdk);
                Ok(Resolved {
                    signer,
                    base_url,
                    client,
                })
            })
            .await
    }

    /// POSTs `body` to `path`, signed; the service's answer whatever its status, or why
    /// none came within the timeout.
    pub async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Answer, CallFailure> {
        self.post_with(path, content_type, &[], body).await
    }

    /// Like [`SignedHttp::post`], with more headers (signed with the rest), such as the
    /// `X-Amz-Target` that names the operation of a JSON protocol.
    pub async fn post_with(
        &self,
        path: &str,
        content_type: &'static str,
        headers: &[(&'static str, &str)],
        body: Bytes,
    ) -> Result<Answer, CallFailure> {
        let resolved = self.resolved().await?;
        let url = format!("{}{path}", resolved.base_url);
        let uri: Uri = url
            .parse()
            .map_err(|e| CallFailure::Sign(format!("{url} is not a valid URL: {e}")))?;
        let mut request = http::Request::post(uri).header(header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request
            .body(())
            .map_err(|e| CallFailure::Sign(e.to_string()))?
            .into_parts();
        resolved
            .signer
            .sign(&mut parts, &body)
            .await
            .map_err(|e| match e {
                SignError::Credentials(m) => CallFailure::Credentials(m),
                SignError::NoRegion => CallFailure::NoRegion,
                other => CallFailure::Sign(other.to_string()),
            })?;
        let request = http::Request::from_parts(parts, Full::new(body));

        let call = async {
            let response = resolved.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    CallFailure::Connect {
                        url: url.clone(),
                        message: error_chain(&e),
                    }
                } else {
                    CallFailure::NoAnswer {
                        url: url.clone(),
                        message: error_chain(&e),
                    }
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| CallFailure::NoAnswer {
                    url: url.clone(),
                    message: e.to_string(),
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        // A zero timeout means none (the exporters' `timeout: 0`).
        if self.timeout.is_zero() {
            return call.await;
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(CallFailure::NoAnswer {
                url: url.clone(),
                message: format!("timed out after {:?}", self.timeout),
            }),
        }
    }
}

/// A service's public regional endpoint: `https://logs.us-east-1.amazonaws.com`, and
/// `amazonaws.com.cn` in the China regions.
pub fn public_endpoint(signing_name: &str, region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{signing_name}.{region}.{domain}")
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;

    use super::*;

    fn answer(headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status: StatusCode::BAD_REQUEST,
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn public_endpoints_follow_the_partition() {
        assert_eq!(
            public_endpoint("logs", "eu-west-1"),
            "https://logs.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            public_endpoint("xray", "cn-north-1"),
            "https://xray.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn error_codes_lose_their_prefix_and_suffix() {
        let a = answer(
            &[(
                "x-amzn-ErrorType",
                "ThrottledException:http://internal.amazon.com/",
            )],
            "{}",
        );
        assert_eq!(a.error_code().as_deref(), Some("ThrottledException"));
        let a = answer(
            &[],
            r#"{"__type":"com.amazonaws.xray#InvalidRequestException","message":"bad doc"}"#,
        );
        assert_eq!(a.error_code().as_deref(), Some("InvalidRequestException"));
        assert_eq!(a.error_message(), "bad doc");
        let a = answer(&[], "not json");
        assert_eq!(a.error_code(), None);
        assert_eq!(a.error_message(), "not json");
    }

    #[tokio::test]
    async fn a_refused_connection_was_not_delivered() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("AKID", "SECRET", None, None, "test"),
                ),
            )
            .build();
        let http = SignedHttp::new(
            "xray",
            Some("us-east-1".into()),
            Some(format!("http://127.0.0.1:{port}")),
            Duration::from_secs(5),
        )
        .with_sdk_config(sdk);
        let err = http
            .post(
                "/TraceSegments",
                "application/json",
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CallFailure::Connect { .. }), "{err:?}");
        assert!(!err.maybe_delivered());
    }
}
