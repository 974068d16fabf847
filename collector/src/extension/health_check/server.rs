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
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

#[derive(Clone)]
struct AppState {
    health: Arc<HealthRegistry>,
    metrics: Arc<SelfMetrics>,
}

/// Binds the listener (so a taken port fails start-up) and serves until `stop`.
pub async fn start(
    config: &HealthCheckConfig,
    health: Arc<HealthRegistry>,
    metrics: Arc<SelfMetrics>,
    stop: CancellationToken,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(&config.endpoint).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(&config.path, get(health_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { health, metrics });
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health/metrics server stopped");
        }
    });
    Ok((addr, task))
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
