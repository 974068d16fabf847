//! For tests: a [`SegmentStore`] on the real file system that fails on demand, the way a
//! disk does. Appends share a byte budget like a file system filling up: one that does not
//! fit writes what fits and then fails with "no space left", so the segment really holds
//! a partial record. Syncs, cuts and reads can be made to fail a number of times.

use std::io::{Error, ErrorKind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::wal::{Disk, SegmentFile, SegmentStore};

#[derive(Debug, Default)]
struct Faults {
    free: u64,
    fail_syncs: u32,
    fail_truncates: u32,
    fail_reads: u32,
}

#[derive(Clone)]
pub struct FaultyDisk {
    faults: Arc<Mutex<Faults>>,
}

impl FaultyDisk {
    /// A disk with `free` bytes left for segments.
    pub fn with_free(free: u64) -> FaultyDisk {
        FaultyDisk {
            faults: Arc::new(Mutex::new(Faults {
                free,
                ..Faults::default()
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut self.faults.lock().unwrap())
    }

    /// Space freed elsewhere on the disk.
    pub fn free(&self, bytes: u64) {
        self.with(|f| f.free += bytes);
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

struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    len: u64,
    disk: FaultyDisk,
}

impl SegmentFile for FaultyFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let fits = self.disk.with(|f| {
            let n = f.free.min(bytes.len() as u64);
            f.free -= n;
            n as usize
        });
        self.inner.append(&bytes[..fits])?;
        self.len += fits as u64;
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
        self.inner.truncate(len)?;
        let freed = self.len.saturating_sub(len);
        self.disk.with(|f| f.free += freed);
        self.len = len;
        Ok(())
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
            len: std::fs::metadata(path)?.len(),
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
