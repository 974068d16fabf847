//! For tests: a [`SegmentStore`] on the real file system that fails on demand, the way a
//! disk does. Segments share a capacity like a small file system: an append that does not
//! fit in what the segment files on disk leave free writes what fits and then fails with
//! "no space left", so the segment really holds a partial record; cutting a file back or
//! deleting one frees its bytes. Syncs, cuts and reads can be made to fail a number of
//! times.

use std::io::{Error, ErrorKind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::wal::{Disk, SegmentFile, SegmentStore};

#[derive(Debug, Default)]
struct Faults {
    capacity: u64,
    fail_syncs: u32,
    fail_truncates: u32,
    fail_reads: u32,
}

#[derive(Clone)]
pub struct FaultyDisk {
    faults: Arc<Mutex<Faults>>,
}

impl FaultyDisk {
    /// A disk on which the segments of a queue may take `capacity` bytes.
    pub fn with_capacity(capacity: u64) -> FaultyDisk {
        FaultyDisk {
            faults: Arc::new(Mutex::new(Faults {
                capacity,
                ..Faults::default()
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut self.faults.lock().unwrap())
    }

    /// Space freed elsewhere on the disk.
    pub fn free(&self, bytes: u64) {
        self.with(|f| f.capacity += bytes);
    }

    pub fn fail_syncs(&self, n: u32) {
        self.with(|f| f.fail_syncs = n);
    }

    pub fn fail_truncates(&self, n: u32) {
        self.with(|f| f.fail_truncates = n);
    }

    pub fn fail_reads(&self, n: u32) {
        self.with(|f| f.fail_reads = n);
    }
}

fn take(n: &mut u32) -> bool {
    let fail = *n > 0;
    *n = n.saturating_sub(1);
    fail
}

/// Bytes the segment files in `dir` take now.
fn used(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    dir: std::path::PathBuf,
    disk: FaultyDisk,
}

impl SegmentFile for FaultyFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let free = self
            .disk
            .with(|f| f.capacity)
            .saturating_sub(used(&self.dir));
        let fits = free.min(bytes.len() as u64) as usize;
        self.inner.append(&bytes[..fits])?;
        if fits < bytes.len() {
            return Err(Error::new(
                ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if self.disk.with(|f| take(&mut f.fail_truncates)) {
            return Err(Error::other("injected truncate failure"));
        }
        self.inner.truncate(len)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.disk.with(|f| take(&mut f.fail_syncs)) {
            return Err(Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }
}

impl SegmentStore for FaultyDisk {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            inner: Disk.create(path)?,
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            disk: self.clone(),
        }))
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if self.with(|f| take(&mut f.fail_reads)) {
            return Err(Error::other("injected read failure"));
        }
        Disk.read_at(path, offset, buf)
    }
}
