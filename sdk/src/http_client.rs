//! The HTTP client behind `Protocol::HttpProtobuf`.
//!
//! The SDK's batch processors export from their own threads, outside any tokio runtime.
//! opentelemetry-otlp picks its default HTTP client by cargo feature, and an async client
//! (chosen as soon as any crate in the build enables `reqwest-client`) panics there for
//! want of a reactor. This client does not depend on the calling thread: it hands each
//! request to the tokio runtime `init` ran in, and the exporter thread only waits for the
//! answer.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// The OTLP default export timeout, overridden by `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Larger collector responses are refused: OTLP answers are a few bytes.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A reqwest client bound to a tokio runtime.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("OTLP/HTTP response body over {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the tokio runtime that ran init() is gone: {0}")]
    RuntimeGone(String),
}

impl RuntimeHttpClient {
    /// Binds to `runtime`; the request timeout is `OTEL_EXPORTER_OTLP_TIMEOUT` or 10 s.
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
    ) -> Result<RuntimeHttpClient, reqwest::Error> {
        let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(RuntimeHttpClient { client, runtime })
    }
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(Box::new(ClientError::TooLarge) as HttpError);
            }
            let mut out = Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        });
        task.await
            .map_err(|e| Box::new(ClientError::RuntimeGone(e.to_string())) as HttpError)?
    }
}
