//! The collector as an AWS Lambda extension: every invocation's telemetry is exported,
//! and the extension adds as little billed time to warm invocations as it can.
//!
//! The life of the extension follows the Extensions API:
//!
//! 1. **Init**: register (first, so a bad configuration can be reported to Lambda), load
//!    the configuration, start the pipelines and receivers (the function may send OTLP as
//!    soon as its first invocation starts), bind the Telemetry API listener and subscribe.
//!    The first `event/next` ends the extension's init.
//! 2. **INVOKE**: the function runs; its OTLP goes through the pipelines as usual. What the
//!    extension does next is the `flush` strategy's choice ([`cadence`]):
//!    - *flush at the end*: wait for the invocation's `platform.runtimeDone` (the function
//!      has answered: its response is never delayed by the extension), flush every
//!      pipeline for at most `flush_timeout`, and only then ask for the next event — the
//!      moment Lambda may freeze the sandbox. What misses the flush stays queued. Lambda
//!      bills this time: at least the Telemetry API's buffering period (25 ms).
//!    - *hand back*: ask for the next event at once. While the extension waits for it, it
//!      asks the pipelines to export every `flush_interval`; the data of this invocation
//!      leaves during a later one (or at SHUTDOWN), and nothing is billed for it.
//! 3. **SHUTDOWN**: stop receiving, drain everything before the deadline Lambda gives, exit.
//!    Whatever the strategy, every item is exported here or counted dropped
//!    (`shutdown_timeout`) with the pipeline's name.
//!
//! **Freezes.** Once the function and every extension wait for their next event, Lambda
//! freezes the whole sandbox: background exports stop wherever they are. They resume when
//! the sandbox is thawed for the next invocation or for SHUTDOWN — a flush that was in
//! progress just continues (an export request cut by the freeze fails or times out and is
//! retried by its exporter like any other), and a background export that fell due while
//! frozen runs at once. Nothing is lost to a freeze; data only leaves later.

pub(crate) mod cadence;
pub(crate) mod client;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_proto::lambda::{
    LifecycleEvent, TELEMETRY_SCHEMA_VERSION, TelemetryBuffering, TelemetryDestination,
    TelemetrySubscription, TelemetryType,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use self::cadence::{AfterInvoke, Cadence};
use self::client::ExtensionClient;
use crate::component::factory::{LambdaRuntime, TelemetryListener};
use crate::config::component_type;
use crate::config::{self, Config, LogEncoding, ReceiverConfig};
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

/// Type name of the receiver that serves the Telemetry API.
const TELEMETRY_RECEIVER: &str = "lambda";

/// Starts the pipelines, the receivers and the Telemetry API subscription.
async fn init(
    client: &ExtensionClient,
    config: &Config,
) -> anyhow::Result<(Service, TelemetryListener, mpsc::UnboundedReceiver<String>)> {
    // Without a configured Telemetry API receiver the extension still needs runtimeDone;
    // one with the defaults is added, turning nothing into data (no pipeline lists it).
    let mut config = config.clone();
    if !config
        .receivers
        .0
        .keys()
        .any(|id| component_type(id) == TELEMETRY_RECEIVER)
    {
        let defaults = ReceiverConfig::defaults_of(TELEMETRY_RECEIVER)
            .ok_or_else(|| anyhow::anyhow!("this build has no `{TELEMETRY_RECEIVER}` receiver"))?;
        config
            .receivers
            .0
            .insert(TELEMETRY_RECEIVER.into(), defaults);
    }
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let runtime = LambdaRuntime {
        runtime_done: done_tx,
        telemetry_listener: OnceLock::new(),
    };
    let service = Service::start(&config, Some(&runtime)).await?;
    let listener = runtime
        .telemetry_listener
        .get()
        .ok_or_else(|| anyhow::anyhow!("no Telemetry API listener was started"))?;
    let mut types = vec![TelemetryType::Platform];
    if listener.function_logs {
        types.push(TelemetryType::Function);
    }
    let uri = format!(
        "http://{}:{}/",
        listener.destination_host,
        listener.addr.port()
    );
    client
        .subscribe(&TelemetrySubscription {
            schema_version: TELEMETRY_SCHEMA_VERSION.into(),
            types,
            buffering: TelemetryBuffering {
                max_items: listener.max_items,
                max_bytes: listener.max_bytes,
                timeout_ms: listener.timeout_ms,
            },
            destination: TelemetryDestination {
                protocol: "HTTP".into(),
                uri: uri.clone(),
            },
        })
        .await?;
    tracing::debug!(listener = %listener.addr, %uri, "subscribed to the Telemetry API");
    Ok((service, listener.clone(), done_rx))
}

/// Runs the INVOKE / SHUTDOWN loop, then drains the pipelines.
async fn lifecycle(
    client: &ExtensionClient,
    service: Service,
    lambda: &TelemetryListener,
    shutdown_timeout: Duration,
    done_rx: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let deadline = match serve(client, &service, lambda, done_rx, &stop).await? {
        Ending::Shutdown(deadline) => deadline,
        Ending::Stopped => {
            tracing::info!(timeout = ?shutdown_timeout, "stopped by signal: draining before exit");
            Instant::now() + shutdown_timeout
        }
    };
    service.shutdown(deadline).await;
    Ok(())
}

/// How the event loop ended.
enum Ending {
    /// Lambda sent SHUTDOWN: drain until this instant.
    Shutdown(Instant),
    /// Stopped by a signal (run by hand): drain for `shutdown_timeout`.
    Stopped,
}

/// The INVOKE / SHUTDOWN loop. Background exports run only while the extension waits for
/// its next event: the one time the sandbox runs (before a freeze, after a thaw) without
/// the extension having anything else to do.
async fn serve(
    client: &ExtensionClient,
    service: &Service,
    lambda: &TelemetryListener,
    mut done_rx: mpsc::UnboundedReceiver<String>,
    stop: &CancellationToken,
) -> anyhow::Result<Ending> {
    let mut cadence = Cadence::new(lambda.flush, lambda.flush_interval);
    let mut done = DoneInvocations::default();
    let mut background = std::pin::pin!(export_periodically(
        service,
        cadence.background_interval(),
        lambda.flush_timeout
    ));
    loop {
        let next = client.next_event();
        let mut next = std::pin::pin!(next);
        let event = loop {
            tokio::select! {
                event = &mut next => break event?,
                // Handed-back invocations are not waited for, but their runtimeDone
                // notices still arrive: remembered (a few), never piling up.
                Some(id) = done_rx.recv() => done.remember(id),
                () = stop.cancelled() => return Ok(Ending::Stopped),
                never = background.as_mut() => match never {},
            }
        };
        match event {
            LifecycleEvent::Invoke {
                request_id,
                deadline_ms,
                ..
            } => match cadence.on_invoke(now_ms()) {
                AfterInvoke::HandBack => tracing::debug!(
                    request_id,
                    "invocation handed back at once: its data is exported in the background"
                ),
                AfterInvoke::FlushAtEnd => {
                    flush_at_end(
                        service,
                        lambda,
                        &mut done,
                        &mut done_rx,
                        &request_id,
                        deadline_ms,
                    )
                    .await
                }
            },
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
                let settle = (Instant::now() + Duration::from_millis(u64::from(lambda.timeout_ms)))
                    .min(deadline);
                tokio::time::sleep_until(settle).await;
                return Ok(Ending::Shutdown(deadline));
            }
        }
    }
}

/// Waits for the invocation's runtimeDone (at most until its deadline), then flushes every
/// pipeline for at most `flush_timeout`.
async fn flush_at_end(
    service: &Service,
    lambda: &TelemetryListener,
    done: &mut DoneInvocations,
    done_rx: &mut mpsc::UnboundedReceiver<String>,
    request_id: &str,
    deadline_ms: u64,
) {
    if !done
        .wait_for(request_id, done_rx, instant_at(deadline_ms))
        .await
    {
        tracing::warn!(
            request_id,
            "no platform.runtimeDone before the invocation deadline; flushing anyway"
        );
    }
    let started = Instant::now();
    match service.flush(started + lambda.flush_timeout).await {
        Ok(()) => tracing::debug!(request_id, elapsed = ?started.elapsed(), "invocation flushed"),
        Err(left) => tracing::warn!(request_id, timeout = ?lambda.flush_timeout,
            "{left}; exported with the next flush or at shutdown"),
    }
}

/// Asks the pipelines to export every `interval`, for as long as it is polled; never when
/// `interval` is `None`. The interval counts on the sandbox's monotonic clock: an export
/// that fell due during a freeze runs once the sandbox is thawed. An export cut short (the
/// future set aside while the extension handles an event) has already asked the batch
/// processors to send; only the wait for the exporters is resumed later.
async fn export_periodically(
    service: &Service,
    interval: Option<Duration>,
    budget: Duration,
) -> Infallible {
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        match service.flush(started + budget).await {
            Ok(()) => tracing::debug!(elapsed = ?started.elapsed(), "background export done"),
            Err(left) => tracing::warn!(timeout = ?budget,
                "{left}; exported by the next background export or at shutdown"),
        }
    }
}

/// Invocations whose runtimeDone has been seen.
#[derive(Default)]
struct DoneInvocations {
    recent: VecDeque<String>,
}

impl DoneInvocations {
    /// Notes a runtimeDone, forgetting the oldest beyond [`REMEMBERED_DONE`].
    fn remember(&mut self, request_id: String) {
        if self.recent.len() >= REMEMBERED_DONE {
            self.recent.pop_front();
        }
        self.recent.push_back(request_id);
    }

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
                Ok(Some(id)) => self.remember(id),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A wall-clock deadline (milliseconds since the Unix epoch) as a tokio instant.
fn instant_at(deadline_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms()))
}

/// The wall clock in milliseconds since the Unix epoch, the unit of Lambda's deadlines.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
