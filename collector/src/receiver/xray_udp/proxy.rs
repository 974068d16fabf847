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
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::ProxyServerConfig;
use crate::aws::signed_http::{CallFailure, SignedHttp};
use crate::net::limits::{DEFAULT_MAX_CONNECTIONS, Limits};
use crate::net::server::{self, Listener};
use crate::telemetry::metrics::SelfMetrics;

/// The paths the X-Ray SDKs call on the daemon address.
pub const FORWARDED_PATHS: [&str; 2] = ["/GetSamplingRules", "/SamplingTargets"];
/// SigV4 signing name of X-Ray.
const SIGNING_NAME: &str = "xray";
/// How long one forwarded sampling call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The forwarding half, shared by all connections.
pub struct SamplingProxy {
    http: SignedHttp,
}

impl SamplingProxy {
    pub fn new(config: &ProxyServerConfig) -> SamplingProxy {
        SamplingProxy {
            http: SignedHttp::new(
                SIGNING_NAME,
                config.region.clone(),
                config.aws_endpoint.clone(),
                CALL_TIMEOUT,
            ),
        }
    }

    /// Uses `sdk` (credentials, region) instead of the standard AWS chain, for tests. The
    /// `region` and `aws_endpoint` options still apply on top.
    #[cfg(test)]
    pub fn with_sdk_config(self, sdk: aws_types::SdkConfig) -> SamplingProxy {
        SamplingProxy {
            http: self.http.with_sdk_config(sdk),
        }
    }

    /// Signs `body` for `path` and sends it to X-Ray; X-Ray's answer, whatever its status.
    /// Why no answer came is answered with 502 and the message, so an SDK log says what to
    /// fix.
    pub async fn forward(&self, path: &str, body: Bytes) -> Result<Response, CallFailure> {
        let answer = self.http.post(path, "application/json", body).await?;
        let mut out = Response::new(Body::from(answer.body));
        *out.status_mut() = answer.status;
        if let Some(content_type) = answer.headers.get(header::CONTENT_TYPE) {
            out.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        Ok(out)
    }
}

/// Serves the proxy on `listener` until `stop` is cancelled, on the accept loop every
/// listener shares (header, body and idle timeouts, a connection cap), counted on
/// `/metrics` as `component` (`receiver/awsxray/proxy`).
///
/// Plain HTTP only: the X-Ray SDKs speak plain HTTP to the daemon address and have no TLS
/// option for it, so the listener stays on loopback or inside the task's network.
pub fn serve(
    listener: TcpListener,
    component: String,
    proxy: Arc<SamplingProxy>,
    metrics: Arc<SelfMetrics>,
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
    let spec = Listener {
        component,
        tls: None,
        limits: Limits::http_defaults(DEFAULT_MAX_CONNECTIONS),
    };
    server::serve(listener, spec, router, metrics, stop)
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
