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

pub(crate) mod config;
pub(crate) mod translate;

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
use crate::component::factory::{BuildError, ReceiverContext, TelemetryListener};
use crate::component::validate::Invalid;
use crate::component::{ConsumeError, Consumer};
use crate::model::{Signal, SignalData};
use crate::telemetry::health::HealthRegistry;
use crate::telemetry::metrics::SelfMetrics;

const TRANSPORT: &str = "telemetry_api";

/// The running listener.
pub struct Listener {
    /// The bound address (the port is the one to subscribe with when configured as 0).
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

impl Listener {
    /// Registers receiver `id` on `/health`, unhealthy once the listener's task has ended
    /// without `stop`: Lambda's deliveries then go nowhere and the invocations' ends are no
    /// longer seen.
    pub fn watch(
        self,
        id: &str,
        health: &HealthRegistry,
        stop: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        crate::component::receiver::watch_servers(
            id,
            health,
            format!("telemetry api http {}", self.addr),
            vec![("telemetry api server", self.task)],
            stop,
        )
    }
}

struct Shared {
    receiver: String,
    translator: Mutex<Translator>,
    consumers: BTreeMap<Signal, Consumer>,
    metrics: Arc<SelfMetrics>,
    runtime_done: mpsc::UnboundedSender<String>,
}

/// Starts the Telemetry API listener when the collector runs as a Lambda extension, and
/// tells the extension where it listens; anywhere else there is no Telemetry API, and the
/// receiver is not started.
pub(crate) async fn start_in_extension(
    config: &LambdaReceiverConfig,
    ctx: ReceiverContext<'_>,
) -> Result<Vec<JoinHandle<()>>, BuildError> {
    let Some(runtime) = ctx.lambda else {
        tracing::warn!(receiver = %ctx.id,
            "the lambda receiver runs only in Lambda extension mode (AWS_LAMBDA_RUNTIME_API \
             set, or --lambda-extension); not started");
        return Ok(Vec::new());
    };
    let function_logs = ctx.consumers.contains_key(&Signal::Logs);
    let stop = ctx.stop.clone();
    let listener = start(
        ctx.id,
        config,
        &FunctionInfo::from_env(),
        ctx.consumers,
        ctx.metrics,
        runtime.runtime_done.clone(),
        ctx.stop,
    )
    .await?;
    let described = TelemetryListener {
        addr: listener.addr,
        destination_host: config.destination_host.clone(),
        max_items: config.buffering.max_items,
        max_bytes: config.buffering.max_bytes,
        timeout_ms: u32::try_from(config.buffering.timeout.as_millis()).unwrap_or(u32::MAX),
        function_logs,
        flush_timeout: config.flush_timeout,
        flush: config.flush,
        flush_interval: config.flush_interval,
    };
    if runtime.telemetry_listener.set(described).is_err() {
        listener.task.abort();
        return Err(BuildError::Options(Invalid::Rule(
            "a function has one Telemetry API subscription: define at most one `lambda` receiver",
        )));
    }
    Ok(listener.watch(ctx.id, ctx.health, &stop))
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
                    ConsumeError::MemoryLimit(_) => "memory_limit",
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

#[async_trait::async_trait]
impl crate::component::factory::ReceiverFactory for LambdaReceiverConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), Invalid> {
        LambdaReceiverConfig::validate(self)
    }

    fn runs_without_pipelines(&self) -> bool {
        true
    }

    fn one_per_collector(&self) -> Option<&'static str> {
        Some("a function has one Telemetry API subscription: define at most one `lambda` receiver")
    }

    async fn start(
        &self,
        ctx: crate::component::factory::ReceiverContext<'_>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, crate::component::factory::BuildError> {
        start_in_extension(self, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A delivery of no events, as Lambda sends it, and the status line of the answer.
    async fn deliver_nothing(addr: SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(
                b"POST / HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n\
                  Content-Length: 2\r\nConnection: close\r\n\r\n[]",
            )
            .await
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer.lines().next().unwrap_or_default().to_string()
    }

    /// Nothing Lambda sends can end the listener's task, so the test ends the real one by
    /// aborting it; it is watched exactly as in extension mode.
    #[tokio::test]
    async fn the_receiver_is_unhealthy_once_its_listener_has_ended() {
        let health = HealthRegistry::default();
        let stop = CancellationToken::new();
        let (runtime_done, _notices) = mpsc::unbounded_channel();
        let config = LambdaReceiverConfig {
            endpoint: "127.0.0.1:0".into(),
            ..LambdaReceiverConfig::default()
        };
        let listener = start(
            "lambda",
            &config,
            &FunctionInfo::default(),
            BTreeMap::new(),
            Arc::new(SelfMetrics::new()),
            runtime_done,
            stop.clone(),
        )
        .await
        .expect("listening");
        let addr = listener.addr;
        let abort = listener.task.abort_handle();
        let mut watched = listener.watch("lambda", &health, &stop);
        assert_eq!(deliver_nothing(addr).await, "HTTP/1.1 200 OK");
        let report = health.report();
        assert_eq!(report.overall_status, "healthy");
        assert_eq!(
            report.checks["receiver/lambda"].detail,
            format!("telemetry api http {addr}")
        );

        abort.abort();
        watched.pop().expect("one task").await.expect("watcher");
        let report = health.report();
        assert_eq!(report.overall_status, "unhealthy");
        assert_eq!(
            report.checks["receiver/lambda"].detail,
            format!("telemetry api server was cancelled; serving telemetry api http {addr}")
        );
    }
}
