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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::component::delivery::Fsync;

const MAGIC: [u8; 4] = *b"ASQ1";
/// magic (4) + payload length (4) + crc32 (4) + sequence number (8) + item count (4).
pub const HEADER_BYTES: u64 = 24;
/// A record longer than this is treated as damage, not allocated.
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
const ACK_FILE: &str = "ack";
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
    /// Damaged or truncated records skipped; their items are unknown.
    pub corrupt_records: usize,
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
    segments: VecDeque<Segment>,
    writer: Option<File>,
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
        fs::create_dir_all(dir).map_err(io(dir))?;
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
                    Scanned::Damage { bytes } => {
                        recovery.corrupt_records += 1;
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

    /// Appends a record; returns its sequence number.
    pub fn append(&mut self, payload: &[u8], items: u32) -> Result<u64, WalError> {
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
        let segment = self
            .segments
            .back_mut()
            .expect("start_segment pushed a segment");
        let path = segment.path.clone();
        let writer = self.writer.as_mut().expect("start_segment opened a writer");
        writer.write_all(&record).map_err(io(&path))?;
        let entry = Entry {
            segment: segment.first_seq,
            offset: segment.bytes,
            len,
            items,
        };
        segment.bytes += entry.bytes();
        segment.live += 1;
        self.next_seq += 1;
        self.bytes += entry.bytes();
        self.unacked.insert(seq, entry);
        self.unread.insert(seq);
        self.dirty = true;
        self.maybe_sync(self.options.fsync == Fsync::Always)?;
        Ok(seq)
    }

    fn start_segment(&mut self) -> Result<(), WalError> {
        if let Some(w) = self.writer.take()
            && self.options.fsync != Fsync::Never
        {
            let path = self
                .segments
                .back()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            w.sync_data().map_err(io(&path))?;
        }
        let path = self.dir.join(format!("{:020}.wal", self.next_seq));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
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

    fn maybe_sync(&mut self, force: bool) -> Result<(), WalError> {
        let due = match self.options.fsync {
            Fsync::Always => true,
            Fsync::Batch => force || self.last_sync.elapsed() >= BATCH_SYNC_INTERVAL,
            Fsync::Never => false,
        };
        if due && self.dirty {
            if let Some(w) = &self.writer {
                let path = self
                    .segments
                    .back()
                    .map(|s| s.path.clone())
                    .unwrap_or_default();
                w.sync_data().map_err(io(&path))?;
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Forces pending appends to disk (`fsync: batch` calls this on a timer).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.options.fsync == Fsync::Never {
            return Ok(());
        }
        self.maybe_sync(true)
    }

    /// The oldest record not handed out yet, read back from disk and checked again. A
    /// record damaged since it was written is skipped and reported as `Err(Damaged)`.
    pub fn next_record(&mut self) -> Result<Option<Next>, WalError> {
        let Some(seq) = self.unread.pop_first() else {
            return Ok(None);
        };
        let Some(entry) = self.unacked.get(&seq).copied() else {
            return Ok(Some(Next::Damaged { seq, items: 0 }));
        };
        let path = self
            .segments
            .iter()
            .find(|s| s.first_seq == entry.segment)
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let mut file = File::open(&path).map_err(io(&path))?;
        file.seek(SeekFrom::Start(entry.offset))
            .map_err(io(&path))?;
        let mut record = vec![0u8; entry.bytes() as usize];
        if file.read_exact(&mut record).is_err() {
            return Ok(Some(Next::Damaged {
                seq,
                items: entry.items,
            }));
        }
        if !matches!(parse_record(&record), Some((s, _, _)) if s == seq) {
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
        self.ack(seq)?;
        Ok(Some(items))
    }

    /// Confirms a record: it will not be replayed. Deletes segments left with nothing
    /// to deliver and moves the persisted cursor.
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
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
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
    /// Bytes that are not a valid record (torn write, flipped bits, garbage).
    Damage { bytes: u64 },
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
        assert!(files <= 3, "finished segments are deleted ({files} files)");
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
}
