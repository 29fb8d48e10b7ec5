//! Write-ahead log segment files: naming, writing with group syncs, and reading back.
//!
//! A record is `[u32 length][u32 crc32][payload]`, little-endian; the payload is
//! `[u32 n][(u16 packet id, u32 checksum) × n]` — the messages the samples came from — then the
//! spool's encoding of the batch of samples. Reading stops at the first record that is cut short or
//! fails its checksum: that is where a crash interrupted the last write, and nothing after it
//! was acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use flate2::Crc;

use super::WalStats;
use crate::sample::Sample;
use crate::sinks::SinkMessage;
use crate::sinks::spool::codec;
use crate::source::ack::MessageId;

/// Largest record accepted when reading (a larger length is corruption).
const MAX_RECORD: u32 = 1 << 30;

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

/// Reads a segment's batches (and the ids of the messages they came from) in order, stopping at
/// a torn or corrupt record. Returns the number of samples read.
pub fn read(path: &Path, mut batch: impl FnMut(Vec<Sample>, Vec<MessageId>)) -> io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    let mut samples = 0;
    while at + 8 <= bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let checksum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + length as usize;
        if length > MAX_RECORD || end > bytes.len() {
            tracing::warn!(path = %path.display(), offset = at, "write-ahead log ends in a torn record (a crash during a write); the rest was never acknowledged");
            break;
        }
        let payload = &bytes[at + 8..end];
        let mut crc = Crc::new();
        crc.update(payload);
        if crc.sum() != checksum {
            tracing::warn!(path = %path.display(), offset = at, "write-ahead log record fails its checksum; replay of this segment stops here");
            break;
        }
        let Some((ids, payload)) = split_ids(payload) else {
            tracing::warn!(path = %path.display(), offset = at, "malformed write-ahead log record; replay of this segment stops here");
            break;
        };
        match codec::decode(payload) {
            Ok(SinkMessage::Samples(rows)) => {
                samples += rows.len() as u64;
                batch(rows.to_vec(), ids);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), offset = at, error = %e, "undecodable write-ahead log record; replay of this segment stops here");
                break;
            }
        }
        at = end;
    }
    Ok(samples)
}

fn split_ids(payload: &[u8]) -> Option<(Vec<MessageId>, &[u8])> {
    let n = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let end = 4 + n.checked_mul(6)?;
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
    /// Bytes in the current segment.
    bytes: u64,
    /// Something was appended since the last sync.
    dirty: bool,
    stats: Arc<WalStats>,
}

impl Writer {
    pub fn new(dir: PathBuf, number: u64, stats: Arc<WalStats>) -> Writer {
        Writer {
            dir,
            number,
            file: None,
            bytes: 0,
            dirty: false,
            stats,
        }
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path(&self.dir, self.number))?;
            self.file = Some(BufWriter::with_capacity(1 << 20, file));
            self.stats.segments.fetch_add(1, Ordering::Relaxed);
            // The new file's directory entry must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Buffers one record (written to disk by the next [`Writer::sync`]).
    pub fn append(&mut self, samples: &Arc<[Sample]>, ids: &[MessageId]) {
        let Some(encoded) = codec::encode(&SinkMessage::Samples(samples.clone())) else {
            return;
        };
        let mut payload = Vec::with_capacity(4 + ids.len() * 6 + encoded.len());
        payload.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for (pkid, crc) in ids {
            payload.extend_from_slice(&pkid.to_le_bytes());
            payload.extend_from_slice(&crc.to_le_bytes());
        }
        payload.extend_from_slice(&encoded);
        let mut crc = Crc::new();
        crc.update(&payload);
        let result = self.file().and_then(|file| {
            file.write_all(&(payload.len() as u32).to_le_bytes())?;
            file.write_all(&crc.sum().to_le_bytes())?;
            file.write_all(&payload)
        });
        match result {
            Ok(()) => {
                let written = 8 + payload.len() as u64;
                self.bytes += written;
                self.dirty = true;
                self.stats.bytes.fetch_add(written, Ordering::Relaxed);
                self.stats
                    .appended_samples
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &io::Error) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, dir = %self.dir.display(), "cannot write the write-ahead log; messages stay unacknowledged");
        self.dirty = true;
    }

    /// Flushes and syncs what was appended; `false` if that failed (nothing appended since the
    /// previous sync can be trusted then).
    pub fn sync(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        let result = file.flush().and_then(|()| file.get_ref().sync_data());
        self.dirty = false;
        match result {
            Ok(()) => {
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.failed(&e);
                self.dirty = false;
                false
            }
        }
    }

    /// Closes the current segment (synced); the next append starts a new one.
    pub fn cut(&mut self) -> Option<u64> {
        self.sync();
        if self.bytes == 0 {
            return None;
        }
        self.file = None;
        self.bytes = 0;
        let cut = self.number;
        self.number += 1;
        Some(cut)
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
    fn reads_back_what_was_synced_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(WalStats::default());
        let mut writer = Writer::new(dir.path().to_path_buf(), 7, stats.clone());
        writer.append(&batch(0, 10), &[(7, 0xdead_beef)]);
        writer.append(&batch(10, 5), &[]);
        assert!(writer.sync());
        assert_eq!(writer.cut(), Some(7));
        assert_eq!(writer.cut(), None, "an empty segment is not cut");
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
        let n = read(&segments[0].1, |b, i| {
            seen.extend(b.into_iter().map(|s| s.ts));
            ids.extend(i);
        })
        .unwrap();
        assert_eq!(n, 15);
        assert_eq!(seen, (0..15).collect::<Vec<_>>());
        assert_eq!(ids, vec![(7, 0xdead_beef)]);

        // A crash in the middle of the second record of a segment.
        let file = &segments[0].1;
        let bytes = fs::read(file).unwrap();
        fs::write(file, &bytes[..bytes.len() - 3]).unwrap();
        let mut seen = Vec::new();
        assert_eq!(read(file, |b, _| seen.extend(b)).unwrap(), 10);
        // A flipped bit fails the checksum.
        let mut bytes = fs::read(file).unwrap();
        bytes[20] ^= 1;
        fs::write(file, &bytes).unwrap();
        assert_eq!(read(file, |_, _| {}).unwrap(), 0);
    }
}
