//! `sending_queue.storage`: an exporter's queue on disk, so batches survive a restart, a
//! crash or a long outage of the destination.
//!
//! The pipeline driver appends each batch it takes off the pipeline to a write-ahead log
//! ([`wal`]) as OTLP protobuf, releases the batch's claim on the pipeline's item budget, and
//! exports from the log in order; a record is removed only after the driver is done with it
//! (delivered, or counted as failed). On start-up whatever is still in the log is exported
//! first. The log is bounded by `max_bytes`: when it is full, `when_full: block` stops the
//! driver taking more batches (the pipeline fills and receivers answer 503 / UNAVAILABLE),
//! `drop_oldest` discards the oldest waiting batch and counts its items as dropped.
//!
//! A batch the log cannot take (disk full, I/O error) is not in the queue: [`push`]
//! fails with nothing written, and the driver refuses it to its sender. Records found
//! damaged when reading are counted as failed items (`queue_corrupt`); a read that fails
//! is an error of [`pop`] that leaves the record in line, for the driver to try again.
//!
//! [`push`]: PersistentQueue::push
//! [`pop`]: PersistentQueue::pop
//!
//! What this does not cover: items acknowledged to a sender but still in a processor or a
//! channel before the driver has written them (a few milliseconds with no batch processor,
//! up to the batch `timeout` with one) are lost if the process is killed.

pub mod wal;

#[cfg(test)]
pub(crate) mod faulty_disk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::Notify;

use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;

use self::wal::{Disk, Next, Recovery, SegmentStore, Wal, WalError, WalOptions};
pub use crate::component::delivery::{Fsync, WhenFull};
use crate::model::{Signal, SignalData};

/// The on-disk part of `sending_queue`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub max_bytes: u64,
    pub when_full: WhenFull,
    /// How many batches the previous run may have been exporting at once (its
    /// `num_consumers`): the first this many records found on disk may already be (partly)
    /// at the destination, and are handed out with [`Queued::replayed`] set.
    pub in_flight: usize,
}

/// Counters a queue reports into.
pub struct QueueCounters {
    /// Items discarded by `when_full: drop_oldest`.
    pub dropped_full: Counter,
    /// Records found damaged on disk and skipped.
    pub corrupt_records: Counter,
    /// Their items, counted as failed (as far as the records' headers tell).
    pub corrupt_items: Counter,
    /// Items replayed from disk at start-up.
    pub replayed_items: Counter,
}

/// One record handed out for export.
pub struct Queued {
    /// The record's sequence number: stable across restarts, so it identifies the batch.
    pub seq: u64,
    pub data: SignalData,
    /// Found on disk at start-up among the records the previous run may have been exporting
    /// when it stopped: some of it may already be at the destination.
    pub replayed: bool,
}

pub struct PersistentQueue {
    wal: Arc<Mutex<Wal>>,
    signal: Signal,
    config: StorageConfig,
    counters: QueueCounters,
    readable: Notify,
    writable: Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Records that may have been in flight when the previous run stopped. Records are
    /// handed out in order and at most `in_flight` are out unacknowledged at once, so those
    /// are among the first `in_flight` records left on disk.
    possibly_sent: std::collections::BTreeSet<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("queue storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The storage directory of one exporter in one pipeline: ids may contain `/`.
pub fn queue_dir(storage: &Path, exporter: &str, pipeline: &str) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    storage.join(format!("{}__{}", clean(exporter), clean(pipeline)))
}

impl PersistentQueue {
    /// Opens the queue in `config.dir`, reporting what was found there.
    pub fn open(
        signal: Signal,
        config: StorageConfig,
        counters: QueueCounters,
    ) -> Result<(PersistentQueue, Recovery), QueueError> {
        PersistentQueue::open_on(signal, config, counters, Arc::new(Disk))
    }

    /// [`PersistentQueue::open`] with segments written and read through `store`.
    pub fn open_on(
        signal: Signal,
        config: StorageConfig,
        counters: QueueCounters,
        store: Arc<dyn SegmentStore>,
    ) -> Result<(PersistentQueue, Recovery), QueueError> {
        let (wal, recovery) = Wal::open_on(
            &config.dir,
            WalOptions {
                fsync: config.fsync,
                segment_bytes: (config.max_bytes / 8).clamp(64 * 1024, 16 * 1024 * 1024),
            },
            store,
        )?;
        counters
            .corrupt_records
            .inc_by(recovery.corrupt_records as u64);
        counters.corrupt_items.inc_by(recovery.corrupt_items);
        counters.replayed_items.inc_by(recovery.items);
        let possibly_sent = wal.unread().take(config.in_flight.max(1)).collect();
        let queue = PersistentQueue {
            wal: Arc::new(Mutex::new(wal)),
            signal,
            config,
            counters,
            readable: Notify::new(),
            writable: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            possibly_sent,
        };
        Ok((queue, recovery))
    }

    /// Runs `f` on the log in a blocking thread (file I/O and fsync must not stall the
    /// runtime's workers).
    async fn with_wal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Wal) -> Result<T, WalError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || f(&mut wal.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .map_err(QueueError::Task)?
            .map_err(QueueError::from)
    }

    /// Writes a batch to disk, waiting for room (`block`) or making it (`drop_oldest`). An
    /// error means the batch is not in the queue (nothing of it is left on disk).
    pub async fn push(&self, data: &SignalData) -> Result<(), QueueError> {
        let payload = encode(data);
        let items = u32::try_from(data.item_count()).unwrap_or(u32::MAX);
        let needed = wal::HEADER_BYTES + payload.len() as u64;
        let max = self.config.max_bytes;
        let payload = Arc::new(payload);
        loop {
            let writable = self.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            let p = payload.clone();
            let when_full = self.config.when_full;
            // Ok(None): appended. Ok(Some(items)): made room by dropping that many items.
            // Err(()): full, wait.
            let outcome = self
                .with_wal(move |wal| {
                    // An empty queue always takes one batch, however large, so a batch
                    // bigger than `max_bytes` cannot block the pipeline for good.
                    if wal.is_empty() || wal.bytes() + needed <= max {
                        wal.append(&p, items)?;
                        return Ok(Ok(None));
                    }
                    match when_full {
                        WhenFull::Block => Ok(Err(())),
                        WhenFull::DropOldest => match wal.drop_oldest()? {
                            Some(n) => Ok(Ok(Some(n))),
                            None => Ok(Err(())),
                        },
                    }
                })
                .await?;
            match outcome {
                Ok(None) => {
                    self.readable.notify_one();
                    return Ok(());
                }
                Ok(Some(dropped)) => {
                    tracing::warn!(dir = %self.config.dir.display(), items = dropped,
                        "queue storage full; oldest batch dropped");
                    self.counters.dropped_full.inc_by(u64::from(dropped));
                }
                Err(()) => writable.await,
            }
        }
    }

    /// The next batch to export, in order; `None` once the queue is closed and empty.
    /// Damaged records are counted (their items as failed) and skipped. An error is a read
    /// that failed: the record stays next in line, so calling again retries it.
    pub async fn pop(&self) -> Result<Option<Queued>, QueueError> {
        loop {
            let readable = self.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            match self.with_wal(|wal| wal.next_record()).await? {
                Some(Next::Record {
                    seq,
                    items,
                    payload,
                }) => match decode(self.signal, &payload) {
                    Some(data) => {
                        let replayed = self.possibly_sent.contains(&seq);
                        return Ok(Some(Queued {
                            seq,
                            data,
                            replayed,
                        }));
                    }
                    None => self.skip_damaged(seq, items).await?,
                },
                Some(Next::Damaged { seq, items }) => self.skip_damaged(seq, items).await?,
                None if self.closed.load(std::sync::atomic::Ordering::SeqCst) => return Ok(None),
                None => readable.await,
            }
            // Another consumer may be waiting for what follows.
            self.readable.notify_one();
        }
    }

    /// Counts a record that cannot be delivered and removes it. Counted first: the record
    /// leaves the index even if recording that on disk fails, so it is never counted twice.
    async fn skip_damaged(&self, seq: u64, items: u32) -> Result<(), QueueError> {
        tracing::warn!(dir = %self.config.dir.display(), seq, items,
            "damaged record in the queue storage; its items are counted as failed (queue_corrupt)");
        self.counters.corrupt_records.inc();
        self.counters.corrupt_items.inc_by(u64::from(items));
        self.ack(seq).await
    }

    /// The driver is done with a batch: it leaves the disk.
    pub async fn ack(&self, seq: u64) -> Result<(), QueueError> {
        self.with_wal(move |wal| wal.ack(seq)).await?;
        self.writable.notify_waiters();
        Ok(())
    }

    /// No more batches will be pushed: consumers end once the queue is empty.
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.readable.notify_waiters();
    }

    /// For `fsync: batch`: pending appends to disk.
    pub async fn sync(&self) -> Result<(), QueueError> {
        self.with_wal(|wal| wal.sync()).await
    }
}

fn encode(data: &SignalData) -> Vec<u8> {
    match data {
        SignalData::Traces(r) => ExportTraceServiceRequest {
            resource_spans: r.clone(),
        }
        .encode_to_vec(),
        SignalData::Metrics(r) => ExportMetricsServiceRequest {
            resource_metrics: r.clone(),
        }
        .encode_to_vec(),
        SignalData::Logs(r) => ExportLogsServiceRequest {
            resource_logs: r.clone(),
        }
        .encode_to_vec(),
    }
}

/// `None` when the bytes are not a request of this signal (damage the CRC did not catch,
/// or a queue directory reused for another signal).
fn decode(signal: Signal, payload: &[u8]) -> Option<SignalData> {
    Some(match signal {
        Signal::Traces => SignalData::Traces(
            ExportTraceServiceRequest::decode(payload)
                .ok()?
                .resource_spans,
        ),
        Signal::Metrics => SignalData::Metrics(
            ExportMetricsServiceRequest::decode(payload)
                .ok()?
                .resource_metrics,
        ),
        Signal::Logs => SignalData::Logs(
            ExportLogsServiceRequest::decode(payload)
                .ok()?
                .resource_logs,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};

    fn counters() -> QueueCounters {
        QueueCounters {
            dropped_full: Counter::default(),
            corrupt_records: Counter::default(),
            corrupt_items: Counter::default(),
            replayed_items: Counter::default(),
        }
    }

    fn logs(n: usize, tag: &str) -> SignalData {
        SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        severity_text: format!("{tag}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn config(dir: &Path, max_bytes: u64, when_full: WhenFull) -> StorageConfig {
        StorageConfig {
            dir: dir.to_path_buf(),
            fsync: Fsync::Batch,
            max_bytes,
            when_full,
            in_flight: 1,
        }
    }

    #[tokio::test]
    async fn batches_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), 1 << 20, WhenFull::Block);
        let (q, _) = PersistentQueue::open(Signal::Logs, cfg.clone(), counters()).unwrap();
        q.push(&logs(3, "a")).await.unwrap();
        q.push(&logs(2, "b")).await.unwrap();
        let first = q.pop().await.unwrap().unwrap();
        assert_eq!(first.data, logs(3, "a"));
        q.ack(first.seq).await.unwrap();
        drop(q);
        let c = counters();
        let replayed = c.replayed_items.clone();
        let (q, rec) = PersistentQueue::open(Signal::Logs, cfg, c).unwrap();
        assert_eq!((rec.records, rec.items), (1, 2));
        assert_eq!(replayed.get(), 2);
        q.close();
        let next = q.pop().await.unwrap().unwrap();
        assert_eq!(next.data, logs(2, "b"));
        q.ack(next.seq).await.unwrap();
        assert!(q.pop().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn records_the_last_run_may_have_been_sending_are_marked_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StorageConfig {
            in_flight: 2,
            ..config(dir.path(), 1 << 20, WhenFull::Block)
        };
        let (q, _) = PersistentQueue::open(Signal::Logs, cfg.clone(), counters()).unwrap();
        for tag in ["a", "b", "c", "d"] {
            q.push(&logs(1, tag)).await.unwrap();
        }
        // "a" delivered and removed; "b" handed out and in flight when the process stops.
        let a = q.pop().await.unwrap().unwrap();
        assert!(!a.replayed, "nothing is replayed in the run that wrote it");
        q.ack(a.seq).await.unwrap();
        let b = q.pop().await.unwrap().unwrap();
        assert!(!b.replayed);
        drop(q);
        let (q, _) = PersistentQueue::open(Signal::Logs, cfg, counters()).unwrap();
        q.close();
        let mut got = Vec::new();
        while let Some(r) = q.pop().await.unwrap() {
            got.push((r.data, r.replayed));
            q.ack(r.seq).await.unwrap();
        }
        // The first `in_flight` records left on disk may be at the destination already.
        assert_eq!(
            got,
            vec![
                (logs(1, "b"), true),
                (logs(1, "c"), true),
                (logs(1, "d"), false)
            ]
        );
    }

    #[tokio::test]
    async fn drop_oldest_counts_what_it_discards() {
        let dir = tempfile::tempdir().unwrap();
        let one = wal::HEADER_BYTES + encode(&logs(4, "x")).len() as u64;
        let c = counters();
        let dropped = c.dropped_full.clone();
        let (q, _) = PersistentQueue::open(
            Signal::Logs,
            config(dir.path(), one * 2, WhenFull::DropOldest),
            c,
        )
        .unwrap();
        for tag in ["x", "y", "z"] {
            q.push(&logs(4, tag)).await.unwrap();
        }
        assert_eq!(dropped.get(), 4);
        q.close();
        let mut got = Vec::new();
        while let Some(b) = q.pop().await.unwrap() {
            got.push(b.data);
            q.ack(b.seq).await.unwrap();
        }
        assert_eq!(got, vec![logs(4, "y"), logs(4, "z")]);
    }

    #[tokio::test]
    async fn block_waits_for_an_acknowledgement() {
        let dir = tempfile::tempdir().unwrap();
        let one = wal::HEADER_BYTES + encode(&logs(4, "x")).len() as u64;
        let (q, _) = PersistentQueue::open(
            Signal::Logs,
            config(dir.path(), one, WhenFull::Block),
            counters(),
        )
        .unwrap();
        let q = Arc::new(q);
        q.push(&logs(4, "x")).await.unwrap();
        let pusher = tokio::spawn({
            let q = q.clone();
            async move { q.push(&logs(4, "y")).await.unwrap() }
        });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished(), "full: the second push waits");
        let first = q.pop().await.unwrap().unwrap();
        q.ack(first.seq).await.unwrap();
        pusher.await.unwrap();
        let second = q.pop().await.unwrap().unwrap();
        assert_eq!(second.data, logs(4, "y"));
    }

    #[test]
    fn queue_dirs_are_safe_names() {
        assert_eq!(
            queue_dir(Path::new("/q"), "awsxray/main", "traces/2"),
            PathBuf::from("/q/awsxray_main__traces_2")
        );
    }
}
