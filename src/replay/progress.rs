//! What a replay has done so far: read position for the progress line (rate and ETA on a
//! terminal), and the problems met in the input (bad lines, unreadable files), each naming the
//! file and position, for the summary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// At most this many problems are kept for the summary (all are counted and logged).
const MAX_KEPT_PROBLEMS: usize = 20;

#[derive(Debug, Default)]
pub struct ReplayProgress {
    /// Size of the input in bytes (compressed bytes for `.zst`; every file for a lake).
    pub total_bytes: AtomicU64,
    /// Input bytes consumed so far.
    pub read_bytes: Arc<AtomicU64>,
    /// Messages (recording lines, or lake rows) read.
    pub messages: AtomicU64,
    /// Input that could not be used (bad lines, unreadable files).
    pub problems: AtomicU64,
    kept: Mutex<Vec<String>>,
}

impl ReplayProgress {
    /// Records a problem with the input; `what` names the file and position.
    pub fn problem(&self, what: String) {
        tracing::warn!("{what}");
        self.problems.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.kept.lock().expect("progress lock");
        if kept.len() < MAX_KEPT_PROBLEMS {
            kept.push(what);
        }
    }

    /// The first problems met.
    pub fn kept_problems(&self) -> Vec<String> {
        self.kept.lock().expect("progress lock").clone()
    }

    /// The share of the input read, 0..=1 (`None` when the size is unknown).
    pub fn fraction(&self) -> Option<f64> {
        let total = self.total_bytes.load(Ordering::Relaxed);
        (total > 0)
            .then(|| (self.read_bytes.load(Ordering::Relaxed) as f64 / total as f64).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_all_counted_and_the_first_kept() {
        let progress = ReplayProgress::default();
        for i in 0..25 {
            progress.problem(format!("f:{i}: bad"));
        }
        assert_eq!(progress.problems.load(Ordering::Relaxed), 25);
        let kept = progress.kept_problems();
        assert_eq!(kept.len(), MAX_KEPT_PROBLEMS);
        assert_eq!(kept[0], "f:0: bad");
        assert_eq!(progress.fraction(), None);
        progress.total_bytes.store(200, Ordering::Relaxed);
        progress.read_bytes.store(50, Ordering::Relaxed);
        assert_eq!(progress.fraction(), Some(0.25));
    }
}
