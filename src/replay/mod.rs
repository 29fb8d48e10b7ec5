//! Replay: recorded traffic, or the raw samples of the Parquet lake, pushed through the same
//! path as the live source (NC-Link decoding by the platform, ingest batching, the dataflow,
//! the sinks), so a replay gives the windows and sink rows of the live run that recorded it
//! (DESIGN.md §3). Event times come from the messages; a Query answer is stamped with its
//! recorded receive time, exactly as it was live.
//!
//! Layout:
//! - this file: what to replay ([`ReplaySource`], [`Speed`]) and the running feed
//!   ([`ReplayHandle`]).
//! - [`recording_feed`]: a recording decoded by an NC-Link platform, as the live source does.
//! - [`lake_feed`]: raw samples read back from the lake (`replay lake:DIR`).
//! - [`pacer`]: recorded times to wall-clock pacing for `--speed 1x|Nx`.
//! - [`progress`]: counters for the progress line and the summary.

mod lake_feed;
mod pacer;
pub mod progress;
mod recording_feed;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

pub use pacer::Speed;
pub use progress::ReplayProgress;

use crate::metrics::Metrics;
use crate::source::{SourceEvent, SourceOptions};

/// What is replayed.
#[derive(Debug, Clone)]
pub enum ReplayInput {
    /// A recording (JSON Lines, `.zst` compressed when the name ends so).
    Recording(PathBuf),
    /// The raw samples of a Parquet lake with event times in `[from, to)` (ms).
    Lake {
        dir: PathBuf,
        from: Option<i64>,
        to: Option<i64>,
    },
}

impl ReplayInput {
    /// `lake:DIR` names a lake; anything else a recording.
    pub fn parse(text: &str, from: Option<i64>, to: Option<i64>) -> ReplayInput {
        match text.strip_prefix("lake:") {
            Some(dir) => ReplayInput::Lake {
                dir: dir.into(),
                from,
                to,
            },
            None => ReplayInput::Recording(text.into()),
        }
    }

    /// How the replay names itself where the live source names its broker.
    pub fn describe(&self) -> String {
        match self {
            ReplayInput::Recording(path) => format!("replay:{}", path.display()),
            ReplayInput::Lake { dir, .. } => format!("replay:lake:{}", dir.display()),
        }
    }
}

/// A replay to run inside the engine in place of the MQTT source.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    pub input: ReplayInput,
    pub speed: Speed,
    /// Shared with whoever shows progress.
    pub progress: Arc<ReplayProgress>,
}

/// A running replay feed.
pub struct ReplayHandle {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ReplayHandle {
    /// Stops reading (the events already sent still arrive) and waits for the reader.
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Starts feeding `source` as [`SourceEvent`]s, like [`crate::source::start`] does from a
/// broker. The receiver ends after the last event (or after `shutdown`).
pub fn start(
    source: ReplaySource,
    options: &SourceOptions,
    metrics: Arc<Metrics>,
) -> Result<(ReplayHandle, mpsc::Receiver<SourceEvent>), String> {
    let (events, receiver) = mpsc::channel(options.capacity.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let feed: Box<dyn FnOnce() + Send> = match &source.input {
        ReplayInput::Recording(path) => {
            let feed = recording_feed::RecordingFeed::open(
                path,
                options,
                metrics,
                source.speed,
                source.progress.clone(),
                events,
                stop.clone(),
            )?;
            Box::new(move || feed.run())
        }
        ReplayInput::Lake { dir, from, to } => {
            let feed = lake_feed::LakeFeed::open(
                dir,
                *from,
                *to,
                metrics,
                source.speed,
                source.progress.clone(),
                events,
                stop.clone(),
            )?;
            Box::new(move || feed.run())
        }
    };
    let thread = std::thread::Builder::new()
        .name("millstream-replay".into())
        .spawn(feed)
        .map_err(|e| format!("cannot start the replay thread: {e}"))?;
    Ok((ReplayHandle { stop, thread }, receiver))
}
