//! Getting samples into the dataflow: one bounded channel (a *lane*) per worker, and every
//! batch goes, shared ([`Arc`]), down every lane. Each worker keeps only the keys it owns
//! (hash of (device, item), decided in the per-key operator), so every key is aggregated by one
//! worker, in arrival order, and no sample is exchanged between workers. The sender only
//! clones a pointer per lane: splitting batches by key on the sending thread (earlier design)
//! cost that one thread a pass over every sample, and with two workers on two cores it
//! competed with them. One worker per batch, in turn, hands the batch to the raw sinks.
//! Each worker's source operator drains its lane whenever a send activates it (no polling),
//! stamps what it drained with its current time, and advances.
//!
//! Times are *epochs shared by all workers*: a worker that closes an epoch publishes the next
//! one and wakes the others, which move their capabilities up to it even when their lanes were
//! quiet. Without that, each worker's time would count its own batches, and a result at one
//! worker's time would wait for the slowest-counting worker to catch up — on a quiet lane,
//! forever.
//! Closing the input drops the operators' capabilities: the dataflow then flushes and ends.
//!
//! In cluster mode a batch enters at the time its messages were received (an [`Arrival`]; a
//! worker's time never goes back, so a later receive time counts), its time follows the receive
//! times of what it gives, and it never moves past an active hold ([`super::hold`]): a key's
//! owner then absorbs samples from every process in about the order one process would have
//! received them, even when a process releases samples it kept back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use timely::dataflow::Scope;
use timely::dataflow::Stream;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::scheduling::SyncActivator;
use tokio::sync::mpsc;

use super::hold::{Hold, Holds};
use crate::sample::Sample;

/// The input has been closed (the dataflow is ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dataflow input is closed")]
pub struct InputClosed;

/// Most batches drained per activation before yielding to other operators.
const MAX_BATCHES_PER_ACTIVATION: usize = 256;
/// A time holds at most this many samples of a worker…
const EPOCH_SAMPLES: usize = 65_536;
/// …or lasts at most this long, before the worker's input advances to the next time.
const EPOCH_AGE: std::time::Duration = std::time::Duration::from_millis(2);

/// A reader of the dataflow's progress: results of every epoch before [`Progress::processed`]
/// are delivered.
#[derive(Debug, Clone)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn processed(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A batch of samples as every worker sees it.
#[derive(Clone)]
pub(super) struct SharedBatch {
    pub samples: Arc<[Sample]>,
    /// This worker hands the batch to the raw sinks (exactly one worker per batch does).
    pub report: bool,
}

/// When a batch's messages were received, and the holds it ends (cluster mode).
#[derive(Debug, Clone, Default)]
pub struct Arrival {
    /// Receive time of the batch's first message, ms since the Unix epoch (`None`: unknown,
    /// as in a write-ahead-log replay: it enters at the worker's time).
    pub received_at: Option<i64>,
    /// Holds that end once every worker has taken the batch.
    pub holds: Vec<Arc<Hold>>,
}

/// What travels a lane: samples, or a marker of the point an epoch was cut.
pub(super) enum LaneItem {
    Samples(SharedBatch, Arrival),
    Marker(Arc<EpochMarker>),
}

/// A cut through every lane ([`DataflowInput::mark`]): once each worker has passed it, every
/// sample sent before the cut carries a time below [`EpochMarker::epoch`].
#[derive(Debug)]
pub struct EpochMarker {
    /// Lanes that have not passed the marker yet.
    pending: std::sync::atomic::AtomicUsize,
    /// The highest time a worker moved to on passing it.
    time: AtomicU64,
}

impl EpochMarker {
    fn passed(&self, time: u64) {
        self.time.fetch_max(time, Ordering::AcqRel);
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// `Some(epoch)` once every worker has passed the marker: results of everything sent
    /// before it are delivered when the dataflow's progress reaches `epoch`.
    pub fn epoch(&self) -> Option<u64> {
        (self.pending.load(Ordering::Acquire) == 0).then(|| self.time.load(Ordering::Acquire))
    }
}

/// Where a worker puts the activator that senders use to wake it.
type ActivatorSlot = Arc<Mutex<Option<SyncActivator>>>;

/// In cluster mode, how often a worker without data moves its time to the wall clock.
const IDLE_EPOCH: std::time::Duration = std::time::Duration::from_millis(10);

/// Milliseconds since the Unix epoch: the epoch of a cluster worker.
pub(super) fn wall_clock_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The sending side, usable from async code. Dropping every clone closes the input.
#[derive(Clone)]
pub struct DataflowInput {
    /// One sender per worker; `None` only while dropping.
    senders: Option<Vec<mpsc::Sender<LaneItem>>>,
    activators: Vec<ActivatorSlot>,
    /// Every result of inputs before this epoch has been delivered (kept by worker 0).
    processed: Arc<AtomicU64>,
    /// Counts batches, to choose the worker that reports each one to the raw sinks.
    sent: Arc<AtomicUsize>,
    holds: Holds,
}

/// A worker's end of its lane.
type Lane = (mpsc::Receiver<LaneItem>, ActivatorSlot);

/// The receiving sides, one taken by each worker.
pub(super) struct Receivers {
    lanes: Mutex<Vec<Option<Lane>>>,
    /// Every lane's activator, so a worker that advances the epoch can wake the others.
    activators: Vec<ActivatorSlot>,
    /// The newest epoch any worker has moved to.
    epoch: Arc<AtomicU64>,
    holds: Holds,
}

impl Receivers {
    /// Wakes every worker's source but `me`'s, to catch up with a new epoch.
    fn wake_all_but(&self, me: usize) {
        for (lane, slot) in self.activators.iter().enumerate() {
            if lane != me
                && let Some(activator) = slot.lock().expect("activator lock").as_ref()
            {
                let _ = activator.activate();
            }
        }
    }

    pub(super) fn take(&self, worker: usize) -> Option<Lane> {
        self.lanes
            .lock()
            .expect("input lock")
            .get_mut(worker)?
            .take()
    }
}

pub(super) fn channel(
    capacity: usize,
    workers: usize,
    processed: Arc<AtomicU64>,
    holds: Holds,
) -> (DataflowInput, Arc<Receivers>) {
    let epoch = Arc::new(AtomicU64::new(0));

    let mut senders = Vec::new();
    let mut activators = Vec::new();
    let mut lanes = Vec::new();
    for _ in 0..workers.max(1) {
        let (sender, receiver) = mpsc::channel(capacity);
        let activator: ActivatorSlot = Arc::new(Mutex::new(None));
        senders.push(sender);
        activators.push(activator.clone());
        lanes.push(Some((receiver, activator)));
    }
    (
        DataflowInput {
            senders: Some(senders),
            activators: activators.clone(),
            processed,
            sent: Arc::new(AtomicUsize::new(0)),
            holds: holds.clone(),
        },
        Arc::new(Receivers {
            lanes: Mutex::new(lanes),
            activators: activators.clone(),
            epoch,
            holds,
        }),
    )
}

impl DataflowInput {
    /// The lane items of one batch: the same samples for every lane, one lane reporting.
    fn items(
        &self,
        batch: Arc<[Sample]>,
        arrival: Arrival,
    ) -> impl Iterator<Item = (usize, LaneItem)> {
        let lanes = self.activators.len();
        let reporter = self.sent.fetch_add(1, Ordering::Relaxed) % lanes;
        (0..lanes).map(move |lane| {
            let shared = SharedBatch {
                samples: batch.clone(),
                report: lane == reporter,
            };
            (lane, LaneItem::Samples(shared, arrival.clone()))
        })
    }

    /// Sends a batch (waits while a lane is full: back-pressure to the source).
    pub async fn send(&self, batch: impl Into<Arc<[Sample]>>) -> Result<(), InputClosed> {
        self.send_arrived(batch, Arrival::default()).await
    }

    /// Sends a batch received at `arrival.received_at`, ending `arrival.holds` once every
    /// worker has taken it.
    pub async fn send_arrived(
        &self,
        batch: impl Into<Arc<[Sample]>>,
        arrival: Arrival,
    ) -> Result<(), InputClosed> {
        let batch = batch.into();
        if batch.is_empty() {
            return Ok(());
        }
        let senders = self.senders.as_ref().ok_or(InputClosed)?;
        for (lane, item) in self.items(batch, arrival) {
            senders[lane].send(item).await.map_err(|_| InputClosed)?;
            self.wake(lane);
        }
        Ok(())
    }

    /// Sends a batch from a non-async thread.
    pub fn blocking_send(&self, batch: impl Into<Arc<[Sample]>>) -> Result<(), InputClosed> {
        self.blocking_send_arrived(batch, Arrival::default())
    }

    /// [`DataflowInput::send_arrived`] from a non-async thread.
    pub fn blocking_send_arrived(
        &self,
        batch: impl Into<Arc<[Sample]>>,
        arrival: Arrival,
    ) -> Result<(), InputClosed> {
        let batch = batch.into();
        if batch.is_empty() {
            return Ok(());
        }
        let senders = self.senders.as_ref().ok_or(InputClosed)?;
        for (lane, item) in self.items(batch, arrival) {
            senders[lane].blocking_send(item).map_err(|_| InputClosed)?;
            self.wake(lane);
        }
        Ok(())
    }

    fn wake(&self, lane: usize) {
        if let Some(activator) = self.activators[lane]
            .lock()
            .expect("activator lock")
            .as_ref()
        {
            let _ = activator.activate();
        }
    }

    /// Cuts every lane: once the returned marker has an [`EpochMarker::epoch`] and
    /// [`Progress::processed`] reaches it, everything sent before this call has passed
    /// through the dataflow (samples and windows handed to the sinks).
    pub async fn mark(&self) -> Result<Arc<EpochMarker>, InputClosed> {
        let senders = self.senders.as_ref().ok_or(InputClosed)?;
        let marker = Arc::new(EpochMarker {
            pending: std::sync::atomic::AtomicUsize::new(senders.len()),
            time: AtomicU64::new(0),
        });
        for (lane, sender) in senders.iter().enumerate() {
            sender
                .send(LaneItem::Marker(marker.clone()))
                .await
                .map_err(|_| InputClosed)?;
            self.wake(lane);
        }
        Ok(marker)
    }

    /// The holds on this process's input time (cluster mode).
    pub fn holds(&self) -> &Holds {
        &self.holds
    }

    /// The dataflow's progress, readable without holding the input open.
    pub fn progress(&self) -> Progress {
        Progress(self.processed.clone())
    }

    /// Closes this handle; the input closes when every clone is closed or dropped.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for DataflowInput {
    /// A worker only notices a closed lane when it looks: release the senders, then wake them.
    fn drop(&mut self) {
        drop(self.senders.take());
        for lane in 0..self.activators.len() {
            self.wake(lane);
        }
    }
}

/// The source operator of one worker, reading its lane. `threads`: workers per process.
/// `clock_epochs` (cluster mode): epochs are milliseconds of the wall clock, and a worker
/// without data still moves to the current one every [`IDLE_EPOCH`], so processes that ingest
/// at different rates (or not at all) keep their times close and progress is not held back by
/// the process that counted the fewest epochs.
pub(super) fn source<'scope>(
    scope: Scope<'scope, u64>,
    receivers: Arc<Receivers>,
    threads: usize,
    clock_epochs: bool,
) -> Stream<'scope, u64, Vec<SharedBatch>> {
    timely_source::<_, timely::container::CapacityContainerBuilder<Vec<SharedBatch>>, _, _>(
        scope,
        "Input",
        move |capability, info| {
            let me = scope.index() % threads.max(1);
            let taken = receivers.take(me);
            let clock = move || if clock_epochs { wall_clock_epoch() } else { 0 };
            let mut capability = taken.is_some().then_some(capability);
            let reactivate = scope.activator_for(info.address.clone());
            let mut receiver = None;
            let mut epoch_samples = 0usize;
            let mut epoch_started = std::time::Instant::now();
            if let Some((rx, activator)) = taken {
                *activator.lock().expect("activator lock") =
                    Some(scope.worker().sync_activator_for(info.address.to_vec()));
                receiver = Some(rx);
            }
            // The highest time this worker gave data at (a batch enters at its receive time
            // when that is above the capability's).
            let mut given = 0u64;
            // The latest receive time of a batch taken since the time last advanced.
            let mut received = 0u64;
            let mut wake = super::wake::Wake::default();
            move |output| {
                let (Some(cap), Some(rx)) = (capability.as_mut(), receiver.as_mut()) else {
                    capability = None;
                    return;
                };
                // Where the capability may go: up to `to`, but never past an active hold, and
                // never back.
                let limit = receivers.holds.limit();
                let allowed = |to: u64, cap: &timely::dataflow::operators::Capability<u64>| {
                    to.min(limit).max(*cap.time())
                };
                let mut closed = false;
                let mut took = false;
                for _ in 0..MAX_BATCHES_PER_ACTIVATION {
                    match rx.try_recv() {
                        Ok(LaneItem::Samples(batch, arrival)) => {
                            took = true;
                            if epoch_samples == 0 {
                                epoch_started = std::time::Instant::now();
                            }
                            epoch_samples += batch.samples.len();
                            let entry = arrival
                                .received_at
                                .filter(|_| clock_epochs)
                                .map(|r| r.max(0) as u64);
                            received = received.max(entry.unwrap_or(0));
                            match entry.map(|r| r - r % ARRIVAL_STEP) {
                                Some(at) if at > *cap.time() => {
                                    given = given.max(at);
                                    output.session(&cap.delayed(&at)).give(batch);
                                }
                                _ => {
                                    given = given.max(*cap.time());
                                    output.session(&*cap).give(batch);
                                }
                            }
                            // `arrival.holds` end here (once every lane has dropped them).
                        }
                        Ok(LaneItem::Marker(marker)) => {
                            // Everything before the marker was given at an earlier time.
                            let next = (*cap.time()).max(given) + 1;
                            let to = allowed(next, cap);
                            cap.downgrade(&to);
                            epoch_samples = 0;
                            marker.passed(next);
                            if receivers.epoch.fetch_max(*cap.time(), Ordering::AcqRel)
                                < *cap.time()
                            {
                                receivers.wake_all_but(me);
                            }
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    capability = None;
                    receiver = None;
                    return;
                }
                // Time advances per EPOCH_SAMPLES samples or EPOCH_AGE, not per batch:
                // progress tracking between workers costs per time, and small batches would
                // spend more on it than on the data. A worker behind the shared epoch catches up
                // at once, since the others' results wait for it.
                let shared = receivers.epoch.load(Ordering::Acquire);
                if epoch_samples > 0 {
                    let age = epoch_started.elapsed();
                    if epoch_samples >= EPOCH_SAMPLES || age >= EPOCH_AGE || shared > *cap.time() {
                        // Cluster mode: up to what was received, not to the clock: a process
                        // behind with its input keeps the cluster's time where its data is.
                        let to = if received > 0 {
                            received.min(clock())
                        } else {
                            clock()
                        };
                        let next = allowed(shared.max(*cap.time() + 1).max(to), cap);
                        cap.downgrade(&next);
                        epoch_samples = 0;
                        received = 0;
                        if receivers.epoch.fetch_max(next, Ordering::AcqRel) < next {
                            receivers.wake_all_but(me);
                        }
                    } else {
                        wake.after(&reactivate, EPOCH_AGE - age);
                    }
                } else if shared > *cap.time() {
                    let to = allowed(shared, cap);
                    cap.downgrade(&to);
                }
                // Only a worker that is through its lane moves to the clock: one with data
                // waiting follows the data's receive times (above).
                if clock_epochs && epoch_samples == 0 && !took && rx.is_empty() {
                    let now = allowed(clock(), cap);
                    if now >= *cap.time() + IDLE_EPOCH.as_millis() as u64 {
                        cap.downgrade(&now);
                        receivers.epoch.fetch_max(now, Ordering::AcqRel);
                    }
                }
                if clock_epochs {
                    wake.after(&reactivate, IDLE_EPOCH);
                }
                // There may be more: come back after the other operators have run.
                if !rx.is_empty() {
                    reactivate.activate();
                }
            }
        },
    )
}

/// Granularity of arrival times (ms): coarse enough to keep the times of a busy input few
/// (progress tracking costs per time), fine next to any `allowed_lateness`.
pub const ARRIVAL_STEP: u64 = 10;
