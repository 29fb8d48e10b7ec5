//! The disk spool behind a sink's queue (DESIGN.md §7): when a sink falls behind and its queue is
//! full, batches go to disk instead of stalling the dataflow, and the sink drains them in order
//! once it has caught up with its queue.
//!
//! Design:
//! - One directory per sink, `state_dir/spool/<sink>/`, holding numbered segment files
//!   (`<n>.spool`), each starting with [`MAGIC`] and holding records framed by
//!   [`crate::frame`] (marker, length, CRC-32) around [`crate::codec`]'s encoding of one batch.
//! - Order: once one batch is spooled, every later batch is spooled too, until the sink has
//!   read the spool to its end; the sink reads its queue first (older) and then the spool, so
//!   batches reach the store in the order they were produced.
//! - Bound: at most `limit` bytes; beyond it the oldest segment is deleted, and its rows counted
//!   as dropped and logged as an error.
//! - Leftover segments (a previous run that stopped with a backlog) are drained first, from
//!   where the previous run stopped reading (`read-position`, saved on flush and drop).
//! - Damage: a segment a crash cut short ends at its last whole record (the torn tail is the
//!   normal end of a `kill -9`, not an error); a corrupt record is skipped and reading goes on
//!   at the next good one. Either is counted ([`Spool::damaged`]), never a stop of the sink.
//!   Segments of the format before framing (`<n>.seg`) are read to their first damaged record.
//! - A disk that refuses a write (full, an I/O error): the batch is *held* in memory, in
//!   order behind what is on disk, and every later one too until the disk takes them again
//!   (each push first tries to write what is held). The sink reads held batches after the
//!   disk's, so it goes on without the disk; nothing is lost while the hold has room
//!   ([`HOLD_LIMIT`]). Beyond it a push fails: those rows are only in the write-ahead log.
//! - Durability: each batch is written whole (no buffer that a failure could half-write; a
//!   failed write is cut back off the file). The spool protects the dataflow from a slow
//!   store, not the data from a crash: the write-ahead log does that, and lets go of data only
//!   once a checkpoint barrier that travelled behind it (through this spool, when the sink is
//!   behind) comes back from the sink, i.e. once the store has it. So the spool is synced only
//!   at shutdown ([`Spool::sync`]), when a backlog stays for the next start. A new segment's
//!   directory entry is synced when the segment is created.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SinkMessage;
use crate::codec;
use crate::frame::{self, FileMagic};

/// The first bytes of a segment: "MSSPL", format 2.
pub const MAGIC: FileMagic = *b"MSSPL\0\0\x02";

/// Segment files roll at this size, or at a quarter of the limit when that is smaller (dropping
/// the oldest segment then gives up at most a quarter of the spool).
const SEGMENT_BYTES: u64 = 64 << 20;
const MIN_SEGMENT_BYTES: u64 = 4 << 10;

/// Most bytes (as encoded) of batches held in memory while the disk refuses them.
pub const HOLD_LIMIT: u64 = 64 << 20;

/// One segment on disk.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    rows: u64,
    /// Written before records were framed: `[u32 length][record]`, no checksum.
    legacy: bool,
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
    writer: Option<File>,
    /// The oldest segment open for reading, and how far it has been read.
    reader: Option<(u64, File)>,
    read_offset: u64,
    /// Bytes on disk.
    bytes: u64,
    /// Rows given up because the spool was full.
    pub dropped_rows: u64,
    /// Torn tails and corrupt records met while reading.
    pub damaged: u64,
    /// Where a previous run stopped reading: (segment number, offset).
    resume: Option<(u64, u64)>,
    /// Rows already read from the segment being read (not lost if it is dropped).
    read_rows: u64,
    /// Barriers spooled in their place, by id, with the segment that holds them.
    barriers: std::collections::BTreeMap<u64, (u64, super::Barrier)>,
    next_barrier: u64,
    /// Batches the disk refused, oldest first, each with its encoded rows (`None`: a
    /// barrier) to write once it can: newer than everything on disk.
    held: VecDeque<(SinkMessage, Option<Vec<u8>>)>,
    held_bytes: u64,
    hold_limit: u64,
}

/// The file remembering how far the oldest segment was read, so a restart does not write
/// that part again.
const POSITION_FILE: &str = "read-position";

impl Spool {
    /// Opens (creating) the spool directory; existing segments are kept, to be drained first.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut numbers: Vec<(u64, bool)> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                match name.strip_suffix(".spool") {
                    Some(n) => Some((n.parse().ok()?, false)),
                    None => Some((name.strip_suffix(".seg")?.parse().ok()?, true)),
                }
            })
            .collect();
        numbers.sort();
        let mut segments = VecDeque::new();
        let mut bytes = 0;
        for &(n, legacy) in &numbers {
            let path = segment_path(dir, n, legacy);
            let size = fs::metadata(&path)?.len();
            bytes += size;
            segments.push_back(Segment {
                path,
                bytes: size,
                rows: 0,
                legacy,
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
            next_number: numbers.last().map_or(0, |(n, _)| n + 1),
            segments,
            writer: None,
            reader: None,
            read_offset: 0,
            bytes,
            dropped_rows: 0,
            damaged: 0,
            barriers: Default::default(),
            next_barrier: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            hold_limit: HOLD_LIMIT.min(limit),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.held.is_empty()
    }

    /// Bytes waiting: on disk, and held in memory while the disk refuses them.
    pub fn bytes(&self) -> u64 {
        self.bytes + self.held_bytes
    }

    /// Bytes held in memory because the disk refused them.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Appends a batch. Returns the rows dropped to stay within the limit (0 normally). A disk
    /// that refuses it (full, an I/O error) leaves it held in memory, in order, while the hold
    /// has room. An error — a batch the format cannot hold, or a refusing disk with the hold
    /// full — leaves the spool as it was: the batch is not in it.
    pub fn push(&mut self, message: &SinkMessage) -> io::Result<u64> {
        let payload = match message {
            SinkMessage::Tick => return Ok(0),
            SinkMessage::Barrier(_) => None,
            _ => Some(rows_payload(message)?),
        };
        let size = held_size(&payload);
        let dropped = self.write_held();
        if self.held.is_empty() {
            match self.write(message, payload.as_deref()) {
                Ok(n) => return Ok(dropped + n),
                Err(e) => {
                    tracing::error!(spool = %self.dir.display(), error = %e, "the disk refuses the spool; batches are held in memory until it takes them again");
                }
            }
        }
        if self.held_bytes + size > self.hold_limit {
            return Err(io::Error::other(format!(
                "the disk refuses the spool and {} bytes are already held in memory",
                self.held_bytes
            )));
        }
        self.held.push_back((message.clone(), payload));
        self.held_bytes += size;
        Ok(dropped)
    }

    /// Writes held batches to disk, oldest first, until the disk refuses one. Returns the rows
    /// dropped to stay within the limit.
    fn write_held(&mut self) -> u64 {
        let mut dropped = 0;
        while let Some((message, payload)) = self.held.pop_front() {
            let size = held_size(&payload);
            match self.write(&message, payload.as_deref()) {
                Ok(n) => dropped += n,
                Err(_) => {
                    self.held.push_front((message, payload));
                    break;
                }
            }
            self.held_bytes -= size;
            if self.held.is_empty() {
                tracing::info!(spool = %self.dir.display(), "the disk takes the spool again");
            }
        }
        dropped
    }

    /// Writes a batch (its encoded rows, `None` for a barrier) to the last segment. Returns
    /// the rows dropped to stay within the limit. An error leaves the segment as it was.
    fn write(&mut self, message: &SinkMessage, payload: Option<&[u8]>) -> io::Result<u64> {
        let barrier = match message {
            SinkMessage::Barrier(barrier) => {
                self.next_barrier += 1;
                Some((self.next_barrier, barrier.clone()))
            }
            _ => None,
        };
        let barrier_payload;
        let payload = match (&barrier, payload) {
            (Some((id, _)), _) => {
                barrier_payload = codec::encode_barrier(*id);
                &barrier_payload[..]
            }
            (None, Some(payload)) => payload,
            (None, None) => return Ok(0),
        };
        let record = frame::encode(payload);
        let rows = message.rows().map_or(0, |r| r.len());
        if self.writer.is_none()
            || self
                .segments
                .back()
                .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            self.roll()?;
        }
        let writer = self.writer.as_mut().expect("rolled above");
        let segment = self.segments.back_mut().expect("rolled above");
        if let Err(e) = writer.write_all(&record) {
            // Cut back what was half written, so the segment stays whole.
            let _ = writer.set_len(segment.bytes);
            return Err(e);
        }
        let written = record.len() as u64;
        segment.bytes += written;
        segment.rows += rows;
        self.bytes += written;
        if let Some((id, barrier)) = barrier {
            let number = segment_number(&segment.path);
            self.barriers.insert(id, (number, barrier));
        }
        // The batch is written: a failure to delete an old segment must not make it look
        // refused (it would be written twice).
        let mut dropped = 0;
        while self.bytes > self.limit && self.segments.len() > 1 {
            match self.drop_oldest() {
                Ok(n) => dropped += n,
                Err(e) => {
                    tracing::error!(spool = %self.dir.display(), error = %e, "cannot delete the spool's oldest segment");
                    break;
                }
            }
        }
        Ok(dropped)
    }

    /// Remembers how far the oldest segment was read (records are written whole, so nothing
    /// else is held back).
    pub fn flush(&mut self) -> io::Result<()> {
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

    /// Writes what is held to disk and syncs it (at shutdown). An error when some of it is
    /// not durable, held batches included.
    pub fn sync(&mut self) -> io::Result<()> {
        self.write_held();
        if !self.held.is_empty() {
            return Err(io::Error::other(format!(
                "{} batches the disk refused are only in memory",
                self.held.len()
            )));
        }
        self.flush()?;
        if let Some(w) = self.writer.as_ref() {
            w.sync_data()?;
        }
        Ok(())
    }

    /// The oldest batch, or `None` when the spool is empty (then its files are gone).
    pub fn pop(&mut self) -> io::Result<Option<SinkMessage>> {
        loop {
            let Some(oldest) = self.segments.front() else {
                return Ok(self.pop_held());
            };
            let number = segment_number(&oldest.path);
            let (file_len, legacy) = (oldest.bytes, oldest.legacy);
            let writing = self.segments.len() == 1 && self.writer.is_some();
            if self.reader.as_ref().is_none_or(|(n, _)| *n != number) {
                let file = File::open(&oldest.path)?;
                self.read_rows = 0;
                self.read_offset = match self.resume.take() {
                    Some((segment, offset)) if segment == number => offset,
                    _ if legacy => 0,
                    _ => {
                        let mut magic = [0u8; 8];
                        if file.read_exact_at(&mut magic, 0).is_err() || magic != MAGIC {
                            tracing::error!(spool = %self.dir.display(), segment = number, "spool segment without its header; skipped");
                            self.damaged += 1;
                            file_len
                        } else {
                            MAGIC.len() as u64
                        }
                    }
                };
                self.reader = Some((number, file));
            }
            let record = if legacy {
                self.legacy_record(file_len)?
            } else {
                self.framed_record(file_len, writing)?
            };
            match record {
                Some(bytes) => match codec::decode_record(&bytes) {
                    Ok(codec::Record::Rows(rows)) => {
                        self.read_rows += rows.len();
                        return Ok(Some(SinkMessage::from(rows)));
                    }
                    Ok(codec::Record::Barrier(id)) => {
                        // A barrier of an earlier run has no one waiting for it.
                        if let Some((_, barrier)) = self.barriers.remove(&id) {
                            return Ok(Some(SinkMessage::Barrier(barrier)));
                        }
                    }
                    Err(e) => {
                        self.damaged += 1;
                        tracing::error!(spool = %self.dir.display(), error = %e, "skipping an undecodable spool record");
                    }
                },
                None => {
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
                        return Ok(self.pop_held());
                    }
                }
            }
        }
    }

    /// The oldest held batch (everything on disk has been read).
    fn pop_held(&mut self) -> Option<SinkMessage> {
        let (message, payload) = self.held.pop_front()?;
        self.held_bytes -= held_size(&payload);
        Some(message)
    }

    /// The next framed record of the segment being read (`None`: it is read to its end),
    /// skipping damage.
    fn framed_record(&mut self, file_len: u64, writing: bool) -> io::Result<Option<Vec<u8>>> {
        let (_, file) = self.reader.as_ref().expect("opened by pop");
        loop {
            let at = self.read_offset;
            let left = file_len.saturating_sub(at);
            if left == 0 {
                return Ok(None);
            }
            let mut header = [0u8; frame::HEADER];
            if left >= frame::HEADER as u64 {
                file.read_exact_at(&mut header, at)?;
                let marker = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
                let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as u64;
                if marker == frame::RECORD && len <= left - frame::HEADER as u64 {
                    let mut bytes = vec![0u8; frame::HEADER + len as usize];
                    file.read_exact_at(&mut bytes, at)?;
                    let mut records = frame::Records::new(&bytes, 0);
                    if let Some((_, payload)) = records.next() {
                        self.read_offset = at + bytes.len() as u64;
                        return Ok(Some(payload.to_vec()));
                    }
                }
            }
            // Damaged here: find the next good record in the rest of the segment.
            let mut rest = vec![0u8; left as usize];
            file.read_exact_at(&mut rest, at)?;
            self.damaged += 1;
            match frame::resync(&rest, 1) {
                Some(skip) => {
                    tracing::error!(spool = %self.dir.display(), offset = at, skipped = skip, "corrupt spool record; skipped to the next good one");
                    self.read_offset = at + skip as u64;
                }
                None => {
                    if !writing {
                        tracing::warn!(spool = %self.dir.display(), offset = at, bytes = left, "spool segment ends in a torn or corrupt record (a crash during a write); the rest is skipped");
                    }
                    self.read_offset = file_len;
                    return Ok(None);
                }
            }
        }
    }

    /// The next record of a segment written before framing (`None`: read to its end or to a
    /// record cut short).
    fn legacy_record(&mut self, file_len: u64) -> io::Result<Option<Vec<u8>>> {
        let (_, file) = self.reader.as_ref().expect("opened by pop");
        let at = self.read_offset;
        let mut len = [0u8; 4];
        if at + 4 > file_len {
            return Ok(None);
        }
        file.read_exact_at(&mut len, at)?;
        let len = u32::from_le_bytes(len) as u64;
        if at + 4 + len > file_len {
            self.damaged += 1;
            tracing::warn!(spool = %self.dir.display(), offset = at, "spool segment ends in a torn record; the rest is skipped");
            return Ok(None);
        }
        let mut record = vec![0u8; len as usize];
        file.read_exact_at(&mut record, at + 4)?;
        self.read_offset = at + 4 + len;
        Ok(Some(record))
    }

    fn roll(&mut self) -> io::Result<()> {
        self.writer = None;
        let path = segment_path(&self.dir, self.next_number, false);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let ready = file
            .write_all(&MAGIC)
            // The new segment's name must survive a crash too.
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if let Err(e) = ready {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.next_number += 1;
        self.writer = Some(file);
        self.bytes += MAGIC.len() as u64;
        self.segments.push_back(Segment {
            path,
            bytes: MAGIC.len() as u64,
            rows: 0,
            legacy: false,
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
        // Its barriers are never passed: the checkpoint sends new ones.
        let number = segment_number(&oldest.path);
        self.barriers.retain(|_, (segment, _)| *segment != number);
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

fn segment_path(dir: &Path, number: u64, legacy: bool) -> PathBuf {
    dir.join(format!(
        "{number:010}.{}",
        if legacy { "seg" } else { "spool" }
    ))
}

fn segment_number(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// What a held batch counts for in the hold's bound (a barrier: a few bytes).
fn held_size(payload: &Option<Vec<u8>>) -> u64 {
    payload.as_ref().map_or(32, |p| p.len() as u64)
}

/// A batch's rows as a spool record holds them, or why the format cannot hold them.
fn rows_payload(message: &SinkMessage) -> io::Result<Vec<u8>> {
    let rows = message.rows().expect("a batch of rows");
    let payload = codec::encode(&rows).map_err(io::Error::other)?;
    if payload.len() > frame::MAX_RECORD {
        return Err(io::Error::other(format!(
            "a batch of {} bytes is larger than a spool record may be",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Shared by the producer (dataflow) and the consumer (sink) of one sink.
pub type SharedSpool = Arc<std::sync::Mutex<Spool>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::sample::Sample;

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

    fn drain(spool: &mut Spool) -> Vec<i64> {
        let mut seen = Vec::new();
        while let Some(m) = spool.pop().unwrap() {
            seen.push(first_ts(&m));
        }
        seen
    }

    #[test]
    fn a_torn_tail_ends_the_segment_and_a_corrupt_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        for k in 0..5 {
            spool.push(&samples(k * 100, 100)).unwrap();
        }
        drop(spool);
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "spool"))
            .unwrap();
        let clean = std::fs::read(&segment).unwrap();
        // kill -9 in the middle of the last write.
        std::fs::write(&segment, &clean[..clean.len() - 7]).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(drain(&mut spool), vec![0, 100, 200, 300]);
        assert_eq!(spool.damaged, 1);
        assert!(
            spool.is_empty(),
            "the torn segment is consumed, not a wedge"
        );
        drop(spool);
        // A flipped bit in the second record: the others are read.
        let mut bytes = clean.clone();
        let second = frame::resync(&bytes, MAGIC.len() + 1).unwrap();
        bytes[second + frame::HEADER + 20] ^= 0x40;
        std::fs::write(&segment, &bytes).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(drain(&mut spool), vec![0, 200, 300, 400]);
        assert_eq!(spool.damaged, 1);
        drop(spool);
        // A damaged length is damage, not a huge allocation.
        let mut bytes = clean.clone();
        bytes[MAGIC.len() + 4..MAGIC.len() + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&segment, &bytes).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(drain(&mut spool), vec![100, 200, 300, 400]);
    }

    #[test]
    fn a_disk_that_refuses_the_spool_holds_batches_in_memory_in_order() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("spool");
        let mut spool = Spool::open(&dir, 1 << 30).unwrap();
        spool.push(&samples(0, 10)).unwrap();
        // The disk refuses: the spool's directory is gone and a file holds its name (a new
        // segment cannot be made; a real ENOTDIR, as a full disk gives ENOSPC).
        let refuse = || {
            fs::remove_dir_all(&dir).unwrap();
            fs::write(&dir, b"").unwrap();
        };
        let allow = || {
            fs::remove_file(&dir).unwrap();
            fs::create_dir(&dir).unwrap();
        };
        assert_eq!(first_ts(&spool.pop().unwrap().unwrap()), 0);
        assert!(spool.pop().unwrap().is_none());
        refuse();
        spool.push(&samples(10, 10)).unwrap();
        let barrier = super::super::Barrier::default();
        spool.push(&SinkMessage::Barrier(barrier.clone())).unwrap();
        spool.push(&samples(20, 10)).unwrap();
        assert!(!spool.is_empty());
        assert!(spool.held_bytes() > 0);
        assert!(spool.sync().is_err(), "held batches are not durable");
        // The sink reads them without the disk, in order, the barrier in its place.
        assert_eq!(first_ts(&spool.pop().unwrap().unwrap()), 10);
        assert!(matches!(
            spool.pop().unwrap(),
            Some(SinkMessage::Barrier(_))
        ));
        // Room again: the next push writes what is held first, then itself.
        allow();
        spool.push(&samples(30, 10)).unwrap();
        assert_eq!(spool.held_bytes(), 0);
        spool.sync().unwrap();
        assert_eq!(drain(&mut spool), vec![20, 30]);
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn the_memory_hold_is_bounded() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("spool");
        // A 64 KiB spool holds at most 64 KiB in memory too.
        let mut spool = Spool::open(&dir, 64 << 10).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"").unwrap();
        let mut held = 0;
        let refused = loop {
            match spool.push(&samples(held * 100, 100)) {
                Ok(_) => held += 1,
                Err(e) => break e,
            }
            assert!(held < 1_000, "never refused");
        };
        assert!(refused.to_string().contains("held in memory"), "{refused}");
        assert!(spool.held_bytes() <= 64 << 10);
        // What was held is all there.
        let mut seen = Vec::new();
        while let Some(m) = spool.pop().unwrap() {
            seen.push(first_ts(&m));
        }
        assert_eq!(seen, (0..held).map(|k| k * 100).collect::<Vec<_>>());
    }

    #[test]
    fn segments_of_the_unframed_format_are_still_drained() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for k in 0..3 {
            let record = codec::encode(&samples(k * 10, 10).rows().unwrap()).unwrap();
            bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&record);
        }
        std::fs::write(dir.path().join("0000000004.seg"), &bytes[..bytes.len() - 2]).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        spool.push(&samples(1_000, 10)).unwrap();
        assert_eq!(
            drain(&mut spool),
            vec![0, 10, 1_000],
            "old segment first, torn record skipped"
        );
    }
}
