//! A write-ahead log of opaque records in segment files, for one exporter of one pipeline.
//!
//! Every record is `magic | payload length | crc32 | sequence number | item count | payload`
//! (little-endian; the CRC covers sequence number, item count and payload). The magic lets
//! replay find the next record after damaged bytes instead of giving up on the rest of a
//! file; the CRC tells a torn or flipped record from a good one. Records are appended to
//! the newest segment (`<first sequence number>.wal`) and a new segment starts when it
//! reaches its size; a segment is deleted once every record in it is acknowledged.
//!
//! Acknowledgement is a cursor, the lowest sequence number not yet confirmed by the
//! destination, plus the records confirmed out of order above it (several exports run at
//! once, and one slow batch must not make every later one count as unconfirmed). Both are
//! kept in the file `ack`, written to a temporary file and renamed, so it is either the old
//! or the new state. What a crash can replay twice is therefore only what was exported but
//! not yet acknowledged: at most one batch per concurrent export.
//!
//! Disk faults: an append that fails or is cut short (disk full) is cut back off the
//! segment, so the next record starts exactly where the index says and the caller can
//! refuse the batch; a read that fails leaves the record waiting, to be tried again. The
//! directory is `0700` and its files `0600` (telemetry can hold personal data), and a lock
//! file keeps a second process out of it (see [`QueueLock`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::component::delivery::Fsync;

const MAGIC: [u8; 4] = *b"ASQ1";
/// magic (4) + payload length (4) + crc32 (4) + sequence number (8) + item count (4).
pub const HEADER_BYTES: u64 = 24;
/// A record longer than this is treated as damage, not allocated.
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
const ACK_FILE: &str = "ack";
const LOCK_FILE: &str = "lock";
/// Queue files hold telemetry, which can hold personal data: owner only.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;
/// With `fsync: batch`, appends are synced at most this long after they were written.
const BATCH_SYNC_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("queue storage {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record of {0} bytes is larger than a queue record may be")]
    TooLarge(usize),
    #[error(
        "queue storage {dir} is in use by another process{}; two collectors must not share \
         a queue directory: give each its own sending_queue.storage, or stop the other one",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What opening the log found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Records waiting to be delivered (written before a restart, never acknowledged).
    pub records: usize,
    pub items: u64,
    /// Damaged or truncated records skipped.
    pub corrupt_records: usize,
    /// Items of those records, as far as their headers could still be read (a record
    /// whose header is destroyed counts as a record with no known items).
    pub corrupt_items: u64,
    pub corrupt_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u64,
    offset: u64,
    len: u32,
    items: u32,
}

impl Entry {
    fn bytes(&self) -> u64 {
        HEADER_BYTES + u64::from(self.len)
    }
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
    /// Sequence numbers of the (valid) records in it that are not acknowledged yet.
    live: usize,
}

/// A segment file being appended to. The log only appends, cuts a failed append back off
/// and syncs; behind a trait so tests can put a disk that fills up (short writes,
/// `ENOSPC`, failing syncs) under it and check it recovers exactly.
pub trait SegmentFile: Send {
    /// Writes all of `bytes` at the end, or fails (possibly after writing part of them).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Cuts the file back to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    fn sync(&mut self) -> std::io::Result<()>;
}

impl SegmentFile for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// Where segments are written and read back: the file system, or in tests one that fails
/// on demand.
pub trait SegmentStore: Send + Sync {
    /// Opens (creating, `0600`) a segment to append to.
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>>;
    /// Fills `buf` from `offset` of a segment.
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The real file system.
pub struct Disk;

impl SegmentStore for Disk {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(path)?;
        Ok(Box::new(file))
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// Holds the queue directory's lock file (`flock`, released by the kernel when the
/// process ends, however it ends) for as long as the log is open, so a second collector
/// configured with the same directory fails at start-up instead of replaying and
/// deleting batches the first one is still sending. The file holds the holder's PID, for
/// the second one's error message.
struct QueueLock {
    _file: File,
}

impl QueueLock {
    fn acquire(dir: &Path) -> Result<QueueLock, WalError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(WalError::Locked {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(&path)(source)),
        }
        // Only the message of a second process depends on the PID: a full disk must not
        // stop this one from starting.
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = file
            .set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the PID into the queue lock file");
        }
        Ok(QueueLock { _file: file })
    }
}

/// Options for [`Wal::open`].
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    pub fsync: Fsync,
    /// A new segment starts when the current one reaches this size.
    pub segment_bytes: u64,
}

pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    store: Arc<dyn SegmentStore>,
    _lock: QueueLock,
    segments: VecDeque<Segment>,
    writer: Option<Box<dyn SegmentFile>>,
    /// Records not yet acknowledged, by sequence number.
    unacked: BTreeMap<u64, Entry>,
    /// Unacknowledged records not yet handed out by [`Wal::next_record`], in order.
    unread: BTreeSet<u64>,
    cursor: u64,
    /// Acknowledged records above the cursor.
    acked_ahead: BTreeSet<u64>,
    next_seq: u64,
    bytes: u64,
    last_sync: Instant,
    dirty: bool,
}

impl Wal {
    /// Opens (creating) the log in `dir` and indexes every record not yet acknowledged.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovery), WalError> {
        Wal::open_on(dir, options, Arc::new(Disk))
    }

    /// [`Wal::open`] with segments written and read through `store`.
    pub fn open_on(
        dir: &Path,
        options: WalOptions,
        store: Arc<dyn SegmentStore>,
    ) -> Result<(Wal, Recovery), WalError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io(dir))?;
        // Also when an earlier version created it with the default mode.
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(io(dir))?;
        let lock = QueueLock::acquire(dir)?;
        let (cursor, acked_ahead) = read_cursor(&dir.join(ACK_FILE));
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let first = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(first) = first {
                files.push((first, path));
            }
        }
        files.sort();
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            options,
            store,
            _lock: lock,
            segments: VecDeque::new(),
            writer: None,
            unacked: BTreeMap::new(),
            unread: BTreeSet::new(),
            cursor,
            acked_ahead,
            next_seq: cursor,
            bytes: 0,
            last_sync: Instant::now(),
            dirty: false,
        };
        let mut recovery = Recovery::default();
        for (first, path) in files {
            let data = fs::read(&path).map_err(io(&path))?;
            let mut live = 0;
            for found in scan(&data) {
                match found {
                    Scanned::Record {
                        seq,
                        offset,
                        len,
                        items,
                    } => {
                        wal.next_seq = wal.next_seq.max(seq + 1);
                        if seq < cursor
                            || wal.acked_ahead.contains(&seq)
                            || wal.unacked.contains_key(&seq)
                        {
                            continue;
                        }
                        let entry = Entry {
                            segment: first,
                            offset,
                            len,
                            items,
                        };
                        wal.bytes += entry.bytes();
                        wal.unacked.insert(seq, entry);
                        wal.unread.insert(seq);
                        recovery.records += 1;
                        recovery.items += u64::from(items);
                        live += 1;
                    }
                    Scanned::Damage { bytes, items } => {
                        recovery.corrupt_records += 1;
                        recovery.corrupt_items += u64::from(items);
                        recovery.corrupt_bytes += bytes;
                    }
                }
            }
            if live == 0 {
                // Nothing left to deliver from it: acknowledged, or only damage.
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            wal.segments.push_back(Segment {
                first_seq: first,
                path,
                bytes: data.len() as u64,
                live,
            });
        }
        if recovery.corrupt_records > 0 {
            tracing::warn!(dir = %dir.display(), records = recovery.corrupt_records,
                bytes = recovery.corrupt_bytes, "queue storage had damaged records; skipped");
        }
        Ok((wal, recovery))
    }

    /// Bytes of records not yet acknowledged (headers included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Sequence numbers of the records not yet handed out, oldest first.
    pub fn unread(&self) -> impl Iterator<Item = u64> + '_ {
        self.unread.iter().copied()
    }

    /// Appends a record; returns its sequence number. On an error nothing was added: a
    /// partly written record is cut back off, so the batch can be refused to its sender
    /// and the records after it are read at the right offsets.
    pub fn append(&mut self, payload: &[u8], items: u32) -> Result<u64, WalError> {
        match self.try_append(payload, items) {
            // The segment being written held only delivered records, i.e. only space:
            // with it deleted, a full disk may well take the record in a new one.
            Err(_) if self.discard_finished_segment() => self.try_append(payload, items),
            done => done,
        }
    }

    /// After a failed append: deletes the segment being written if every record in it is
    /// acknowledged (segments are otherwise deleted only once a newer one exists, and a
    /// full disk may never let one start). Returns whether it did.
    fn discard_finished_segment(&mut self) -> bool {
        let Some(segment) = self.segments.back() else {
            return false;
        };
        if segment.live > 0 || segment.bytes == 0 {
            return false;
        }
        self.writer = None;
        if let Err(e) = fs::remove_file(&segment.path) {
            tracing::warn!(path = %segment.path.display(), error = %e,
                "cannot delete a delivered queue segment");
            return false;
        }
        self.segments.pop_back();
        true
    }

    fn try_append(&mut self, payload: &[u8], items: u32) -> Result<u64, WalError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or(WalError::TooLarge(payload.len()))?;
        let rotate = self.writer.is_none()
            || self
                .segments
                .back()
                .is_none_or(|s| s.bytes >= self.options.segment_bytes);
        if rotate {
            self.start_segment()?;
        }
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(HEADER_BYTES as usize + payload.len());
        record.extend_from_slice(&MAGIC);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(seq, items, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&items.to_le_bytes());
        record.extend_from_slice(payload);
        let sync = match self.options.fsync {
            Fsync::Always => true,
            Fsync::Batch => self.last_sync.elapsed() >= BATCH_SYNC_INTERVAL,
            Fsync::Never => false,
        };
        let segment = self
            .segments
            .back_mut()
            .expect("start_segment pushed a segment");
        let writer = self.writer.as_mut().expect("start_segment opened a writer");
        let offset = segment.bytes;
        let written = writer
            .append(&record)
            .and_then(|()| if sync { writer.sync() } else { Ok(()) });
        if let Err(source) = written {
            // The file may now hold part of the record (a short write on a full disk) or
            // all of it unsynced. Cut it back to the last good record; the file is opened
            // for appending, so the next record lands right after it. If even that fails,
            // close the segment: the next append starts a new one, and the tail left here
            // is found as damage by the next start, never read as a record.
            if let Err(e) = writer.truncate(offset) {
                tracing::warn!(path = %segment.path.display(), error = %e,
                    "cannot cut a failed append off the queue segment; starting a new one");
                self.writer = None;
            }
            return Err(io(&segment.path)(source));
        }
        let entry = Entry {
            segment: segment.first_seq,
            offset,
            len,
            items,
        };
        segment.bytes += entry.bytes();
        segment.live += 1;
        self.next_seq += 1;
        self.bytes += entry.bytes();
        self.unacked.insert(seq, entry);
        self.unread.insert(seq);
        if sync {
            self.dirty = false;
            self.last_sync = Instant::now();
        } else {
            self.dirty = true;
        }
        Ok(seq)
    }

    fn start_segment(&mut self) -> Result<(), WalError> {
        if let Some(mut w) = self.writer.take()
            && self.options.fsync != Fsync::Never
        {
            let path = self
                .segments
                .back()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            w.sync().map_err(io(&path))?;
        }
        let path = self.dir.join(format!("{:020}.wal", self.next_seq));
        if self.segments.back().is_some_and(|s| s.path == path) {
            // A failed append that could not be cut off closed this segment before any
            // record went into it: all it holds is that append's remains. Start afresh.
            fs::remove_file(&path).map_err(io(&path))?;
            self.segments.pop_back();
        }
        let file = self.store.create(&path).map_err(io(&path))?;
        if self.options.fsync != Fsync::Never {
            // The new file's name must survive a crash too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))?;
        }
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            path,
            bytes: 0,
            live: 0,
        });
        self.writer = Some(file);
        Ok(())
    }

    /// Forces pending appends to disk (`fsync: batch` calls this on a timer).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.options.fsync == Fsync::Never || !self.dirty {
            return Ok(());
        }
        if let Some(w) = &mut self.writer {
            let path = self
                .segments
                .back()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            w.sync().map_err(io(&path))?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The oldest record not handed out yet, read back from disk and checked again. A
    /// record damaged since it was written (or whose segment is gone) is reported as
    /// [`Next::Damaged`]; acknowledge it to move on. A read that fails otherwise is an
    /// error and the record stays first in line, to be tried again.
    pub fn next_record(&mut self) -> Result<Option<Next>, WalError> {
        let Some(seq) = self.unread.first().copied() else {
            return Ok(None);
        };
        let Some(entry) = self.unacked.get(&seq).copied() else {
            self.unread.remove(&seq);
            return Ok(Some(Next::Damaged { seq, items: 0 }));
        };
        let path = self
            .segments
            .iter()
            .find(|s| s.first_seq == entry.segment)
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let mut record = vec![0u8; entry.bytes() as usize];
        let damaged = match self.store.read_at(&path, entry.offset, &mut record) {
            Ok(()) => !matches!(parse_record(&record), Some((s, _, _)) if s == seq),
            // Shorter than the index says, or deleted under us: the bytes are gone.
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::NotFound) => true,
            Err(source) => return Err(io(&path)(source)),
        };
        self.unread.remove(&seq);
        if damaged {
            return Ok(Some(Next::Damaged {
                seq,
                items: entry.items,
            }));
        }
        record.drain(..HEADER_BYTES as usize);
        Ok(Some(Next::Record {
            seq,
            items: entry.items,
            payload: record,
        }))
    }

    /// The oldest record not handed out yet, removed without delivery (to make room).
    pub fn drop_oldest(&mut self) -> Result<Option<u32>, WalError> {
        let Some(seq) = self.unread.first().copied() else {
            return Ok(None);
        };
        let items = self.unacked.get(&seq).map_or(0, |e| e.items);
        if let Err(e) = self.ack(seq) {
            // The record is gone from the index either way; the caller must count it.
            tracing::warn!(dir = %self.dir.display(), error = %e,
                "dropped a batch but could not record it on disk; it may come back after a restart");
        }
        Ok(Some(items))
    }

    /// Confirms a record: it will not be replayed. Deletes segments left with nothing
    /// to deliver and moves the persisted cursor. The record leaves the index even when
    /// that fails (a full disk cannot take the new cursor): the error then only means a
    /// restart may deliver it again.
    pub fn ack(&mut self, seq: u64) -> Result<(), WalError> {
        self.unread.remove(&seq);
        let Some(entry) = self.unacked.remove(&seq) else {
            return Ok(());
        };
        self.bytes -= entry.bytes();
        if let Some(s) = self
            .segments
            .iter_mut()
            .find(|s| s.first_seq == entry.segment)
        {
            s.live = s.live.saturating_sub(1);
        }
        // Drop finished segments from the front, never the one being written.
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.live == 0) {
            if let Some(s) = self.segments.pop_front() {
                fs::remove_file(&s.path).map_err(io(&s.path))?;
            }
        }
        let cursor = self.unacked.keys().next().copied().unwrap_or(self.next_seq);
        self.acked_ahead.insert(seq);
        self.acked_ahead = self.acked_ahead.split_off(&cursor);
        self.cursor = cursor;
        self.write_cursor()
    }

    fn write_cursor(&self) -> Result<(), WalError> {
        let path = self.dir.join(ACK_FILE);
        let tmp = self.dir.join("ack.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let mut text = format!("{}\n", self.cursor);
        for seq in &self.acked_ahead {
            text.push_str(&seq.to_string());
            text.push(' ');
        }
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        if self.options.fsync == Fsync::Always {
            f.sync_data().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// What [`Wal::next_record`] hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Record {
        seq: u64,
        items: u32,
        payload: Vec<u8>,
    },
    /// The record could not be read back intact; acknowledge it to move on.
    Damaged { seq: u64, items: u32 },
}

/// The cursor and the records acknowledged above it. A missing or unreadable file replays
/// everything still on disk: duplicates, never loss.
fn read_cursor(path: &Path) -> (u64, BTreeSet<u64>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let Some(cursor) = lines.next().and_then(|l| l.trim().parse().ok()) else {
        return (0, BTreeSet::new());
    };
    let ahead = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .filter(|s| *s >= cursor)
        .collect();
    (cursor, ahead)
}

fn checksum(seq: u64, items: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&items.to_le_bytes());
    h.update(payload);
    h.finalize()
}

enum Scanned {
    Record {
        seq: u64,
        offset: u64,
        len: u32,
        items: u32,
    },
    /// Bytes that are not a valid record (torn write, flipped bits, garbage), and the items
    /// the damaged record's header claims when it is still plausible (0 when not).
    Damage { bytes: u64, items: u32 },
}

/// Walks a segment's bytes, yielding valid records and runs of damage between them.
fn scan(data: &[u8]) -> impl Iterator<Item = Scanned> + '_ {
    let mut pos = 0usize;
    let mut damage_from: Option<usize> = None;
    std::iter::from_fn(move || {
        loop {
            if pos >= data.len() {
                return damage_from.take().map(|from| Scanned::Damage {
                    bytes: (data.len() - from) as u64,
                    items: damaged_items(&data[from..]),
                });
            }
            if let Some(r) = parse_record(&data[pos..]) {
                let offset = pos;
                pos += HEADER_BYTES as usize + r.1 as usize;
                if let Some(from) = damage_from.take() {
                    // Report the damage first; the record comes on the next call.
                    pos = offset;
                    return Some(Scanned::Damage {
                        bytes: (offset - from) as u64,
                        items: damaged_items(&data[from..offset]),
                    });
                }
                return Some(Scanned::Record {
                    seq: r.0,
                    offset: offset as u64,
                    len: r.1,
                    items: r.2,
                });
            }
            damage_from.get_or_insert(pos);
            // Resynchronise on the next magic.
            pos = data[pos + 1..]
                .windows(MAGIC.len())
                .position(|w| w == MAGIC)
                .map_or(data.len(), |p| pos + 1 + p);
        }
    })
}

/// The item count in the header of a damaged record starting `damage`, if the header
/// still looks like one: the magic is there and the count is no larger than the payload
/// length it claims (every item takes at least a byte). The CRC failed, so this is the best estimate left, not a certainty.
fn damaged_items(damage: &[u8]) -> u32 {
    let Some(header) = damage.get(..HEADER_BYTES as usize) else {
        return 0;
    };
    if header[..4] != MAGIC {
        return 0;
    }
    let field = |at: usize| header.get(at..at + 4).and_then(|b| b.try_into().ok());
    match (
        field(4).map(u32::from_le_bytes),
        field(20).map(u32::from_le_bytes),
    ) {
        (Some(len), Some(items)) if items <= len && len <= MAX_RECORD_BYTES => items,
        _ => 0,
    }
}

/// A valid record at the start of `data`: (sequence number, payload length, items).
fn parse_record(data: &[u8]) -> Option<(u64, u32, u32)> {
    let header = data.get(..HEADER_BYTES as usize)?;
    if header[..4] != MAGIC {
        return None;
    }
    let word = |at: usize| -> Option<[u8; 4]> { header.get(at..at + 4)?.try_into().ok() };
    let len = u32::from_le_bytes(word(4)?);
    let crc = u32::from_le_bytes(word(8)?);
    let seq = u64::from_le_bytes(header.get(12..20)?.try_into().ok()?);
    let items = u32::from_le_bytes(word(20)?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = data.get(HEADER_BYTES as usize..HEADER_BYTES as usize + len as usize)?;
    (checksum(seq, items, payload) == crc).then_some((seq, len, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> WalOptions {
        WalOptions {
            fsync: Fsync::Never,
            segment_bytes: 200,
        }
    }

    fn drain(wal: &mut Wal) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(next) = wal.next_record().unwrap() {
            match next {
                Next::Record { seq, payload, .. } => {
                    out.push(payload);
                    wal.ack(seq).unwrap();
                }
                Next::Damaged { seq, .. } => wal.ack(seq).unwrap(),
            }
        }
        out
    }

    #[test]
    fn records_come_back_in_order_and_acked_ones_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..20u8 {
            wal.append(&[i; 30], 1).unwrap();
        }
        assert!(wal.segments.len() > 1, "rotated");
        // Deliver the first five, then "crash" (drop without acking the rest).
        for _ in 0..5 {
            let Some(Next::Record { seq, .. }) = wal.next_record().unwrap() else {
                panic!("a record")
            };
            wal.ack(seq).unwrap();
        }
        drop(wal);
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!((rec.records, rec.items, rec.corrupt_records), (15, 15, 0));
        let got = drain(&mut wal);
        assert_eq!(got, (5..20u8).map(|i| vec![i; 30]).collect::<Vec<_>>());
        assert!(wal.is_empty());
        assert_eq!(wal.bytes(), 0);
        // New records continue the sequence after a restart.
        let seq = wal.append(b"x", 1).unwrap();
        assert_eq!(seq, 20);
        let files = fs::read_dir(dir.path()).unwrap().count();
        // ack, lock and the segments still in use.
        assert!(files <= 4, "finished segments are deleted ({files} files)");
    }

    #[test]
    fn out_of_order_acks_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
        for i in 0..4u8 {
            wal.append(&[i], 1).unwrap();
        }
        let mut seqs = Vec::new();
        while let Some(Next::Record { seq, .. }) = wal.next_record().unwrap() {
            seqs.push(seq);
        }
        wal.ack(seqs[1]).unwrap();
        wal.ack(seqs[3]).unwrap();
        drop(wal);
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        // The cursor is still at record 0, but 1 and 3 are known to be done.
        assert_eq!(rec.records, 2);
        assert_eq!(drain(&mut wal), vec![vec![0u8], vec![2u8]]);
    }

    #[test]
    fn flipped_bytes_and_truncation_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(
            dir.path(),
            WalOptions {
                fsync: Fsync::Always,
                segment_bytes: 1 << 20,
            },
        )
        .unwrap();
        for i in 0..10u8 {
            wal.append(&[i; 50], 2).unwrap();
        }
        drop(wal);
        let segment = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "wal"))
            .unwrap();
        let mut data = fs::read(&segment).unwrap();
        let record = (HEADER_BYTES + 50) as usize;
        data[3 * record + 30] ^= 0xff; // payload of record 3
        data[6 * record + 1] ^= 0xff; // magic of record 6
        data.truncate(data.len() - 10); // torn last record
        fs::write(&segment, &data).unwrap();
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!(rec.corrupt_records, 3);
        // Records 3 and 9 still have their headers; record 6's magic is gone.
        assert_eq!(rec.corrupt_items, 4);
        assert_eq!((rec.records, rec.items), (7, 14));
        let got = drain(&mut wal);
        let want: Vec<Vec<u8>> = [0u8, 1, 2, 4, 5, 7, 8]
            .iter()
            .map(|i| vec![*i; 50])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn garbage_files_never_crash_and_yield_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("00000000000000000000.wal"),
            b"ASQ1\xff\xff\xff\xffjunk",
        )
        .unwrap();
        fs::write(dir.path().join("ack"), b"not a number").unwrap();
        fs::write(dir.path().join("README"), b"ignored").unwrap();
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!((rec.records, rec.corrupt_records), (0, 1));
        assert!(wal.next_record().unwrap().is_none());
        assert_eq!(wal.append(b"ok", 1).unwrap(), 0);
    }

    #[test]
    fn drop_oldest_makes_room_and_reports_items() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
        wal.append(b"first", 3).unwrap();
        wal.append(b"second", 4).unwrap();
        let before = wal.bytes();
        assert_eq!(wal.drop_oldest().unwrap(), Some(3));
        assert_eq!(wal.bytes(), before - HEADER_BYTES - 5);
        assert_eq!(drain(&mut wal), vec![b"second".to_vec()]);
        assert_eq!(wal.drop_oldest().unwrap(), None);
    }

    use super::super::faulty_disk::FaultyDisk;

    /// Bytes one record of `payload` bytes takes on disk.
    fn on_disk(payload: usize) -> u64 {
        HEADER_BYTES + payload as u64
    }

    fn segment_lengths(dir: &Path) -> Vec<u64> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .collect()
    }

    fn big_segments(fsync: Fsync) -> WalOptions {
        WalOptions {
            fsync,
            segment_bytes: 1 << 20,
        }
    }

    #[test]
    fn a_short_write_on_a_full_disk_is_cut_off_and_the_records_after_it_read_back_intact() {
        let dir = tempfile::tempdir().unwrap();
        // Room for three records and half of a fourth.
        let disk = FaultyDisk::with_capacity(3 * on_disk(40) + 30);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        for i in 0..3u8 {
            wal.append(&[i; 40], 1).unwrap();
        }
        let err = wal.append(&[3; 40], 1).unwrap_err();
        assert!(err.to_string().contains("no space left"), "{err}");
        assert_eq!(
            segment_lengths(dir.path()),
            vec![3 * on_disk(40)],
            "the partial record is cut off"
        );
        assert_eq!(wal.bytes(), 3 * on_disk(40), "and not counted");
        disk.free(1 << 20);
        wal.append(&[4; 40], 1).unwrap();
        wal.append(&[5; 40], 1).unwrap();
        drop(wal);
        // What a restart finds: exactly the five appended records, nothing damaged.
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!((rec.records, rec.corrupt_records), (5, 0));
        let want: Vec<Vec<u8>> = [0u8, 1, 2, 4, 5].iter().map(|i| vec![*i; 40]).collect();
        assert_eq!(drain(&mut wal), want);
    }

    #[test]
    fn the_same_log_reads_back_exactly_what_was_appended_after_a_refused_record() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(on_disk(40) + 10);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        wal.append(&[0; 40], 1).unwrap();
        assert!(wal.append(&[1; 40], 1).is_err());
        disk.free(1 << 20);
        wal.append(&[2; 40], 1).unwrap();
        // Without the cut, record 2 would sit 10 bytes past where the index looks for it.
        let got = drain(&mut wal);
        assert_eq!(got, vec![vec![0u8; 40], vec![2u8; 40]]);
    }

    #[test]
    fn a_failed_fsync_takes_the_record_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(1 << 20);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Always),
            Arc::new(disk.clone()),
        )
        .unwrap();
        wal.append(b"kept", 1).unwrap();
        disk.fail_syncs(1);
        assert!(wal.append(b"refused", 2).is_err());
        assert_eq!(segment_lengths(dir.path()), vec![on_disk(4)]);
        wal.append(b"after", 3).unwrap();
        drop(wal);
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!((rec.records, rec.items, rec.corrupt_records), (2, 4, 0));
        assert_eq!(drain(&mut wal), vec![b"kept".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn a_failed_append_that_cannot_be_cut_off_moves_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(on_disk(40) + 30);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        wal.append(&[0; 40], 1).unwrap();
        disk.fail_truncates(1);
        assert!(wal.append(&[1; 40], 1).is_err());
        disk.free(1 << 20);
        wal.append(&[2; 40], 1).unwrap();
        assert_eq!(
            segment_lengths(dir.path()),
            vec![on_disk(40) + 30, on_disk(40)],
            "the torn tail stays behind in the old segment"
        );
        assert_eq!(drain(&mut wal), vec![vec![0u8; 40], vec![2u8; 40]]);
    }

    #[test]
    fn a_torn_tail_left_behind_is_damage_at_the_next_start_not_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(on_disk(40) + 30);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        wal.append(&[0; 40], 1).unwrap();
        disk.fail_truncates(1);
        assert!(wal.append(&[1; 40], 7).is_err());
        disk.free(1 << 20);
        wal.append(&[2; 40], 1).unwrap();
        drop(wal);
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        // Counted (over-counted: its batch was refused), never delivered.
        assert_eq!(
            (rec.records, rec.corrupt_records, rec.corrupt_items),
            (2, 1, 7)
        );
        assert_eq!(drain(&mut wal), vec![vec![0u8; 40], vec![2u8; 40]]);
    }

    #[test]
    fn a_first_append_that_fails_uncut_leaves_no_remains_in_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(30);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        disk.fail_truncates(1);
        assert!(wal.append(&[1; 40], 1).is_err());
        disk.free(1 << 20);
        // Same sequence number, so the same file name: it is started afresh.
        assert_eq!(wal.append(&[2; 40], 1).unwrap(), 0);
        assert_eq!(segment_lengths(dir.path()), vec![on_disk(40)]);
        drop(wal);
        let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!((rec.records, rec.corrupt_records), (1, 0));
        assert_eq!(drain(&mut wal), vec![vec![2u8; 40]]);
    }

    #[test]
    fn a_failed_read_leaves_the_record_first_in_line() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(1 << 20);
        let (mut wal, _) = Wal::open_on(
            dir.path(),
            big_segments(Fsync::Never),
            Arc::new(disk.clone()),
        )
        .unwrap();
        wal.append(b"first", 1).unwrap();
        wal.append(b"second", 1).unwrap();
        disk.fail_reads(2);
        assert!(wal.next_record().is_err());
        assert!(wal.next_record().is_err());
        assert_eq!(drain(&mut wal), vec![b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn a_segment_deleted_under_the_log_is_damage_with_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), big_segments(Fsync::Never)).unwrap();
        wal.append(b"gone", 5).unwrap();
        for p in fs::read_dir(dir.path()).unwrap() {
            let p = p.unwrap().path();
            if p.extension().is_some_and(|e| e == "wal") {
                fs::remove_file(p).unwrap();
            }
        }
        assert_eq!(
            wal.next_record().unwrap(),
            Some(Next::Damaged { seq: 0, items: 5 })
        );
    }

    #[test]
    fn queue_files_are_private_to_the_owner() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("exporter__logs");
        let (mut wal, _) = Wal::open(&dir, big_segments(Fsync::Never)).unwrap();
        let seq = wal.append(b"secret", 1).unwrap();
        wal.append(b"more", 1).unwrap();
        wal.ack(seq).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.iter().any(|p| p.ends_with(ACK_FILE)));
        assert!(files.iter().any(|p| p.ends_with(LOCK_FILE)));
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }

    #[test]
    fn a_second_opener_of_the_directory_is_refused_naming_it_and_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Wal::open(dir.path(), options()).unwrap();
        let err = Wal::open(dir.path(), options()).err().expect("locked");
        match &err {
            WalError::Locked { dir: d, holder } => {
                assert_eq!(d, dir.path());
                assert_eq!(*holder, Some(std::process::id()));
            }
            other => panic!("not a lock error: {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        assert!(Wal::open(dir.path(), options()).is_ok(), "released on drop");
    }

    #[test]
    fn a_full_disk_whose_current_segment_is_all_delivered_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::with_capacity(2 * on_disk(40));
        let (mut wal, _) =
            Wal::open_on(dir.path(), big_segments(Fsync::Never), Arc::new(disk)).unwrap();
        wal.append(&[0; 40], 1).unwrap();
        wal.append(&[1; 40], 1).unwrap();
        assert_eq!(drain(&mut wal).len(), 2);
        // The disk holds only delivered records: they make way for the new one.
        assert_eq!(wal.append(&[2; 40], 1).unwrap(), 2);
        assert_eq!(segment_lengths(dir.path()), vec![on_disk(40)]);
        assert_eq!(drain(&mut wal), vec![vec![2u8; 40]]);
    }
}
