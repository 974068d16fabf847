//! A file that starts over under a new name once it reaches a size, keeping a bounded
//! number of rotated copies (`traces-20261127T093501.123.jsonl` next to `traces.jsonl`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct RotatingFile {
    path: PathBuf,
    /// `(max_bytes, max_backups)`; `None` = never rotate. `max_backups` 0 keeps all.
    rotation: Option<(u64, usize)>,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub fn new(path: PathBuf, rotation: Option<(u64, usize)>) -> RotatingFile {
        RotatingFile {
            path,
            rotation,
            file: None,
            size: 0,
        }
    }

    /// Appends one complete line; a line is never split across two files.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some((max_bytes, _)) = self.rotation
            && self.size > 0
            && self.size + line.len() as u64 > max_bytes
        {
            self.rotate()?;
        }
        let file = self.open()?;
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent()
                && !dir.as_os_str().is_empty()
            {
                fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_data()?;
        }
        let backup = backup_name(&self.path, SystemTime::now());
        fs::rename(&self.path, &backup)?;
        self.size = 0;
        if let Some((_, max_backups)) = self.rotation
            && max_backups > 0
        {
            prune(&self.path, max_backups)?;
        }
        Ok(())
    }
}

fn stem_and_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, ext)
}

/// `dir/stem-YYYYMMDDTHHMMSS.mmm[-n].ext`, unique in the directory. The timestamp sorts
/// lexically, so the oldest backup is the first name.
fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let (stem, ext) = stem_and_ext(path);
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(['-', ':'], "")
        .trim_end_matches('Z')
        .to_string();
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut candidate = dir.join(format!("{stem}-{stamp}{ext}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.join(format!("{stem}-{stamp}-{n}{ext}"));
        n += 1;
    }
    candidate
}

fn prune(path: &Path, keep: usize) -> io::Result<()> {
    let (stem, ext) = stem_and_ext(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{stem}-");
    let mut backups: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.starts_with(&prefix) && n.ends_with(&ext) && n.len() > prefix.len() + ext.len()
            })
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in &backups[..excess] {
        fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.jsonl");
        let mut f = RotatingFile::new(path.clone(), Some((100, 2)));
        let line = [b'x'; 59];
        let mut line = line.to_vec();
        line.push(b'\n');
        for _ in 0..5 {
            f.write_line(&line).unwrap();
            // Distinct timestamps are not needed: names are made unique.
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // 5 lines of 60 bytes, at most one per 100-byte file: the live file + 2 backups.
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"traces.jsonl".to_string()));
        for n in &names {
            let len = fs::metadata(dir.path().join(n)).unwrap().len();
            assert_eq!(len, 60, "{n} holds exactly one whole line");
        }
    }

    #[test]
    fn without_rotation_appends_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("logs.jsonl");
        let mut f = RotatingFile::new(path.clone(), None);
        for _ in 0..3 {
            f.write_line(b"{}\n").unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n{}\n{}\n");
    }
}
