//! Drives one exporter for one pipeline: takes batches off the pipeline, calls the
//! exporter, retries what is worth retrying and accounts for every item.
//!
//! Retries use exponential backoff with full jitter, bounded by `max_elapsed_time`; a
//! destination's `Retry-After` hint is honoured when it asks for longer. Items are counted
//! exactly once: as sent, or as failed with a reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::persistent_queue::{PersistentQueue, QueueError, Queued};
use crate::component::{ExportError, ExportReport, Exporter, Pending, Provenance, Reason};
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::model::SignalData;
use crate::model::memory::MemoryLimiter;
use crate::model::{Batch, NotKept};
use crate::telemetry::metrics::SelfMetrics;

/// The last outcome of an exporter, for `/health`.
#[derive(Debug, Clone, Default)]
pub struct ExporterState {
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub last_success: Option<std::time::SystemTime>,
    /// Per pipeline, why its queue on disk cannot be written now (batches are refused to
    /// their senders); removed once a write succeeds again.
    pub storage_write_errors: BTreeMap<String, String>,
    /// Per pipeline, why its queue on disk cannot be read now (nothing is delivered from
    /// it; the read is retried); removed once a read succeeds again.
    pub storage_read_errors: BTreeMap<String, String>,
}

/// What a driver does with its queue on disk, for [`ExporterState`].
#[derive(Debug, Clone, Copy)]
enum StorageOp {
    Write,
    Read,
}

/// Withheld reason of the items of a batch the queue on disk could not take and whose
/// senders were refused (they still have the data); the receivers count the same
/// requests as refused with reason `storage_error`.
const REFUSED_NOT_STORED: &str = "refused_not_stored";
/// Waits between two attempts to read a queue on disk that failed: the exporter's
/// `retry_on_failure` intervals, within these bounds (never a busy loop, never minutes).
const MIN_READ_RETRY_INTERVAL: Duration = Duration::from_millis(100);
const MAX_READ_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// How often the exporter is asked to forget idle state ([`Exporter::expire_idle`]).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// Everything a driver needs besides its input.
pub struct Driver {
    pub exporter_id: String,
    pub pipeline: String,
    pub exporter: Arc<dyn Exporter>,
    pub retry: RetryConfig,
    pub num_consumers: usize,
    pub state: Arc<Mutex<ExporterState>>,
    /// Batches go through this queue on disk when `sending_queue.storage` is set.
    persistent: Option<Arc<PersistentQueue>>,
    /// The pipeline's memory limit: above its hard limit, failed batches are shed.
    memory: Option<Arc<MemoryLimiter>>,
    sent: Counter,
    retries: Counter,
    metrics: Arc<SelfMetrics>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        exporter_id: &str,
        pipeline: &str,
        exporter: Arc<dyn Exporter>,
        retry: RetryConfig,
        queue: &SendingQueueConfig,
        state: Arc<Mutex<ExporterState>>,
        metrics: Arc<SelfMetrics>,
        signal: crate::model::Signal,
    ) -> Driver {
        Driver {
            sent: metrics.exporter_sent(exporter_id, pipeline, signal),
            retries: metrics.exporter_retries(exporter_id, pipeline, signal),
            exporter_id: exporter_id.into(),
            pipeline: pipeline.into(),
            exporter,
            retry,
            num_consumers: queue.num_consumers.max(1),
            state,
            persistent: None,
            memory: None,
            metrics,
        }
    }

    /// Sheds failed batches (instead of retrying them) while the pipeline holds more than
    /// `limiter`'s hard limit.
    pub fn with_memory_limiter(mut self, limiter: Arc<MemoryLimiter>) -> Driver {
        self.memory = Some(limiter);
        self
    }

    /// Sends every batch through `queue` on disk (and first whatever it still holds).
    pub fn with_persistent_queue(mut self, queue: PersistentQueue) -> Driver {
        self.persistent = Some(Arc::new(queue));
        self
    }

    /// Exports every batch from `input` until it closes.
    pub async fn run(self, input: mpsc::Receiver<Arc<Batch>>) {
        let this = &self;
        let work = async move {
            match this.persistent.clone() {
                None => {
                    ReceiverStream::new(input)
                        .for_each_concurrent(this.num_consumers, |batch| async move {
                            this.export_batch(&batch.data, None).await;
                        })
                        .await;
                }
                Some(queue) => {
                    futures::join!(this.fill(input, &queue), this.drain(&queue));
                }
            }
        };
        tokio::select! {
            () = work => {}
            never = this.housekeeping() => match never {},
        }
        if let Err(e) = self.exporter.flush().await {
            tracing::warn!(exporter = %self.exporter_id, error = %e, "flush at shutdown failed");
        }
    }

    /// Asks the exporter to forget idle state every [`HOUSEKEEPING_EVERY`], for as long
    /// as the driver runs (whether batches arrive or not).
    async fn housekeeping(&self) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.exporter
                .expire_idle(tokio::time::Instant::now().into_std());
        }
    }

    /// Moves batches from the pipeline to the queue on disk. A batch leaves the pipeline's
    /// item budget once it is written, so an outage is bounded by the queue's `max_bytes`
    /// rather than by the pipeline's `queue_size`.
    async fn fill(&self, mut input: mpsc::Receiver<Arc<Batch>>, queue: &PersistentQueue) {
        let mut sync = tokio::time::interval(Duration::from_millis(100));
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let batch = tokio::select! {
                batch = input.recv() => batch,
                _ = sync.tick() => {
                    if let Err(e) = queue.sync().await {
                        tracing::error!(exporter = %self.exporter_id, error = %e, "queue sync failed");
                    }
                    continue;
                }
            };
            let Some(batch) = batch else { break };
            match queue.push(&batch.data).await {
                Ok(()) => self.storage_ok(StorageOp::Write),
                Err(e) => self.not_stored(&batch, e).await,
            }
        }
        if let Err(e) = queue.sync().await {
            tracing::error!(exporter = %self.exporter_id, error = %e, "queue sync failed");
        }
        queue.close();
    }

    /// A batch the queue on disk could not take (disk full, I/O error); nothing of it is
    /// on disk. Its senders are refused (503 / `UNAVAILABLE`) and keep the data: with a
    /// queue on disk an acknowledgement means "written", and exporting from memory instead
    /// would acknowledge a batch that a crash can still lose, and make every sender wait a
    /// whole retry cycle while the disk stays full. Only when a sender no longer waits (a
    /// receiver that cannot (X-Ray UDP, Lambda), or a client that hung up) is there nobody
    /// to refuse: that batch is exported from memory, as the one way it can still arrive,
    /// and counted as sent or failed like any other.
    async fn not_stored(&self, batch: &Batch, error: QueueError) {
        self.storage_failed(StorageOp::Write, &error);
        let items = batch.item_count();
        let error = NotKept(Arc::new(error));
        if batch.ticket.refuse(&error) {
            tracing::debug!(exporter = %self.exporter_id, pipeline = %self.pipeline, items,
                error = %error, "batch not stored; refused to its senders");
            self.metrics
                .exporter_withheld(
                    &self.exporter_id,
                    &self.pipeline,
                    batch.data.signal(),
                    REFUSED_NOT_STORED,
                )
                .inc_by(items as u64);
        } else {
            tracing::warn!(exporter = %self.exporter_id, pipeline = %self.pipeline, items,
                error = %error, "batch not stored and its senders no longer wait; exporting it directly");
            self.export_batch(&batch.data, None).await;
        }
    }

    /// Records a failed queue operation for `/health`; logged when it starts failing (an
    /// error per batch would flood the log while a disk is full).
    fn storage_failed(&self, op: StorageOp, error: &QueueError) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let errors = match op {
            StorageOp::Write => &mut state.storage_write_errors,
            StorageOp::Read => &mut state.storage_read_errors,
        };
        if errors
            .insert(self.pipeline.clone(), error.to_string())
            .is_none()
        {
            match op {
                StorageOp::Write => tracing::error!(exporter = %self.exporter_id,
                    pipeline = %self.pipeline, error = %error,
                    "cannot write to the queue storage; refusing batches until it works again"),
                StorageOp::Read => tracing::error!(exporter = %self.exporter_id,
                    pipeline = %self.pipeline, error = %error,
                    "cannot read the queue storage; retrying with backoff"),
            }
        }
    }

    fn storage_ok(&self, op: StorageOp) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let errors = match op {
            StorageOp::Write => &mut state.storage_write_errors,
            StorageOp::Read => &mut state.storage_read_errors,
        };
        if errors.remove(&self.pipeline).is_some() {
            tracing::info!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                operation = ?op, "queue storage works again");
        }
    }

    /// The next batch from the queue on disk. A failed read is retried with backoff (the
    /// record stays first in line) for as long as it takes: giving up would strand every
    /// batch behind it until a restart, while `/health` shows the exporter unhealthy.
    async fn next_queued(&self, queue: &PersistentQueue) -> Option<Queued> {
        let mut delay = self
            .retry
            .initial_interval
            .clamp(MIN_READ_RETRY_INTERVAL, MAX_READ_RETRY_INTERVAL);
        loop {
            match queue.pop().await {
                Ok(item) => {
                    self.storage_ok(StorageOp::Read);
                    return item;
                }
                Err(e) => {
                    self.storage_failed(StorageOp::Read, &e);
                    tokio::time::sleep(jittered(delay)).await;
                    delay = delay
                        .mul_f64(self.retry.multiplier.max(1.0))
                        .min(self.retry.max_interval)
                        .clamp(MIN_READ_RETRY_INTERVAL, MAX_READ_RETRY_INTERVAL);
                }
            }
        }
    }

    /// Exports from the queue on disk, in order, removing each batch once it is settled
    /// (delivered, or counted as failed).
    async fn drain(&self, queue: &PersistentQueue) {
        futures::stream::unfold(queue, |q| async move {
            self.next_queued(q).await.map(|item| (item, q))
        })
        .for_each_concurrent(self.num_consumers, |item| async move {
            let provenance = Provenance {
                key: item.seq,
                replayed: item.replayed,
            };
            self.export_batch(&item.data, Some(provenance)).await;
            if let Err(e) = queue.ack(item.seq).await {
                tracing::error!(exporter = %self.exporter_id, error = %e,
                    "cannot remove a delivered batch from the queue storage; it may be sent again after a restart");
            }
        })
        .await;
    }

    fn fail(&self, data: &SignalData, reason: &Reason, items: usize) {
        if items > 0 {
            self.metrics
                .exporter_failed(
                    &self.exporter_id,
                    &self.pipeline,
                    data.signal(),
                    &reason.label(),
                )
                .inc_by(items as u64);
        }
    }

    /// Accounts for `delivered_of` items the exporter settled: each is sent, withheld (not
    /// a failure) or failed with a reason.
    fn record(&self, data: &SignalData, delivered_of: usize, report: &ExportReport) {
        let not_sent = (report.dropped_items() + report.withheld_items()).min(delivered_of);
        self.sent.inc_by((delivered_of - not_sent) as u64);
        for (reason, n) in &report.withheld {
            if *n > 0 {
                self.metrics
                    .exporter_withheld(
                        &self.exporter_id,
                        &self.pipeline,
                        data.signal(),
                        &reason.label(),
                    )
                    .inc_by(*n as u64);
            }
        }
        for (reason, n) in &report.dropped {
            self.fail(data, reason, *n);
        }
    }

    fn note(&self, result: Result<(), &ExportError>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                state.consecutive_failures = 0;
                state.last_success = Some(std::time::SystemTime::now());
            }
            Err(e) => {
                state.consecutive_failures += 1;
                state.last_error = Some(e.to_string());
            }
        }
    }

    /// Exports `batch` until it is settled. `provenance` is set for batches from the queue on
    /// disk; retries keep it (same batch), with `replayed` set once an attempt may have
    /// reached the destination.
    ///
    /// This is the one retry loop: exporters make one attempt per request. A batch nothing
    /// of which was delivered is exported again; once an exporter has built requests and
    /// some are left ([`ExportError::Retry`]), only those are sent again, as built.
    async fn export_batch(&self, batch: &SignalData, provenance: Option<Provenance>) {
        let started = Instant::now();
        let items = batch.item_count();
        let mut pending: Option<Box<dyn Pending>> = None;
        let mut delay = self.retry.initial_interval;
        loop {
            let left_before = pending.as_ref().map_or(items, |p| p.item_count());
            let attempt = match pending.take() {
                Some(p) => p.send().await,
                None => match provenance {
                    Some(p) => self.exporter.export_queued(batch, p).await,
                    None => self.exporter.export(batch).await,
                },
            };
            let (err, retry_after) = match attempt {
                Ok(report) => {
                    self.record(batch, left_before, &report);
                    self.note(Ok(()));
                    return;
                }
                Err(e @ ExportError::Permanent { .. }) => {
                    tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                        items = left_before, error = %e, "export failed permanently; items dropped");
                    self.fail(batch, e.reason(), left_before);
                    self.note(Err(&e));
                    return;
                }
                Err(ExportError::Retry {
                    reason,
                    message,
                    pending: rest,
                    report,
                }) => {
                    let done = left_before.saturating_sub(rest.item_count());
                    self.record(batch, done, &report);
                    pending = Some(rest);
                    (
                        ExportError::Retryable {
                            reason,
                            message,
                            retry_after: None,
                        },
                        None,
                    )
                }
                Err(e @ ExportError::Retryable { .. }) => {
                    let hint = match &e {
                        ExportError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    (e, hint)
                }
            };
            self.note(Err(&err));
            let left = pending.as_ref().map_or(items, |p| p.item_count());
            if left == 0 {
                return;
            }
            let wait = jittered(delay).max(retry_after.unwrap_or_default());
            let budget = self.retry.max_elapsed_time;
            let out_of_time = !budget.is_zero() && started.elapsed() + wait > budget;
            if self.memory.as_ref().is_some_and(|m| m.over_hard()) {
                tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                    items = left, error = %err,
                    "pipeline above its hard memory limit; failed batch shed, items dropped");
                self.fail(batch, &Reason::Named("memory_limit"), left);
                return;
            }
            if !self.retry.enabled || out_of_time {
                tracing::error!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                    items = left, error = %err, "giving up after retries; items dropped");
                self.fail(batch, &Reason::Named("retries_exhausted"), left);
                return;
            }
            tracing::warn!(exporter = %self.exporter_id, pipeline = %self.pipeline,
                items = left, error = %err, retry_in = ?wait, "export failed; will retry");
            self.retries.inc();
            tokio::time::sleep(wait).await;
            delay = self
                .retry
                .max_interval
                .min(delay.mul_f64(self.retry.multiplier.max(1.0)));
        }
    }
}

/// "Full jitter" backoff: a uniform wait in [delay/2, delay], so a fleet of collectors
/// throttled together does not retry in lockstep.
fn jittered(delay: Duration) -> Duration {
    let factor = rand::rng().random_range(0.5..=1.0);
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::{ConsumeError, Consumer, PipelineInput};
    use crate::model::{ItemBudget, Signal};
    use crate::topology::persistent_queue::faulty_disk::FaultyDisk;
    use crate::topology::persistent_queue::{QueueCounters, StorageConfig};
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use prometheus_client::metrics::gauge::Gauge;

    /// The destination: every log record's tag, in arrival order. While `down`, exports
    /// wait (so what is on disk stays there).
    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<String>>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Exporter for Recorder {
        fn signals(&self) -> &'static [crate::model::Signal] {
            &[Signal::Logs]
        }
        async fn export(&self, batch: &SignalData) -> Result<ExportReport, ExportError> {
            while self.down.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if let SignalData::Logs(r) = batch {
                let mut got = self.got.lock().unwrap();
                for l in r
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .flat_map(|s| &s.log_records)
                {
                    got.push(l.severity_text.clone());
                }
            }
            Ok(ExportReport::delivered())
        }
    }

    fn request(tag: &str, n: usize) -> SignalData {
        SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        severity_text: format!("{tag}-{i}"),
                        // Some bulk, so a few requests fill the small disk.
                        trace_id: vec![7; 64],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    struct Harness {
        consumer: Consumer,
        recorder: Arc<Recorder>,
        state: Arc<Mutex<ExporterState>>,
        metrics: Arc<SelfMetrics>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }

    /// A durable logs pipeline (no processors) into one driver with a queue on `disk`.
    fn pipeline(dir: &std::path::Path, disk: &FaultyDisk) -> Harness {
        let metrics = Arc::new(SelfMetrics::new());
        let budget = ItemBudget::new(10_000, Gauge::default(), Gauge::default());
        let (tx, mut rx) = mpsc::channel::<Batch>(8);
        let input = PipelineInput::new("logs", budget, tx, Counter::default()).durable(true);
        let consumer = Consumer::new(Signal::Logs, vec![input]);
        let recorder = Arc::new(Recorder::default());
        let state = Arc::new(Mutex::new(ExporterState::default()));
        let sending = SendingQueueConfig::default();
        let (queue, _) = PersistentQueue::open_on(
            Signal::Logs,
            StorageConfig {
                dir: dir.to_path_buf(),
                fsync: crate::component::delivery::Fsync::Batch,
                max_bytes: 1 << 20,
                when_full: crate::component::delivery::WhenFull::Block,
                in_flight: 1,
            },
            QueueCounters {
                dropped_full: Counter::default(),
                corrupt_records: Counter::default(),
                corrupt_items: metrics.exporter_failed(
                    "rec",
                    "logs",
                    Signal::Logs,
                    "queue_corrupt",
                ),
                replayed_items: Counter::default(),
            },
            Arc::new(disk.clone()),
        )
        .unwrap();
        let driver = Driver::new(
            "rec",
            "logs",
            recorder.clone(),
            RetryConfig {
                initial_interval: Duration::from_millis(10),
                ..RetryConfig::default()
            },
            &sending,
            state.clone(),
            metrics.clone(),
            Signal::Logs,
        )
        .with_persistent_queue(queue);
        let (dtx, drx) = mpsc::channel::<Arc<Batch>>(8);
        let forward = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if dtx.send(Arc::new(b)).await.is_err() {
                    break;
                }
            }
        });
        Harness {
            consumer,
            recorder,
            state,
            metrics,
            tasks: vec![forward, tokio::spawn(driver.run(drx))],
        }
    }

    impl Harness {
        /// Sends a request as the OTLP receiver does: acknowledged only once settled.
        async fn send(&self, tag: &str) -> Result<(), ConsumeError> {
            self.consumer
                .try_consume_durable(request(tag, 10))?
                .wait()
                .await
        }

        async fn finish(self) -> (Vec<String>, Arc<SelfMetrics>) {
            drop(self.consumer);
            for t in self.tasks {
                t.await.unwrap();
            }
            let got = self.recorder.got.lock().unwrap().clone();
            (got, self.metrics)
        }
    }

    fn tags(requests: &[String]) -> Vec<String> {
        let mut all: Vec<String> = requests
            .iter()
            .flat_map(|r| (0..10).map(move |i| format!("{r}-{i}")))
            .collect();
        all.sort();
        all
    }

    /// Counts how often it was asked to forget idle state.
    #[derive(Default)]
    struct Housekept(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Exporter for Housekept {
        fn signals(&self) -> &'static [crate::model::Signal] {
            &[Signal::Logs]
        }
        async fn export(&self, _batch: &SignalData) -> Result<ExportReport, ExportError> {
            Ok(ExportReport::delivered())
        }
        fn expire_idle(&self, _now: Instant) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// An exporter's idle state is let go while no batch arrives (no batch is sent here at
    /// all), and the housekeeping ends with the driver.
    #[tokio::test(start_paused = true)]
    async fn idle_state_is_expired_while_no_batch_arrives_until_the_input_closes() {
        let exporter = Arc::new(Housekept::default());
        let calls = || exporter.0.load(std::sync::atomic::Ordering::SeqCst);
        let driver = Driver::new(
            "idle",
            "metrics",
            exporter.clone(),
            RetryConfig::default(),
            &SendingQueueConfig::default(),
            Arc::default(),
            Arc::new(SelfMetrics::new()),
            Signal::Logs,
        );
        let (tx, rx) = mpsc::channel::<Arc<Batch>>(1);
        let run = tokio::spawn(driver.run(rx));
        tokio::time::sleep(HOUSEKEEPING_EVERY * 3 + Duration::from_millis(1)).await;
        assert_eq!(calls(), 3);
        drop(tx);
        run.await.unwrap();
        tokio::time::sleep(HOUSEKEEPING_EVERY * 3).await;
        assert_eq!(calls(), 3, "nothing runs after the driver stopped");
    }

    #[tokio::test]
    async fn a_full_disk_refuses_senders_and_every_acknowledged_item_arrives_once() {
        let dir = tempfile::tempdir().unwrap();
        // Room for a few requests' records, then full.
        let disk = FaultyDisk::with_capacity(3_000);
        let h = pipeline(dir.path(), &disk);
        h.recorder
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        for r in 0..20 {
            let tag = format!("r{r}");
            match h.send(&tag).await {
                Ok(()) => acked.push(tag),
                Err(ConsumeError::NotStored { pipeline, reason }) => {
                    assert_eq!(pipeline, "logs");
                    assert!(reason.to_string().contains("no space left"), "{reason}");
                    refused.push(tag);
                }
                Err(other) => panic!("unexpected refusal: {other}"),
            }
        }
        assert!(
            !acked.is_empty() && !refused.is_empty(),
            "the disk filled up mid-run"
        );
        {
            let s = h.state.lock().unwrap();
            assert!(s.storage_write_errors["logs"].contains("no space left"));
        }
        // The destination is back and space freed: the senders retry what was refused,
        // and it is taken.
        h.recorder
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        disk.free(1 << 20);
        for tag in refused.clone() {
            h.send(&tag).await.expect("stored once there is room");
            acked.push(tag);
        }
        assert!(h.state.lock().unwrap().storage_write_errors.is_empty());
        let (mut got, metrics) = h.finish().await;
        got.sort();
        assert_eq!(got, tags(&acked), "every acknowledged item exactly once");
        let withheld = metrics.exporter_withheld("rec", "logs", Signal::Logs, REFUSED_NOT_STORED);
        assert_eq!(withheld.get(), 10 * refused.len() as u64);
        let corrupt = metrics.exporter_failed("rec", "logs", Signal::Logs, "queue_corrupt");
        assert_eq!(corrupt.get(), 0, "no record was read at a wrong offset");
    }

    #[tokio::test]
    async fn a_batch_nobody_waits_for_is_exported_from_memory_when_the_disk_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(0);
        let h = pipeline(dir.path(), &disk);
        // Like the X-Ray UDP receiver: it cannot wait, so nobody can be refused.
        h.consumer.try_consume(request("udp", 10)).unwrap();
        let (got, metrics) = h.finish().await;
        assert_eq!(got.len(), 10);
        let sent = metrics.exporter_sent("rec", "logs", Signal::Logs);
        assert_eq!(sent.get(), 10);
    }

    #[tokio::test]
    async fn a_failing_read_is_retried_shows_on_health_and_the_drain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(1 << 20);
        disk.fail_reads(3);
        let h = pipeline(dir.path(), &disk);
        let state = h.state.clone();
        let seen_error = tokio::spawn(async move {
            loop {
                if let Some(e) = state.lock().unwrap().storage_read_errors.get("logs") {
                    return e.clone();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        h.send("a").await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(10), seen_error)
            .await
            .expect("the read error is reported")
            .unwrap();
        assert!(e.contains("injected read failure"), "{e}");
        h.send("b").await.unwrap();
        let state = h.state.clone();
        let (mut got, _) = h.finish().await;
        got.sort();
        assert_eq!(got, tags(&["a".into(), "b".into()]));
        assert!(
            state.lock().unwrap().storage_read_errors.is_empty(),
            "cleared"
        );
    }
}
