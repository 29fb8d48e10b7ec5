//! Write-ahead log segment files: naming, writing with group syncs, and reading back.
//!
//! A segment starts with [`MAGIC`]; its records are framed by [`crate::frame`] (marker, length,
//! CRC-32). A record's payload is `[u32 n][(u16 packet id, u32 checksum) × n]` — the messages
//! the samples came from — then the spool's encoding of the batch of samples.
//!
//! Reading recovers what it can: a torn tail (where a crash interrupted the last write, nothing
//! after it acknowledged) ends the segment; a corrupt record is skipped and the records after
//! it whose checksums hold are replayed. Either is reported, so the caller can count it and keep
//! the file for inspection. Segments written before framing (no magic) are read in their old
//! form, up to their first damaged record.
//!
//! Writing never acknowledges what failed: an error in a write or a sync fails the whole group
//! since the last sync, cuts the segment back to what was synced, and closes it; the next append
//! starts a new segment (recovering by itself once the disk has room again).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::WalStats;
use crate::codec::{self, Rows};
use crate::frame::{self, Damage, FileMagic};
use crate::sample::Sample;
use crate::source::ack::MessageId;

/// The first bytes of a segment: "MSWAL", format 2.
pub const MAGIC: FileMagic = *b"MSWAL\0\0\x02";

pub fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:010}.wal"))
}

/// The segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let number = e.file_name().to_str()?.strip_suffix(".wal")?.parse().ok()?;
            Some((number, e.path()))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Samples replayed.
    pub samples: u64,
    /// Damage met: torn tails and corrupt records (or records that would not decode).
    pub damage: Vec<Damage>,
}

/// Reads a segment's batches (and the ids of the messages they came from) in order, recovering
/// after damage (see the module's header).
pub fn read(
    path: &Path,
    mut batch: impl FnMut(Vec<Sample>, Vec<MessageId>),
) -> io::Result<ReadReport> {
    let bytes = fs::read(path)?;
    let mut report = ReadReport::default();
    let mut take = |offset: usize, payload: &[u8], report: &mut ReadReport| {
        let decoded = split_ids(payload)
            .ok_or_else(|| "malformed message ids".to_string())
            .and_then(|(ids, payload)| {
                codec::decode(payload)
                    .map(|m| (ids, m))
                    .map_err(|e| e.to_string())
            });
        match decoded {
            Ok((ids, Rows::Samples(rows))) => {
                report.samples += rows.len() as u64;
                batch(rows.to_vec(), ids);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), offset, error = %e, "undecodable write-ahead log record; skipped");
                report.damage.push(Damage::Corrupt {
                    offset,
                    resumed_at: offset,
                });
            }
        }
    };
    if bytes.starts_with(&MAGIC) {
        let mut records = frame::Records::new(&bytes, MAGIC.len());
        for (offset, payload) in records.by_ref() {
            take(offset, payload, &mut report);
        }
        report.damage.extend(records.damage);
    } else {
        let mut read = 0;
        for payload in frame::legacy_records(&bytes) {
            take(read, payload, &mut report);
            read += 8 + payload.len();
        }
        if read < bytes.len() {
            report.damage.push(Damage::TornTail { offset: read });
        }
    }
    for damage in &report.damage {
        match damage {
            Damage::TornTail { offset } => {
                tracing::warn!(path = %path.display(), offset, "write-ahead log ends in a torn record (a crash during a write); the rest was never acknowledged")
            }
            Damage::Corrupt { offset, resumed_at } => {
                tracing::error!(path = %path.display(), offset, resumed_at, "write-ahead log record is corrupt; skipped, the records after it replayed")
            }
        }
    }
    Ok(report)
}

fn split_ids(payload: &[u8]) -> Option<(Vec<MessageId>, &[u8])> {
    let n = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let end = 4usize.checked_add(n.checked_mul(6)?)?;
    let table = payload.get(4..end)?;
    let ids = table
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                u32::from_le_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    Some((ids, &payload[end..]))
}

/// Appends to the current segment; syncs on request.
pub struct Writer {
    dir: PathBuf,
    number: u64,
    file: Option<BufWriter<File>>,
    /// Bytes in the current segment (magic included).
    bytes: u64,
    /// Bytes of the current segment known to be on disk.
    synced: u64,
    /// Something was appended since the last sync.
    dirty: bool,
    /// An append of the group since the last sync failed.
    failed: bool,
    /// Segments closed (after an error) since the last cut, to be cut with the next one.
    closed: Vec<u64>,
    stats: Arc<WalStats>,
}

impl Writer {
    pub fn new(dir: PathBuf, number: u64, stats: Arc<WalStats>) -> Writer {
        Writer {
            dir,
            number,
            file: None,
            bytes: 0,
            synced: 0,
            dirty: false,
            failed: false,
            closed: Vec::new(),
            stats,
        }
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let path = path(&self.dir, self.number);
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)?;
            let ready = file
                .write_all(&MAGIC)
                .and_then(|()| file.sync_data())
                // The new file's directory entry must survive a crash too.
                .and_then(|()| File::open(&self.dir)?.sync_all());
            if let Err(e) = ready {
                drop(file);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            self.file = Some(BufWriter::with_capacity(1 << 20, file));
            self.bytes = MAGIC.len() as u64;
            self.synced = self.bytes;
            self.stats.segments.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Buffers one record (written to disk by the next [`Writer::sync`]); false when it could
    /// not be written (the group fails: see [`Writer::sync`]).
    pub fn append(&mut self, samples: &Arc<[Sample]>, ids: &[MessageId]) -> bool {
        let encoded = match codec::encode(&Rows::Samples(samples.clone())) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::error!(error = %e, "a batch cannot be logged; its messages stay unacknowledged");
                self.failed = true;
                self.dirty = true;
                return false;
            }
        };
        let mut payload = Vec::with_capacity(4 + ids.len() * 6 + encoded.len());
        payload.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for (pkid, crc) in ids {
            payload.extend_from_slice(&pkid.to_le_bytes());
            payload.extend_from_slice(&crc.to_le_bytes());
        }
        payload.extend_from_slice(&encoded);
        let record = frame::encode(&payload);
        self.dirty = true;
        match self.file().and_then(|file| file.write_all(&record)) {
            Ok(()) => {
                let written = record.len() as u64;
                self.bytes += written;
                self.stats.bytes.fetch_add(written, Ordering::Relaxed);
                self.stats
                    .appended_samples
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    /// An error in a write or a sync: what the group wrote cannot be trusted. The segment is
    /// cut back to what was synced and closed; the next append starts a new one.
    fn failed(&mut self, e: &io::Error) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, dir = %self.dir.display(), "cannot write the write-ahead log; these messages stay unacknowledged (the broker sends them again)");
        self.failed = true;
        if let Some(writer) = self.file.take() {
            // Not flushed: the buffer is what failed.
            let (file, _) = writer.into_parts();
            let _ = file.set_len(self.synced);
            self.stats
                .bytes
                .fetch_sub(self.bytes - self.synced, Ordering::Relaxed);
            self.closed.push(self.number);
            self.number += 1;
            self.bytes = 0;
            self.synced = 0;
        }
    }

    /// Flushes and syncs what was appended; `false` if any of it failed since the previous
    /// sync (none of that group may be acknowledged then).
    pub fn sync(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        self.dirty = false;
        if let Some(file) = self.file.as_mut() {
            match file.flush().and_then(|()| file.get_ref().sync_data()) {
                Ok(()) => {
                    self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                    self.synced = self.bytes;
                }
                Err(e) => self.failed(&e),
            }
        }
        !std::mem::replace(&mut self.failed, false)
    }

    /// Closes the current segment (synced); the next append starts a new one. Returns the
    /// segments closed since the last cut (empty segments are not cut).
    pub fn cut(&mut self) -> Vec<u64> {
        self.sync();
        let mut cut = std::mem::take(&mut self.closed);
        if self.file.is_some() && self.bytes > MAGIC.len() as u64 {
            self.file = None;
            cut.push(self.number);
            self.number += 1;
            self.bytes = 0;
            self.synced = 0;
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn batch(from: i64, n: i64) -> Arc<[Sample]> {
        let d: Id = Id::from("D");
        (from..from + n)
            .map(|ts| Sample::number(d.clone(), d.clone(), ts, ts as f64))
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn reads_back_what_was_synced_and_recovers_after_damage() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(WalStats::default());
        let mut writer = Writer::new(dir.path().to_path_buf(), 7, stats.clone());
        assert!(writer.append(&batch(0, 10), &[(7, 0xdead_beef)]));
        assert!(writer.append(&batch(10, 5), &[]));
        assert!(writer.append(&batch(15, 5), &[]));
        assert!(writer.sync());
        assert_eq!(writer.cut(), vec![7]);
        assert!(writer.cut().is_empty(), "an empty segment is not cut");
        writer.append(&batch(100, 3), &[]);
        writer.sync();
        assert_eq!(stats.segments.load(Ordering::Relaxed), 2);

        let segments = list(dir.path()).unwrap();
        assert_eq!(
            segments.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![7, 8]
        );
        let mut seen = Vec::new();
        let mut ids = Vec::new();
        let report = read(&segments[0].1, |b, i| {
            seen.extend(b.into_iter().map(|s| s.ts));
            ids.extend(i);
        })
        .unwrap();
        assert_eq!(report.samples, 20);
        assert!(report.damage.is_empty());
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(ids, vec![(7, 0xdead_beef)]);

        // A flipped bit in the second record loses that record only.
        let file = &segments[0].1;
        let clean = fs::read(file).unwrap();
        let mut bytes = clean.clone();
        let second = frame::resync(&clean, MAGIC.len() + 1).expect("a second record");
        bytes[second + frame::HEADER + 30] ^= 1;
        fs::write(file, &bytes).unwrap();
        let mut seen = Vec::new();
        let report = read(file, |b, _| seen.extend(b.into_iter().map(|s| s.ts))).unwrap();
        assert_eq!(seen, (0..10).chain(15..20).collect::<Vec<_>>());
        assert!(
            matches!(report.damage[..], [Damage::Corrupt { .. }]),
            "{:?}",
            report.damage
        );
        // A crash in the middle of the last record.
        fs::write(file, &clean[..clean.len() - 3]).unwrap();
        let report = read(file, |_, _| {}).unwrap();
        assert_eq!(report.samples, 15);
        assert!(matches!(report.damage[..], [Damage::TornTail { .. }]));
    }

    #[test]
    fn a_failed_write_is_never_acknowledged_and_the_log_recovers_by_itself() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wal");
        let stats = Arc::new(WalStats::default());
        let mut writer = Writer::new(dir.clone(), 0, stats.clone());
        // The directory is missing: the segment cannot be created (as on a full disk).
        assert!(!writer.append(&batch(0, 10), &[(1, 1)]));
        assert!(!writer.sync(), "the group failed");
        assert_eq!(stats.write_errors.load(Ordering::Relaxed), 1);
        // Room again: the next group is written and synced.
        fs::create_dir_all(&dir).unwrap();
        assert!(writer.append(&batch(10, 10), &[(2, 2)]));
        assert!(writer.sync());
        let segments = list(&dir).unwrap();
        assert_eq!(segments.len(), 1);
        let report = read(&segments[0].1, |_, _| {}).unwrap();
        assert_eq!(report.samples, 10);
        assert!(report.damage.is_empty());
    }
}
