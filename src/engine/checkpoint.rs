//! Checkpoints of the write-ahead log: deciding when a segment is no longer needed.
//!
//! Every `wal.checkpoint` the log is *cut*: the ingest task closes the segment being written
//! and puts a marker into the dataflow's input at the same point. A cut segment may be
//! deleted once three things hold for everything in it:
//!
//! 1. the dataflow has passed the marker (every sample handed to the sinks' queues);
//! 2. the windows over those samples have closed and been handed on too — a window closes at
//!    the latest `horizon` (largest window + allowed lateness + idle timeout + a second) after
//!    its samples were processed, since a quiet key's watermark moves at wall-clock speed (in
//!    cluster mode at the speed of the cluster's time, which a process keeping samples back
//!    holds: there the horizon is counted in epochs, which are wall-clock milliseconds);
//! 3. every sink has made all of that durable: a *barrier* goes down each sink's queue in
//!    order with the data — through the spool too, when the sink is behind — and comes back
//!    done once everything before it is written to the store (the lake: its open files
//!    completed, with no row of a failed file still to be written again). A batch under
//!    retry, the in-memory queue and the spool are not durable: during a store outage the log
//!    keeps what they hold, so a crash then loses nothing, and the log lets go once the store
//!    has it.
//!
//! Segments left by a crash are replayed at start-up and then handled like cut ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dataflow::{EpochMarker, Progress};
use crate::sinks::{Barrier, SinkHandle, SinkMessage};
use crate::source::control::SourceControl;
use crate::wal::Wal;

/// Segments cut at one point, waiting to be deleted.
pub struct Cut {
    pub segments: Vec<u64>,
    pub marker: Arc<EpochMarker>,
    /// When the dataflow had passed the marker, and its progress then.
    pub passed_at: Option<(Instant, u64)>,
}

pub struct Checkpoints {
    pub wal: Wal,
    pub source: SourceControl,
    pub progress: Progress,
    pub sinks: Vec<SinkHandle>,
    pub interval: Duration,
    pub horizon: Duration,
    /// Cluster mode: count the horizon in the dataflow's progress (epochs), not in wall time.
    pub horizon_in_epochs: bool,
    /// Cuts not yet deleted, oldest first (recovered segments first of all).
    pub cuts: Vec<Cut>,
}

/// How often cuts are checked for progress.
const POLL: Duration = Duration::from_millis(200);

impl Checkpoints {
    /// Runs until the source stops.
    pub async fn run(mut self) {
        let mut last_cut = Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            self.note_progress();
            if last_cut.elapsed() < self.interval {
                continue;
            }
            last_cut = Instant::now();
            match self.source.cut().await {
                Some((segments, Some(marker))) => self.cuts.push(Cut {
                    segments,
                    marker,
                    passed_at: None,
                }),
                Some((_, None)) | None => return,
            }
            self.checkpoint().await;
        }
    }

    fn note_progress(&mut self) {
        let processed = self.progress.processed();
        for cut in self.cuts.iter_mut().filter(|c| c.passed_at.is_none()) {
            if cut.marker.epoch().is_some_and(|epoch| processed >= epoch) {
                cut.passed_at = Some((Instant::now(), processed));
            }
        }
    }

    /// Deletes the segments of every cut whose windows have closed, once all sinks pass a
    /// barrier.
    async fn checkpoint(&mut self) {
        let processed = self.progress.processed();
        let horizon_ms = self.horizon.as_millis() as u64;
        let closed = |passed: &(Instant, u64)| match self.horizon_in_epochs {
            true => processed >= passed.1.saturating_add(horizon_ms),
            false => passed.0.elapsed() >= self.horizon,
        };
        let ready = self
            .cuts
            .iter()
            .take_while(|c| c.passed_at.as_ref().is_some_and(closed))
            .count();
        if ready == 0 {
            return;
        }
        let barriers: Vec<Barrier> = self
            .sinks
            .iter()
            .map(|sink| {
                let barrier = Barrier::default();
                sink.send(SinkMessage::Barrier(barrier.clone()));
                barrier
            })
            .collect();
        let deadline = Instant::now() + self.interval;
        while !barriers.iter().all(Barrier::is_done) {
            if Instant::now() >= deadline {
                tracing::debug!(
                    "a sink did not pass the checkpoint's barrier in time; trying again at the next one"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done: Vec<Cut> = self.cuts.drain(..ready).collect();
        let segments: Vec<u64> = done.iter().flat_map(|c| c.segments.clone()).collect();
        tracing::debug!(
            ?segments,
            "checkpoint: write-ahead log segments no longer needed"
        );
        self.wal.delete(&segments);
    }
}
