//! The `lambda` receiver: the Lambda Telemetry API's HTTP destination.
//!
//! Lambda POSTs JSON arrays of events (`platform.start`, `platform.runtimeDone`,
//! `platform.report`, `function` log lines, ...) to the listener every `buffering.timeout`.
//! [`translate`] turns them into OTLP data, handed to the pipelines like any receiver's;
//! the request ids of `platform.runtimeDone` events go to the extension's lifecycle, which
//! flushes the pipelines when the invocation it is waiting for has ended.
//!
//! Data is handed over *before* the runtimeDone notice, so the invocation's own span is
//! already in the pipeline when the flush it triggers starts.

pub mod config;
pub mod translate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aurastream_proto::lambda::TelemetryEvent;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::config::LambdaReceiverConfig;
use self::translate::{FunctionInfo, Translator};
use crate::component::{ConsumeError, Consumer};
use crate::model::{Signal, SignalData};
use crate::telemetry::metrics::SelfMetrics;

const TRANSPORT: &str = "telemetry_api";

/// The running listener.
pub struct Listener {
    /// The bound address (the port is the one to subscribe with when configured as 0).
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

struct Shared {
    receiver: String,
    translator: Mutex<Translator>,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    runtime_done: mpsc::UnboundedSender<String>,
}

/// Binds the listener and serves until `stop`. `consumers` may be empty (no pipeline
/// lists the receiver): the runtimeDone notices still flow, the data goes nowhere.
pub async fn start(
    id: &str,
    config: &LambdaReceiverConfig,
    function: &FunctionInfo,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    runtime_done: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
) -> std::io::Result<Listener> {
    let listener = TcpListener::bind(&config.endpoint).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "receiver `{id}` cannot listen on {} for the Telemetry API: {e}",
                config.endpoint
            ),
        )
    })?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        receiver: id.into(),
        translator: Mutex::new(Translator::new(function, &config.namespace)),
        consumers,
        metrics,
        runtime_done,
    });
    let app = Router::new().route("/", post(deliver)).with_state(shared);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "Telemetry API listener failed");
        }
    });
    Ok(Listener { addr, task })
}

/// One delivery from Lambda.
async fn deliver(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> StatusCode {
    let events: Vec<TelemetryEvent> = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Telemetry API delivery");
            return StatusCode::BAD_REQUEST;
        }
    };
    let translated = shared
        .translator
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .translate(events);
    for data in [translated.traces, translated.metrics, translated.logs]
        .into_iter()
        .flatten()
    {
        shared.consume(data);
    }
    for id in translated.runtime_done {
        // The lifecycle only goes away when the process is exiting.
        let _ = shared.runtime_done.send(id);
    }
    StatusCode::OK
}

impl Shared {
    /// Hands data to the pipelines. Lambda does not redeliver what the extension accepted,
    /// and refusing the delivery would delay the runtimeDone notice behind it, so data a
    /// full pipeline cannot take is counted as refused (and logged), not retried.
    fn consume(&self, data: SignalData) {
        let signal = data.signal();
        let Some(consumer) = self.consumers.get(&signal) else {
            return;
        };
        let items = data.item_count();
        match consumer.try_consume(data) {
            Ok(()) => {
                self.metrics
                    .receiver_accepted(&self.receiver, TRANSPORT, signal)
                    .inc_by(items as u64);
            }
            Err(e) => {
                let reason = match &e {
                    ConsumeError::Full { .. } => "queue_full",
                    ConsumeError::TooLarge { .. } => "too_large",
                    ConsumeError::ShuttingDown => "shutting_down",
                    ConsumeError::NotStored { .. } => "storage_error",
                };
                self.metrics
                    .receiver_refused(&self.receiver, TRANSPORT, signal, reason)
                    .inc_by(items as u64);
                tracing::warn!(receiver = %self.receiver, %signal, items, error = %e,
                    "Lambda platform telemetry not accepted");
            }
        }
    }
}
