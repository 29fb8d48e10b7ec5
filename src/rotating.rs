//! A bounded set of JSON Lines files in one directory: lines are appended to the newest file,
//! which rolls at a size; beyond a number of files the oldest is deleted. Dead letters and a
//! sink's rejected rows are kept this way, so no stream of bad input can fill the disk.
//!
//! Files are named `<prefix><first ms, 13 digits>[-n]<suffix>`, so their names sort by age.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends lines to rotating files.
#[derive(Debug)]
pub struct RotatingFiles {
    dir: PathBuf,
    prefix: &'static str,
    suffix: &'static str,
    max_file_size: u64,
    max_files: usize,
    /// The file being written, its size, and how much of it reached the OS.
    file: Option<(BufWriter<File>, u64, u64)>,
}

impl RotatingFiles {
    /// Files in `dir` (created with the first line).
    pub fn new(
        dir: impl Into<PathBuf>,
        prefix: &'static str,
        suffix: &'static str,
        max_file_size: u64,
        max_files: usize,
    ) -> RotatingFiles {
        RotatingFiles {
            dir: dir.into(),
            prefix,
            suffix,
            max_file_size,
            max_files: max_files.max(1),
            file: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one line (which must end with `\n`); a new file is named after `ts`. After an
    /// error the next line starts a new file, and what was not flushed is cut off the old one
    /// (so a full disk leaves no torn line behind).
    pub fn append(&mut self, ts: i64, line: &[u8]) -> io::Result<()> {
        let result = self.try_append(ts, line);
        if result.is_err() {
            self.discard();
        }
        result
    }

    /// Gives up the file being written, cut back to what was flushed.
    fn discard(&mut self) {
        if let Some((writer, _, flushed)) = self.file.take() {
            let (file, _) = writer.into_parts();
            let _ = file.set_len(flushed);
        }
    }

    fn try_append(&mut self, ts: i64, line: &[u8]) -> io::Result<()> {
        let rotate = match &self.file {
            Some((_, size, _)) => *size + line.len() as u64 > self.max_file_size && *size > 0,
            None => true,
        };
        if rotate {
            self.flush()?;
            self.file = Some((self.open_new(ts)?, 0, 0));
        }
        let (file, size, _) = self.file.as_mut().expect("opened above");
        file.write_all(line)?;
        *size += line.len() as u64;
        Ok(())
    }

    /// Pushes buffered lines to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((file, size, flushed)) = &mut self.file {
            match file.flush() {
                Ok(()) => *flushed = *size,
                Err(e) => {
                    self.discard();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Flushes and syncs the file being written.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some((file, _, _)) = &self.file {
            file.get_ref().sync_data()?;
        }
        Ok(())
    }

    fn open_new(&self, ts: i64) -> io::Result<BufWriter<File>> {
        fs::create_dir_all(&self.dir)?;
        let (prefix, suffix) = (self.prefix, self.suffix);
        let mut path = self.dir.join(format!("{prefix}{ts:013}{suffix}"));
        let mut n = 1;
        while path.exists() {
            path = self.dir.join(format!("{prefix}{ts:013}-{n}{suffix}"));
            n += 1;
        }
        let file = File::options().create_new(true).append(true).open(&path)?;
        self.remove_old()?;
        Ok(BufWriter::new(file))
    }

    /// Deletes the oldest files beyond `max_files` (the one just created included).
    fn remove_old(&self) -> io::Result<()> {
        let files = self.list()?;
        let excess = files.len().saturating_sub(self.max_files);
        for old in &files[..excess] {
            fs::remove_file(old)?;
            tracing::warn!(file = %old.display(), "deleted an old file: at most {} are kept", self.max_files);
        }
        Ok(())
    }

    /// The files, oldest first.
    pub fn list(&self) -> io::Result<Vec<PathBuf>> {
        list(&self.dir, self.prefix, self.suffix)
    }
}

impl Drop for RotatingFiles {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The files of `prefix…suffix` in `dir`, oldest first.
pub fn list(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_roll_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RotatingFiles::new(dir.path(), "r-", ".jsonl", 100, 3);
        for ts in 0..50 {
            files
                .append(ts, b"{\"a line of some length\":1}\n")
                .unwrap();
        }
        files.flush().unwrap();
        let kept = files.list().unwrap();
        assert_eq!(kept.len(), 3);
        let total: u64 = kept.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
        assert!(total <= 3 * 100 + 30, "{total}");
        assert!(
            kept.last()
                .unwrap()
                .display()
                .to_string()
                .contains("0000000000048")
        );
    }
}
