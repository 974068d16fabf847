//! The collector as an AWS Lambda extension: every invocation's telemetry is exported
//! before the sandbox freezes.
//!
//! The life of the extension follows the Extensions API:
//!
//! 1. **Init**: register (first, so a bad configuration can be reported to Lambda), load
//!    the configuration, start the pipelines and receivers (the function may send OTLP as
//!    soon as its first invocation starts), bind the Telemetry API listener and subscribe.
//!    The first `event/next` ends the extension's init.
//! 2. **INVOKE**: the function runs; its OTLP goes through the pipelines as usual. The
//!    extension waits for the invocation's `platform.runtimeDone` (the function has
//!    answered: its response is never delayed by the extension), then flushes every
//!    pipeline for at most `flush_timeout`, and only then asks for the next event — the
//!    moment Lambda may freeze the sandbox. What misses the flush stays queued.
//! 3. **SHUTDOWN**: stop receiving, drain everything before the deadline Lambda gives, exit.

pub mod client;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_proto::lambda::{
    LifecycleEvent, TELEMETRY_SCHEMA_VERSION, TelemetryBuffering, TelemetryDestination,
    TelemetrySubscription, TelemetryType,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::client::ExtensionClient;
use crate::config::{self, Config, LogEncoding, ReceiverConfig};
use crate::model::Signal;
use crate::receiver::lambda::config::LambdaReceiverConfig;
use crate::receiver::lambda::translate::FunctionInfo;
use crate::service::Service;
use crate::telemetry;

/// Kept back from Lambda's SHUTDOWN deadline for the process to exit on its own.
const EXIT_MARGIN: Duration = Duration::from_millis(50);

/// Request ids of ended invocations remembered in case their runtimeDone arrives before
/// the extension is told about the invocation itself.
const REMEMBERED_DONE: usize = 16;

/// How the extension was started.
pub struct Options {
    /// `host:port` of the Lambda Runtime API (`$AWS_LAMBDA_RUNTIME_API`).
    pub runtime_api: String,
    /// `--config` files; empty means `$AURASTREAM_CONFIG`, else the Lambda default.
    pub config_files: Vec<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<LogEncoding>,
}

/// The name Lambda knows the extension by: the file name it was started as.
pub fn extension_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "aurastream-collector".into())
}

/// Runs the extension until SHUTDOWN (or `stop`, for SIGTERM when run by hand).
pub async fn run(options: Options, stop: CancellationToken) -> anyhow::Result<()> {
    let name = extension_name();
    let client = ExtensionClient::register(&options.runtime_api, &name).await?;

    let config = match config::load_lambda(&options.config_files) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("invalid configuration: {e}");
            // Logging is configured by the file that failed: stderr is all there is.
            if let Err(report) = client.init_error("Extension.ConfigInvalid", &message).await {
                eprintln!("could not report the init error to Lambda: {report}");
            }
            return Err(anyhow::anyhow!(message));
        }
    };
    let logs = &config.service.telemetry.logs;
    telemetry::logging::init(
        options.log_level.as_deref(),
        &logs.level,
        options.log_format.unwrap_or(logs.encoding),
    );
    tracing::debug!(extension = %name, id = client.id(), "registered with the Extensions API");

    let (service, lambda, done_rx) = match init(&client, &config).await {
        Ok(started) => started,
        Err(e) => {
            let message = format!("{e:#}");
            tracing::error!("extension init failed: {message}");
            report_init_error(&client, "Extension.InitFailed", &message).await;
            return Err(e);
        }
    };
    tracing::info!(extension = %name, "Lambda extension ready");

    let shutdown_timeout = config.service.shutdown_timeout;
    let result = lifecycle(&client, service, &lambda, shutdown_timeout, done_rx, stop).await;
    if let Err(e) = &result {
        tracing::error!("extension failed: {e:#}");
        if let Err(report) = client
            .exit_error("Extension.Failed", &format!("{e:#}"))
            .await
        {
            tracing::warn!(error = %report, "could not report the exit error to Lambda");
        }
    }
    result
}

async fn report_init_error(client: &ExtensionClient, error_type: &str, message: &str) {
    if let Err(e) = client.init_error(error_type, message).await {
        tracing::warn!(error = %e, "could not report the init error to Lambda");
    }
}

/// Starts the pipelines, the receivers and the Telemetry API subscription.
async fn init(
    client: &ExtensionClient,
    config: &Config,
) -> anyhow::Result<(
    Service,
    LambdaReceiverConfig,
    mpsc::UnboundedReceiver<String>,
)> {
    let mut service = Service::start(config).await?;
    // Without a configured `lambda` receiver the extension still needs the Telemetry API
    // for runtimeDone; it then subscribes with the defaults and turns nothing into data.
    let (id, lambda) = config
        .receivers
        .0
        .iter()
        .find_map(|(id, r)| match r {
            ReceiverConfig::Lambda(c) => Some((id.clone(), c.clone())),
            ReceiverConfig::Otlp(_) | ReceiverConfig::AwsXray(_) => None,
        })
        .unwrap_or_else(|| ("lambda".into(), LambdaReceiverConfig::default()));
    let consumers = service.take_consumers(&id);
    let mut types = vec![TelemetryType::Platform];
    if consumers.contains_key(&Signal::Logs) {
        types.push(TelemetryType::Function);
    }
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let listener = crate::receiver::lambda::start(
        &id,
        &lambda,
        &FunctionInfo::from_env(),
        consumers,
        service.metrics().clone(),
        done_tx,
        service.receivers_stop(),
    )
    .await?;
    let uri = format!(
        "http://{}:{}/",
        lambda.destination_host,
        listener.addr.port()
    );
    service.add_receiver_task(listener.task);
    client
        .subscribe(&TelemetrySubscription {
            schema_version: TELEMETRY_SCHEMA_VERSION.into(),
            types,
            buffering: TelemetryBuffering {
                max_items: lambda.buffering.max_items,
                max_bytes: lambda.buffering.max_bytes,
                timeout_ms: u32::try_from(lambda.buffering.timeout.as_millis()).unwrap_or(u32::MAX),
            },
            destination: TelemetryDestination {
                protocol: "HTTP".into(),
                uri: uri.clone(),
            },
        })
        .await?;
    tracing::debug!(listener = %listener.addr, %uri, "subscribed to the Telemetry API");
    Ok((service, lambda, done_rx))
}

/// The INVOKE / SHUTDOWN loop.
async fn lifecycle(
    client: &ExtensionClient,
    service: Service,
    lambda: &LambdaReceiverConfig,
    shutdown_timeout: Duration,
    mut done_rx: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut done = DoneInvocations::default();
    loop {
        let event = tokio::select! {
            event = client.next_event() => event?,
            () = stop.cancelled() => {
                tracing::info!(timeout = ?shutdown_timeout, "stopped by signal: draining before exit");
                let deadline = Instant::now() + shutdown_timeout;
                service.shutdown(deadline).await;
                return Ok(());
            }
        };
        match event {
            LifecycleEvent::Invoke {
                request_id,
                deadline_ms,
                ..
            } => {
                let timed_out = !done
                    .wait_for(&request_id, &mut done_rx, instant_at(deadline_ms))
                    .await;
                if timed_out {
                    tracing::warn!(
                        request_id,
                        "no platform.runtimeDone before the invocation deadline; flushing anyway"
                    );
                }
                let started = Instant::now();
                match service.flush(started + lambda.flush_timeout).await {
                    Ok(()) => {
                        tracing::debug!(request_id, elapsed = ?started.elapsed(), "invocation flushed")
                    }
                    Err(left) => tracing::warn!(request_id, timeout = ?lambda.flush_timeout,
                        "{left}; exported with the next invocation or at shutdown"),
                }
            }
            LifecycleEvent::Shutdown {
                shutdown_reason,
                deadline_ms,
            } => {
                tracing::info!(
                    reason = shutdown_reason.as_deref().unwrap_or("unknown"),
                    "SHUTDOWN: draining before exit"
                );
                let deadline = instant_at(deadline_ms)
                    .checked_sub(EXIT_MARGIN)
                    .unwrap_or_else(Instant::now);
                // Telemetry of the last invocation (its platform.report) is delivered once
                // more after a buffering period; let it land before the receivers stop.
                let settle = (Instant::now() + lambda.buffering.timeout).min(deadline);
                tokio::time::sleep_until(settle).await;
                service.shutdown(deadline).await;
                return Ok(());
            }
        }
    }
}

/// Invocations whose runtimeDone has been seen.
#[derive(Default)]
struct DoneInvocations {
    recent: VecDeque<String>,
}

impl DoneInvocations {
    /// Waits until `request_id`'s runtimeDone has arrived; `false` if `deadline` came
    /// first. A closed channel (the listener is gone) ends the wait at once.
    async fn wait_for(
        &mut self,
        request_id: &str,
        rx: &mut mpsc::UnboundedReceiver<String>,
        deadline: Instant,
    ) -> bool {
        loop {
            if let Some(i) = self.recent.iter().position(|id| id == request_id) {
                self.recent.remove(i);
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(id)) => {
                    if self.recent.len() >= REMEMBERED_DONE {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(id);
                }
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A wall-clock deadline (milliseconds since the Unix epoch) as a tokio instant.
fn instant_at(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runtime_done_before_or_after_the_invoke_event_both_count() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut done = DoneInvocations::default();
        let far = Instant::now() + Duration::from_secs(60);
        tx.send("early".to_string()).unwrap();
        tx.send("other".to_string()).unwrap();
        assert!(done.wait_for("other", &mut rx, far).await);
        assert!(done.wait_for("early", &mut rx, far).await, "remembered");
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send("late".to_string()).unwrap();
            tx
        });
        assert!(done.wait_for("late", &mut rx, far).await);
        let _tx = late.await.unwrap();
        assert!(
            !done
                .wait_for("never", &mut rx, Instant::now() + Duration::from_secs(3))
                .await
        );
    }

    #[test]
    fn deadlines_in_the_past_are_now() {
        let before = Instant::now();
        assert!(instant_at(0) <= Instant::now());
        assert!(instant_at(0) >= before);
    }
}
