//! The disk spool behind a sink's queue (DESIGN.md §7): when a sink falls behind and its queue is
//! full, batches go to disk instead of stalling the dataflow, and the sink drains them in order
//! once it has caught up with its queue.
//!
//! Design:
//! - One directory per sink, `state_dir/spool/<sink>/`, holding numbered segment files; a
//!   segment is a sequence of records `[u32 length][u8 kind][payload]` (see [`codec`]).
//! - Order: once one batch is spooled, every later batch is spooled too, until the sink has
//!   read the spool to its end; the sink reads its queue first (older) and then the spool, so
//!   batches reach the store in the order they were produced.
//! - Bound: at most `limit` bytes; beyond it the oldest segment is deleted, and its rows counted
//!   as dropped and logged as an error.
//! - Leftover segments (a previous run that stopped with a backlog) are drained first, from
//!   where the previous run stopped reading (`read-position`, saved on flush and drop).
//! - The spool is not synced to disk: it protects against slow stores, not against power loss
//!   (the write-ahead log of the source does that).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SinkMessage;

pub mod codec;

/// Segment files roll at this size, or at a quarter of the limit when that is smaller (dropping
/// the oldest segment then gives up at most a quarter of the spool).
const SEGMENT_BYTES: u64 = 64 << 20;
const MIN_SEGMENT_BYTES: u64 = 4 << 10;

/// One segment on disk.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    rows: u64,
}

/// The spool of one sink.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limit: u64,
    segment_bytes: u64,
    next_number: u64,
    /// Oldest first; the last one is being written.
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    /// The oldest segment open for reading, and how far it has been read.
    reader: Option<(u64, File)>,
    read_offset: u64,
    /// Bytes on disk.
    bytes: u64,
    /// Rows given up because the spool was full.
    pub dropped_rows: u64,
    /// Where a previous run stopped reading: (segment number, offset).
    resume: Option<(u64, u64)>,
    /// Rows already read from the segment being read (not lost if it is dropped).
    read_rows: u64,
}

/// The file remembering how far the oldest segment was read, so a restart does not write
/// that part again.
const POSITION_FILE: &str = "read-position";

impl Spool {
    /// Opens (creating) the spool directory; existing segments are kept, to be drained first.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut numbers: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        numbers.sort();
        let mut segments = VecDeque::new();
        let mut bytes = 0;
        for n in &numbers {
            let path = dir.join(format!("{n:010}.seg"));
            let size = fs::metadata(&path)?.len();
            bytes += size;
            segments.push_back(Segment {
                path,
                bytes: size,
                rows: 0,
            });
        }
        let resume = fs::read_to_string(dir.join(POSITION_FILE))
            .ok()
            .and_then(|text| {
                let (segment, offset) = text.trim().split_once(' ')?;
                Some((segment.parse().ok()?, offset.parse().ok()?))
            });
        Ok(Spool {
            read_rows: 0,
            resume,
            dir: dir.to_path_buf(),
            limit,
            segment_bytes: (limit / 4).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES),
            next_number: numbers.last().map_or(0, |n| n + 1),
            segments,
            writer: None,
            reader: None,
            read_offset: 0,
            bytes,
            dropped_rows: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends a batch. Returns the rows dropped to stay within the limit (0 normally).
    pub fn push(&mut self, message: &SinkMessage) -> io::Result<u64> {
        let Some(record) = codec::encode(message) else {
            return Ok(0);
        };
        let rows = codec::rows(message);
        if self.writer.is_none()
            || self
                .segments
                .back()
                .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            self.roll()?;
        }
        let writer = self.writer.as_mut().expect("rolled above");
        writer.write_all(&(record.len() as u32).to_le_bytes())?;
        writer.write_all(&record)?;
        let written = 4 + record.len() as u64;
        let segment = self.segments.back_mut().expect("rolled above");
        segment.bytes += written;
        segment.rows += rows;
        self.bytes += written;
        let mut dropped = 0;
        while self.bytes > self.limit && self.segments.len() > 1 {
            dropped += self.drop_oldest()?;
        }
        Ok(dropped)
    }

    /// Writes buffered records to the file and remembers how far the oldest segment was read
    /// (the spool is not fsynced: see the module notes).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
        }
        let path = self.dir.join(POSITION_FILE);
        match &self.reader {
            Some((segment, _)) if self.read_offset > 0 => {
                let temporary = self.dir.join(format!(".{POSITION_FILE}"));
                fs::write(&temporary, format!("{segment} {}\n", self.read_offset))?;
                fs::rename(&temporary, &path)
            }
            _ if self.resume.is_none() => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Flushes and syncs to disk (for a write-ahead log checkpoint).
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(w) = self.writer.as_ref() {
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// The oldest batch, or `None` when the spool is empty (then its files are gone).
    pub fn pop(&mut self) -> io::Result<Option<SinkMessage>> {
        loop {
            let Some(oldest) = self.segments.front() else {
                return Ok(None);
            };
            let number = segment_number(&oldest.path);
            let writing = self.segments.len() == 1 && self.writer.is_some();
            if writing {
                self.writer.as_mut().expect("checked").flush()?;
            }
            if self.reader.as_ref().is_none_or(|(n, _)| *n != number) {
                self.reader = Some((number, File::open(&oldest.path)?));
                self.read_rows = 0;
                self.read_offset = match self.resume.take() {
                    Some((segment, offset)) if segment == number => offset,
                    _ => 0,
                };
            }
            let (_, file) = self.reader.as_ref().expect("opened above");
            let mut len = [0u8; 4];
            match file.read_exact_at(&mut len, self.read_offset) {
                Ok(()) => {
                    let mut record = vec![0u8; u32::from_le_bytes(len) as usize];
                    file.read_exact_at(&mut record, self.read_offset + 4)?;
                    self.read_offset += 4 + record.len() as u64;
                    match codec::decode(&record) {
                        Ok(message) => {
                            self.read_rows += codec::rows(&message);
                            return Ok(Some(message));
                        }
                        Err(e) => {
                            tracing::error!(spool = %self.dir.display(), error = %e, "skipping a corrupt spool record");
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // This segment is consumed: delete it; if it was the one being written the
                    // spool is drained.
                    self.reader = None;
                    self.read_offset = 0;
                    let done = self.segments.pop_front().expect("front exists");
                    self.bytes -= done.bytes;
                    if writing {
                        self.writer = None;
                    }
                    fs::remove_file(&done.path)?;
                    if self.segments.is_empty() {
                        let _ = fs::remove_file(self.dir.join(POSITION_FILE));
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn roll(&mut self) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        let path = self.dir.join(format!("{:010}.seg", self.next_number));
        self.next_number += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        self.segments.push_back(Segment {
            path,
            bytes: 0,
            rows: 0,
        });
        Ok(())
    }

    fn drop_oldest(&mut self) -> io::Result<u64> {
        let oldest = self.segments.pop_front().expect("more than one");
        // Rows already handed to the sink from this segment are not lost.
        let mut lost = oldest.rows;
        if self
            .reader
            .as_ref()
            .is_some_and(|(n, _)| *n == segment_number(&oldest.path))
        {
            lost = lost.saturating_sub(self.read_rows);
            self.reader = None;
            self.read_offset = 0;
            self.read_rows = 0;
        }
        self.bytes -= oldest.bytes;
        fs::remove_file(&oldest.path)?;
        self.dropped_rows += lost;
        tracing::error!(
            spool = %self.dir.display(),
            rows = lost,
            bytes = oldest.bytes,
            "spool full: dropped its oldest segment (raise spool_limit or fix the sink)"
        );
        Ok(lost)
    }
}

impl Drop for Spool {
    /// A backlog left at shutdown is resumed where it was read, not from its segment's start.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(spool = %self.dir.display(), error = %e, "cannot save the spool's read position");
        }
    }
}

fn segment_number(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Shared by the producer (dataflow) and the consumer (sink) of one sink.
pub type SharedSpool = Arc<std::sync::Mutex<Spool>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::sample::Sample;
    use crate::window::WindowRow;

    fn samples(from: i64, n: i64) -> SinkMessage {
        let d: Id = Id::from("D");
        let i: Id = Id::from("x");
        SinkMessage::Samples(
            (from..from + n)
                .map(|ts| {
                    if ts % 3 == 0 {
                        Sample::text(d.clone(), i.clone(), ts, format!("t{ts}"))
                    } else {
                        Sample::number(d.clone(), i.clone(), ts, ts as f64 / 2.0)
                    }
                })
                .collect::<Vec<_>>()
                .into(),
        )
    }

    fn first_ts(m: &SinkMessage) -> i64 {
        match m {
            SinkMessage::Samples(s) => s[0].ts,
            _ => panic!("not samples"),
        }
    }

    #[test]
    fn codec_round_trips() {
        let m = samples(0, 7);
        let SinkMessage::Samples(back) = codec::decode(&codec::encode(&m).unwrap()).unwrap() else {
            panic!()
        };
        let SinkMessage::Samples(orig) = m else {
            panic!()
        };
        assert_eq!(&*back, &*orig);
        let w = WindowRow {
            device: "D".into(),
            item: "x".into(),
            size_ms: 10_000,
            start: 20_000,
            end: 30_000,
            count: 1,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            stddev: None,
            p50: 1.0,
            p95: 1.0,
            p99: 1.0,
            first: 1.0,
            last: 1.0,
        };
        let m = SinkMessage::Windows(vec![w.clone()].into());
        let SinkMessage::Windows(back) = codec::decode(&codec::encode(&m).unwrap()).unwrap() else {
            panic!()
        };
        assert_eq!(back[0], w);
        assert!(
            codec::decode(&[1, 9, 9]).is_err(),
            "a cut record is an error, not a panic"
        );
        assert!(codec::encode(&SinkMessage::Tick).is_none());
    }

    #[test]
    fn drains_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert!(spool.pop().unwrap().is_none());
        for k in 0..10 {
            spool.push(&samples(k * 100, 100)).unwrap();
        }
        assert!(!spool.is_empty());
        for k in 0..4 {
            assert_eq!(first_ts(&spool.pop().unwrap().unwrap()), k * 100);
        }
        // Interleaved writes keep their place behind older data.
        spool.push(&samples(1_000, 100)).unwrap();
        drop(spool);
        // A restart finds the backlog and continues where it was written (unread part first).
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let mut seen = Vec::new();
        while let Some(m) = spool.pop().unwrap() {
            seen.push(first_ts(&m));
        }
        // The reopened spool resumes where the first one stopped reading.
        assert_eq!(seen, (4..11).map(|k| k * 100).collect::<Vec<_>>());
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "drained segments are deleted"
        );
    }

    #[test]
    fn a_full_spool_drops_its_oldest_segment_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1 << 20;
        let mut spool = Spool::open(dir.path(), limit).unwrap();
        let mut dropped = 0;
        for k in 0..100 {
            dropped += spool.push(&samples(k * 1000, 1000)).unwrap();
        }
        assert!(dropped > 0);
        assert_eq!(dropped % 1000, 0, "whole batches are dropped");
        assert_eq!(dropped, spool.dropped_rows);
        assert!(spool.bytes() <= limit, "{}", spool.bytes());
        // What was not dropped is all there, oldest first: the newest batches survive.
        let mut kept = Vec::new();
        while let Some(m) = spool.pop().unwrap() {
            kept.push(first_ts(&m));
        }
        assert_eq!(kept.len() as u64 * 1000 + dropped, 100_000);
        assert_eq!(*kept.last().unwrap(), 99_000);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1000));
    }
}
