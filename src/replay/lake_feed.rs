//! The lake's raw samples replayed (`replay lake:DIR --from T --to T`): to compute windows of new
//! sizes, or to fill other stores, from what the lake already holds. Files are read hour by
//! hour in order of their first event time, so samples arrive in about the order they were
//! received; a file that cannot be read is reported by name and skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::ReplayProgress;
use super::pacer::{Pacer, Speed};
use crate::id::Id;
use crate::lake::layout::{SampleFile, sample_files};
use crate::lake::sample_reader::read_samples;
use crate::metrics::{Metrics, add};
use crate::nclink::intern::Interner;
use crate::nclink::topic::MessageKind;
use crate::sample::Sample;
use crate::source::{SampleBatch, SourceEvent};

pub(super) struct LakeFeed {
    dir: PathBuf,
    files: Vec<SampleFile>,
    from: Option<i64>,
    to: Option<i64>,
    metrics: Arc<Metrics>,
    pacer: Pacer,
    progress: Arc<ReplayProgress>,
    events: mpsc::Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
}

impl LakeFeed {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        dir: &Path,
        from: Option<i64>,
        to: Option<i64>,
        metrics: Arc<Metrics>,
        speed: Speed,
        progress: Arc<ReplayProgress>,
        events: mpsc::Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<LakeFeed, String> {
        let files = sample_files(dir, from, to)
            .map_err(|e| format!("cannot list the lake {}: {e}", dir.display()))?;
        progress
            .total_bytes
            .store(files.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);
        Ok(LakeFeed {
            dir: dir.to_path_buf(),
            files,
            from,
            to,
            metrics,
            pacer: Pacer::new(speed),
            progress,
            events,
            stop,
        })
    }

    pub fn run(mut self) {
        if self.files.is_empty() {
            tracing::warn!(lake = %self.dir.display(), "no complete sample files in the range");
        }
        let mut interner = Interner::default();
        let files = std::mem::take(&mut self.files);
        for file in files {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let mut alive = true;
            let read = read_samples(&file.path, self.from, self.to, &mut interner, |samples| {
                alive = self.send(samples);
                alive
            });
            if let Err(e) = read {
                self.progress.problem(format!("{e}; file skipped"));
            }
            self.progress
                .read_bytes
                .fetch_add(file.bytes, Ordering::Relaxed);
            if !alive {
                return;
            }
        }
    }

    /// Sends one batch of rows as per-device sample batches, like messages of the live source.
    fn send(&mut self, samples: Vec<Sample>) -> bool {
        if let Some(first) = samples.first() {
            self.pacer.wait(first.ts, &self.stop);
        }
        self.progress
            .messages
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        add(&self.metrics.source.samples, samples.len() as u64);
        let mut by_device: FxHashMap<Id, Vec<Sample>> = FxHashMap::default();
        for sample in samples {
            by_device
                .entry(sample.device.clone())
                .or_default()
                .push(sample);
        }
        for (device, samples) in by_device {
            let received_at = samples.iter().map(|s| s.ts).max().unwrap_or_default();
            let batch = SampleBatch {
                device,
                kind: MessageKind::Sample,
                channel: None,
                request_id: None,
                received_at,
                samples,
                ack: None,
                hold: None,
            };
            if self
                .events
                .blocking_send(SourceEvent::Samples(batch))
                .is_err()
            {
                return false;
            }
        }
        true
    }
}
