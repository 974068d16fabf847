//! A sentiment-analysis API instrumented with aurastream-sdk.
//!
//! ```text
//! cargo run -p aurastream-collector &                      # writes ./aurastream-data/
//! cargo run -p aurastream-sdk --example sentiment_api -- --port 8080
//! curl -s localhost:8080/analyze -H 'content-type: application/json' \
//!      -H 'x-customer-id: customer_123' -d '{"text": "I love this, great service"}'
//! ```
//!
//! The port comes from `--port N`, else `SENTIMENT_API_PORT`, else 8080; the service binds
//! to 127.0.0.1 only. The collector endpoint follows the `OTEL_EXPORTER_OTLP_*` variables
//! (default gRPC on localhost:4317). Ctrl-C stops the server and flushes all telemetry.

#[path = "sentiment_api/app.rs"]
mod app;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;

const DEFAULT_PORT: u16 = 8080;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port = port(
        std::env::args().skip(1),
        std::env::var("SENTIMENT_API_PORT").ok(),
    )?;
    let guard = aurastream_sdk::init("sentiment-api")
        .service_version(env!("CARGO_PKG_VERSION"))
        .install()
        .context("starting telemetry")?;

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (choose another with --port)"))?;
    tracing::info!(%addr, "sentiment API listening");
    let app = app::router(guard.telemetry().clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        // If the signal handler cannot be installed, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await
    .context("serving")?;

    tracing::info!("shutting down, flushing telemetry");
    guard.shutdown().await.context("flushing telemetry")?;
    Ok(())
}

/// `--port N` / `--port=N` wins over the environment variable.
fn port(mut args: impl Iterator<Item = String>, env: Option<String>) -> anyhow::Result<u16> {
    let mut from_flag = None;
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix("--port=") {
            from_flag = Some(value.to_owned());
        } else if arg == "--port" {
            from_flag = Some(args.next().context("--port needs a value")?);
        } else {
            anyhow::bail!("unknown argument {arg:?} (usage: sentiment_api [--port N])");
        }
    }
    match from_flag.or(env) {
        Some(value) => value
            .parse()
            .with_context(|| format!("port {value:?} is not a number from 0 to 65535")),
        None => Ok(DEFAULT_PORT),
    }
}
