//! The write-ahead log: what makes an acknowledged message survive `kill -9` (DESIGN.md §7).
//!
//! The ingest task appends every batch of samples here before handing it to the dataflow; the
//! log's thread writes, `fdatasync`s, and only then drops the batch's acknowledgements, which
//! sends the PUBACKs. Commits are grouped: while one sync runs, further batches queue, and the
//! next sync covers them all — so a broker's small inflight window (Mosquitto: 20 messages)
//! refills every few milliseconds instead of waiting for a sink's flush.
//!
//! Layout: `state_dir/wal/<number>.wal`, each a sequence of framed records ([`crate::frame`]:
//! marker, length, CRC-32) of samples in the spool's encoding. A record cut short by a crash
//! ends its segment's replay; a corrupt one is skipped and counted, the records after it
//! replayed, and the segment is kept for inspection in `state_dir/wal/corrupt/`.
//!
//! A failed write or sync never acknowledges: the group's acknowledgements are disarmed, and
//! their messages are remembered as *unlogged* (their samples are in the dataflow, not in the
//! log). The broker delivers them again after the next reconnect, and then they are written to
//! the log only, not counted twice ([`Wal::take_unlogged`]).
//!
//! Life of a segment: written → *cut* (closed; [`crate::engine`]'s checkpoint does this every
//! `wal.checkpoint`) → deleted once every sink has durably written everything the segment
//! holds and the windows over it have closed. At start-up, segments still on disk are
//! replayed through the dataflow before the source connects: the sinks are idempotent, so
//! what they already had is written again harmlessly.

pub mod segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metric;
use crate::sample::Sample;
use crate::source::ack::Ack;

/// Appends waiting for the log's thread; beyond this the ingest task waits (back-pressure).
const QUEUE: usize = 256;

/// The log's counters, shown in `/api/v1/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Bytes in segments on disk (gauge).
    pub bytes: AtomicU64,
    /// Segments on disk (gauge).
    pub segments: AtomicU64,
    pub appended_samples: AtomicU64,
    /// Group commits (`fdatasync` calls).
    pub syncs: AtomicU64,
    /// Samples replayed from the log at start-up.
    pub recovered_samples: AtomicU64,
    /// Segments deleted after a checkpoint.
    pub checkpoints: AtomicU64,
    pub write_errors: AtomicU64,
    /// Records found torn (cut short by a crash) at replay.
    pub torn_records: AtomicU64,
    /// Records found corrupt (skipped) at replay.
    pub corrupt_records: AtomicU64,
}

/// A point-in-time copy of the log's counters, for programs (the API renders
/// [`WalStats::metrics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalStatus {
    pub bytes: u64,
    pub segments: u64,
    pub appended_samples: u64,
    pub syncs: u64,
    pub recovered_samples: u64,
    pub checkpoints: u64,
    pub write_errors: u64,
    pub torn_records: u64,
    pub corrupt_records: u64,
}

impl WalStats {
    pub fn status(&self) -> WalStatus {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WalStatus {
            bytes: get(&self.bytes),
            segments: get(&self.segments),
            appended_samples: get(&self.appended_samples),
            syncs: get(&self.syncs),
            recovered_samples: get(&self.recovered_samples),
            checkpoints: get(&self.checkpoints),
            write_errors: get(&self.write_errors),
            torn_records: get(&self.torn_records),
            corrupt_records: get(&self.corrupt_records),
        }
    }

    /// The log's metrics (`/api/v1/status` shows them under `wal`, with `"enabled": true`).
    pub fn metrics(&self) -> Vec<Metric> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            Metric::gauge(
                "bytes",
                "millstream_wal_bytes",
                "Bytes in write-ahead log segments on disk.",
                get(&self.bytes),
            ),
            Metric::gauge(
                "segments",
                "millstream_wal_segments",
                "Write-ahead log segments on disk.",
                get(&self.segments),
            ),
            Metric::counter(
                "appended_samples",
                "millstream_wal_appended_samples_total",
                "Samples written to the write-ahead log.",
                get(&self.appended_samples),
            ),
            Metric::counter(
                "syncs",
                "millstream_wal_syncs_total",
                "Group commits of the write-ahead log (fdatasync calls).",
                get(&self.syncs),
            ),
            Metric::counter(
                "recovered_samples",
                "millstream_wal_recovered_samples_total",
                "Samples replayed from the write-ahead log at start-up.",
                get(&self.recovered_samples),
            ),
            Metric::counter(
                "checkpoints",
                "millstream_wal_checkpoints_total",
                "Write-ahead log segments deleted after a checkpoint.",
                get(&self.checkpoints),
            ),
            Metric::counter(
                "write_errors",
                "millstream_wal_write_errors_total",
                "Failed write-ahead log writes or syncs (messages left unacknowledged).",
                get(&self.write_errors),
            ),
            Metric::counter(
                "torn_records",
                "millstream_wal_torn_records_total",
                "Write-ahead log records found cut short by a crash at replay.",
                get(&self.torn_records),
            ),
            Metric::counter(
                "corrupt_records",
                "millstream_wal_corrupt_records_total",
                "Write-ahead log records found corrupt (skipped) at replay.",
                get(&self.corrupt_records),
            ),
        ]
    }
}

enum Command {
    Append {
        samples: Arc<[Sample]>,
        acks: Vec<Arc<Ack>>,
    },
    /// Close the segment being written; replies with the segments closed since the last cut
    /// (none when nothing was written).
    Cut { reply: oneshot::Sender<Vec<u64>> },
}

/// Messages whose samples reached the dataflow but not the log (a failed write): most kept.
const MAX_UNLOGGED: usize = 65_536;

/// Ids of unlogged messages, shared by the log's thread and the ingest.
pub type Unlogged = Arc<std::sync::Mutex<std::collections::HashSet<crate::source::ack::MessageId>>>;

/// The ingest task's handle on the log.
#[derive(Clone)]
pub struct Wal {
    commands: mpsc::Sender<Command>,
    dir: PathBuf,
    pub stats: Arc<WalStats>,
    unlogged: Unlogged,
}

/// Segments found at start-up, oldest first, to replay.
pub struct Recovered {
    pub segments: Vec<(u64, PathBuf)>,
}

impl Wal {
    /// Opens the log in `dir`: lists the segments a previous run left (to replay, then delete
    /// at a checkpoint) and starts the writer thread on a new segment.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the write-ahead log {}: {e}", dir.display()))?;
        let segments = segment::list(dir)
            .map_err(|e| format!("cannot read the write-ahead log {}: {e}", dir.display()))?;
        let stats = Arc::new(WalStats::default());
        let bytes: u64 = segments
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        stats.bytes.store(bytes, Ordering::Relaxed);
        stats
            .segments
            .store(segments.len() as u64, Ordering::Relaxed);
        let next = segments.last().map_or(0, |(n, _)| n + 1);
        let (commands, receiver) = mpsc::channel(QUEUE);
        let writer = segment::Writer::new(dir.to_path_buf(), next, stats.clone());
        let unlogged = Unlogged::default();
        let thread_unlogged = unlogged.clone();
        std::thread::Builder::new()
            .name("millstream-wal".into())
            .spawn(move || run(writer, receiver, thread_unlogged))
            .map_err(|e| format!("cannot start the write-ahead log: {e}"))?;
        Ok((
            Wal {
                commands,
                dir: dir.to_path_buf(),
                stats,
                unlogged,
            },
            Recovered { segments },
        ))
    }

    /// Appends a batch; its acknowledgements are dropped (sent) once it is on disk.
    pub async fn append(&self, samples: Arc<[Sample]>, acks: Vec<Arc<Ack>>) {
        if self
            .commands
            .send(Command::Append { samples, acks })
            .await
            .is_err()
        {
            tracing::error!("the write-ahead log stopped; messages are not acknowledged");
        }
    }

    /// Closes the segment being written (everything appended before is in it, synced);
    /// returns the segments closed since the last cut.
    pub async fn cut(&self) -> Vec<u64> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Cut { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Whether the message `id` was unlogged (its samples are in the dataflow already, its
    /// earlier write failed); forgets it, since it is being logged now.
    pub fn take_unlogged(&self, id: &crate::source::ack::MessageId) -> bool {
        let mut unlogged = self.unlogged.lock().expect("unlogged lock");
        !unlogged.is_empty() && unlogged.remove(id)
    }

    /// Whether some message is unlogged: the broker must deliver it again (on a reconnect).
    pub fn has_unlogged(&self) -> bool {
        !self.unlogged.lock().expect("unlogged lock").is_empty()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes every segment, after a clean shutdown found everything durable in the sinks.
    pub fn clear(&self) {
        match segment::list(&self.dir) {
            Ok(segments) => {
                let numbers: Vec<u64> = segments.iter().map(|(n, _)| *n).collect();
                self.delete(&numbers);
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the write-ahead log")
            }
        }
    }

    /// Deletes cut segments whose contents are durable everywhere.
    pub fn delete(&self, segments: &[u64]) {
        for number in segments {
            let path = segment::path(&self.dir, *number);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.stats.bytes.fetch_sub(size, Ordering::Relaxed);
                    self.stats.segments.fetch_sub(1, Ordering::Relaxed);
                    self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete a write-ahead log segment")
                }
            }
        }
    }
}

/// The log's thread: group commits until every handle is gone.
fn run(mut writer: segment::Writer, mut receiver: mpsc::Receiver<Command>, unlogged: Unlogged) {
    let mut acks: Vec<Arc<Ack>> = Vec::new();
    let mut cuts: Vec<oneshot::Sender<Vec<u64>>> = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        // Everything already waiting joins this commit (bounded, so acks keep flowing).
        let mut taken = 0;
        while let Some(command) = next.take() {
            match command {
                Command::Append { samples, acks: a } => {
                    let ids: Vec<_> = a.iter().map(|ack| ack.id()).collect();
                    writer.append(&samples, &ids);
                    acks.extend(a);
                }
                Command::Cut { reply } => cuts.push(reply),
            }
            taken += 1;
            if cuts.is_empty() && taken < QUEUE {
                next = receiver.try_recv().ok();
            }
        }
        if writer.sync() {
            // On disk: acknowledge.
            acks.clear();
        } else {
            // Not durable: leave the messages unacknowledged; the broker redelivers them, and
            // their samples, already in the dataflow, go to the log alone then.
            let mut set = unlogged.lock().expect("unlogged lock");
            for ack in acks.drain(..) {
                ack.disarm();
                if set.len() < MAX_UNLOGGED {
                    set.insert(ack.id());
                }
            }
        }
        for reply in cuts.drain(..) {
            let _ = reply.send(writer.cut());
        }
    }
    writer.sync();
}
