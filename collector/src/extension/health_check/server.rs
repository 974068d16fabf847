//! The HTTP listener of the `health_check` extension: `/health` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::HealthCheckConfig;
use crate::component::factory::BuildError;
use crate::net::limits::Limits;
use crate::net::server::{self, Listener};
use crate::net::tls_server::ServerTls;
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

#[derive(Clone)]
struct AppState {
    health: Arc<HealthRegistry>,
    metrics: Arc<SelfMetrics>,
}

/// Connections the listener holds at once: probes and scrapers, not telemetry clients.
const MAX_CONNECTIONS: usize = 256;

/// Binds the listener (so a taken port or unusable TLS files fail start-up) and serves
/// until `stop`, on the accept loop every listener shares (timeouts, connection cap).
pub async fn start(
    config: &HealthCheckConfig,
    health: Arc<HealthRegistry>,
    metrics: Arc<SelfMetrics>,
    stop: CancellationToken,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), BuildError> {
    let component = "extension/health_check".to_string();
    let tls = config
        .tls
        .as_ref()
        .map(|t| ServerTls::load_counted(t, &component, &metrics))
        .transpose()
        .map_err(|source| BuildError::unusable("tls", source))?;
    let cannot_listen = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", config.endpoint),
        )
    };
    let listener = TcpListener::bind(&config.endpoint)
        .await
        .map_err(cannot_listen)?;
    let addr = listener.local_addr().map_err(cannot_listen)?;
    let app = Router::new()
        .route(&config.path, get(health_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState {
            health,
            metrics: metrics.clone(),
        });
    let spec = Listener {
        component,
        tls,
        limits: Limits::http_defaults(MAX_CONNECTIONS),
    };
    Ok((addr, server::serve(listener, spec, app, metrics, stop)))
}

async fn health_handler(State(s): State<AppState>) -> impl IntoResponse {
    let report = s.health.report();
    // Degraded is the design pushing back, not a reason for an orchestrator to restart.
    let code = if report.overall_status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(report))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
