//! The timely dataflow: the only module that imports timely and differential (their APIs change
//! between versions; keeping them here keeps the rest of the engine stable).
//!
//! ```text
//!   Input: one lane per worker, every batch shared down every lane
//!     └─► batches (per worker) ──┬──► observer.on_samples (raw sinks; one worker per batch)
//!                                ├──► per-key operator (keys this worker owns, by
//!                                │    hash(device, item)): windows ──► observer.on_windows
//!                                └──► latest values, counts ──► differential (exchanged by its
//!                                     own keys): latest values, fleet status, samples per device ──► observer
//! ```
//!
//! Time is a batch counter: the input operator gives everything it drains in one activation the
//! same time and then advances, so progress tracking costs per batch, not per record. Event
//! time lives in the data; each key's watermark lives in the window operator's state.
//!
//! Layout:
//! - [`input`]: one bounded lane per worker, each batch shared by all, woken by sync activators.
//! - [`keyed`]: the per-key operator: windows (around [`crate::window::KeyWindows`]), latest
//!   values, counts.
//! - [`views`]: the differential views.
//! - [`route`]: cluster mode: keys owned by another process travel there.
//! - [`hold`]: cluster mode: a process keeping samples back holds the cluster's time.
//! - [`error`]: why it could not start or did not end well.
//!
//! In cluster mode (DESIGN.md §10) several processes form one computation: keys ingested by one
//! process and owned by another are exchanged to it ([`route`]), and every output the HTTP API
//! reads (windows, live-view changes) is exchanged to worker 0, in process 0, which serves the
//! API. Epochs follow the wall clock there, so processes that ingest at different rates still
//! advance together (the progress of each process's write-ahead log waits for the slowest).

pub mod error;
pub mod hold;
pub mod input;
mod keyed;
mod route;
mod views;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::Inspect;

use keyed::{AggregateByKey, Aggregated};

pub use error::DataflowError;
pub use hold::{Hold, Holds};
pub use input::{ARRIVAL_STEP, Arrival, DataflowInput, EpochMarker, InputClosed, Progress};

use crate::id::Id;
use crate::live::views::{ItemKey, LatestValue};
use crate::nclink::status::MachineState;
use crate::sample::Sample;
use crate::window::{WindowRow, WindowSpec};

/// What the dataflow computes, and how.
#[derive(Debug, Clone)]
pub struct DataflowOptions {
    /// Worker threads (default: cores).
    pub workers: usize,
    pub windows: WindowSpec,
    pub allowed_lateness_ms: i64,
    /// After this long without data a key's watermark follows the wall clock; `None` never
    /// (deterministic tests, replays that must not depend on speed).
    pub idle_timeout_ms: Option<i64>,
    /// Capacity of the input channel, in batches.
    pub input_capacity: usize,
    /// Run as one process of several (`workers` threads in each).
    pub cluster: Option<crate::cluster::Cluster>,
    /// Holds on the input's time (cluster mode): taken before the start to keep the time
    /// from moving before a write-ahead-log replay.
    pub holds: Holds,
}

/// Receives the dataflow's outputs. Called on worker threads; may block (a full sink queue
/// slows the dataflow — the sink's own bound is the only stall).
pub trait Observer: Send + Sync + 'static {
    /// Raw samples as they enter (all of them, late ones included), each batch once.
    fn on_samples(&self, samples: &Arc<[Sample]>);
    /// Closed windows.
    fn on_windows(&self, windows: &[WindowRow]);
    /// Samples refused by windows as late.
    fn on_late(&self, count: u64);
    /// Changes of the latest value per (device, item).
    fn on_latest(&self, changes: &[(ItemKey, LatestValue, isize)]);
    /// Changes of the number of machines per state: `(state, count, ±1)`.
    fn on_fleet(&self, changes: &[(MachineState, i64, isize)]);
    /// Changes of the number of samples per device: `(device, count, ±1)`.
    fn on_samples_per_device(&self, changes: &[(Id, i64, isize)]);
    /// The lowest watermark over this worker's keys that received data within the idle
    /// timeout (`None`: no such key). Reported periodically.
    fn on_watermark(&self, _worker: usize, _watermark: Option<i64>) {}
}

/// A running dataflow.
pub struct Dataflow {
    guards: Option<timely::communication::WorkerGuards<()>>,
    failed: Failed,
}

/// Set when a worker thread ends by panicking: in cluster mode, when a peer process is lost
/// (timely is fail-stop: the computation cannot go on without it).
#[derive(Clone, Default)]
pub struct Failed(Arc<tokio::sync::Notify>, Arc<std::sync::atomic::AtomicBool>);

impl Failed {
    pub fn is_set(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once a worker has failed.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    fn set(&self) {
        self.1.store(true, std::sync::atomic::Ordering::Release);
        self.0.notify_waiters();
    }
}

/// Sets [`Failed`] when the worker thread holding it unwinds.
struct FailOnPanic(Failed);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set();
        }
    }
}

impl Dataflow {
    /// A handle that tells when a worker has failed.
    pub fn failed(&self) -> Failed {
        self.failed.clone()
    }

    /// Waits until the input is closed and every worker has finished (windows flushed, every
    /// output delivered to the observer).
    pub fn join(mut self) -> Result<(), DataflowError> {
        match self.guards.take() {
            Some(guards) => guards
                .join()
                .into_iter()
                .try_for_each(|r| r.map_err(DataflowError::Worker)),
            None => Ok(()),
        }
    }
}

/// Starts the workers; returns the input to feed and the handle to join. In cluster mode this
/// blocks until every peer process is connected (timely retries each connection every second).
///
/// Ten values of one item at 100 ms, through 1 s windows on two workers:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use millstream::dataflow::{self, DataflowOptions, Observer};
/// use millstream::live::views::{ItemKey, LatestValue};
/// use millstream::nclink::status::MachineState;
/// use millstream::sample::Sample;
/// use millstream::window::{WindowRow, WindowSpec};
///
/// #[derive(Default)]
/// struct Windows(Mutex<Vec<WindowRow>>);
///
/// impl Observer for Windows {
///     fn on_samples(&self, _: &Arc<[Sample]>) {}
///     fn on_windows(&self, windows: &[WindowRow]) {
///         self.0.lock().unwrap().extend_from_slice(windows);
///     }
///     fn on_late(&self, _: u64) {}
///     fn on_latest(&self, _: &[(ItemKey, LatestValue, isize)]) {}
///     fn on_fleet(&self, _: &[(MachineState, i64, isize)]) {}
///     fn on_samples_per_device(&self, _: &[(millstream::id::Id, i64, isize)]) {}
/// }
///
/// let windows = Arc::new(Windows::default());
/// let options = DataflowOptions {
///     workers: 2,
///     windows: WindowSpec::new(&[1_000], &[]),
///     allowed_lateness_ms: 0,
///     idle_timeout_ms: None,
///     input_capacity: 4,
///     cluster: None,
///     holds: Default::default(),
/// };
/// let (input, flow) = dataflow::start(options, windows.clone()).unwrap();
/// let batch: Vec<Sample> = (0..10)
///     .map(|i| Sample::number("M1".into(), "speed".into(), 5_000 + i * 100, i as f64))
///     .collect();
/// input.blocking_send(batch).unwrap();
/// input.close(); // the end of the input closes every open window
/// flow.join().unwrap();
/// let rows = windows.0.lock().unwrap();
/// assert_eq!(rows.len(), 1);
/// assert_eq!((rows[0].start, rows[0].count, rows[0].mean), (5_000, 10, 4.5));
/// ```
pub fn start(
    options: DataflowOptions,
    observer: Arc<dyn Observer>,
) -> Result<(DataflowInput, Dataflow), DataflowError> {
    let workers = options.workers.max(1);
    let processed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (input, receivers) = input::channel(
        options.input_capacity.max(1),
        workers,
        processed.clone(),
        options.holds.clone(),
    );
    let options = Arc::new(options);
    let communication = match &options.cluster {
        Some(cluster) => timely::CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.shard.process,
            addresses: cluster.addresses.clone(),
            report: false,
            zerocopy: false,
        },
        None => timely::CommunicationConfig::Process(workers),
    };
    let config = timely::Config {
        communication,
        worker: timely::WorkerConfig::default().idle_spin(Duration::from_micros(50)),
    };
    let failed = Failed::default();
    let failing = failed.clone();
    let guards = timely::execute(config, move |worker| {
        let _fail_on_panic = FailOnPanic(failing.clone());
        let receivers = receivers.clone();
        let options = options.clone();
        let observer = observer.clone();
        let cluster = options.cluster.is_some();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let samples = input::source(scope, receivers, workers, cluster);
            let raw = observer.clone();
            let samples = samples.inspect_core(move |event| {
                if let Ok((_, batches)) = event {
                    for batch in batches.iter().filter(|b| b.report) {
                        raw.on_samples(&batch.samples);
                    }
                }
            });
            // Every worker sees every batch of its process and keeps the keys it owns: within a
            // process the per-key operator needs no exchange. Other processes' keys do.
            let samples = if cluster {
                use timely::dataflow::operators::Concat;
                samples
                    .clone()
                    .concat(route::from_other_processes(samples, workers))
            } else {
                samples
            };
            let Aggregated {
                mut windows,
                latest,
                counts,
            } = samples.aggregate_by_key(&options, observer.clone());
            if cluster {
                use timely::dataflow::operators::Exchange;
                windows = windows.exchange(|_: &WindowRow| 0);
            }
            let o = observer.clone();
            let windows = windows.inspect_core(move |event| {
                if let Ok((_, rows)) = event
                    && !rows.is_empty()
                {
                    o.on_windows(rows);
                }
            });
            views::views(latest, counts, observer.clone(), cluster);
            use timely::dataflow::operators::Probe;
            windows.probe().0
        });
        // Progress past the sinks' inputs (windows come after samples), for the write-ahead
        // log's checkpoints; one worker of each process keeps the shared number.
        let track = worker.index() % workers == 0;
        while worker.step_or_park(None) {
            if track {
                let done = probe.with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));
                processed.store(done, std::sync::atomic::Ordering::Release);
            }
        }
        if track {
            processed.store(u64::MAX, std::sync::atomic::Ordering::Release);
        }
    })
    .map_err(DataflowError::Start)?;
    Ok((
        input,
        Dataflow {
            guards: Some(guards),
            failed,
        },
    ))
}

/// The partition key of a sample: all samples of a (device, item) are aggregated by one worker.
fn key_hash(device: &str, item: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    device.hash(&mut h);
    item.hash(&mut h);
    h.finish()
}

#[cfg(test)]
pub(crate) mod tests;
