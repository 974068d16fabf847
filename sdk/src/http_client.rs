//! The HTTP client behind `Protocol::HttpProtobuf` and `Protocol::HttpJson`.
//!
//! The SDK's batch processors export from their own threads, outside any tokio runtime.
//! opentelemetry-otlp picks its default HTTP client by cargo feature, and an async client
//! (chosen as soon as any crate in the build enables `reqwest-client`) panics there for
//! want of a reactor. This client does not depend on the calling thread: it hands each
//! request to the tokio runtime `init` ran in, and the exporter thread only waits for the
//! answer.
//!
//! It is hyper-util's client with hyper-rustls and the SDK's own rustls configuration
//! (see [`crate::tls`]), the same stack the collector uses. Not reqwest: a TLS feature on
//! reqwest would switch every reqwest client in the application's build to rustls without a
//! crypto provider, and those panic on their first request.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// The OTLP default export timeout, overridden by `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Larger collector responses are refused: OTLP answers are a few bytes.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// An HTTP(S) client bound to a tokio runtime.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeHttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("no answer from the collector within {0:?} (OTEL_EXPORTER_OTLP_TIMEOUT)")]
    Timeout(Duration),
    #[error("the tokio runtime that ran init() is gone: {0}")]
    RuntimeGone(String),
}

impl RuntimeHttpClient {
    /// Binds to `runtime` and speaks TLS to `https://` URLs with `tls`; the request
    /// timeout is `OTEL_EXPORTER_OTLP_TIMEOUT` or 10 s.
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        tls: rustls::ClientConfig,
    ) -> RuntimeHttpClient {
        let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        RuntimeHttpClient {
            client,
            runtime,
            timeout,
        }
    }
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(Full::new);
        let client = self.client.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| Box::new(ClientError::Timeout(timeout)) as HttpError)?
        });
        task.await
            .map_err(|e| Box::new(ClientError::RuntimeGone(e.to_string())) as HttpError)?
    }
}
