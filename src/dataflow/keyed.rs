//! The per-key operator: everything millstream computes per (device, item) in one pass over
//! the samples of the keys this worker owns (every worker sees every batch; a key belongs to
//! the worker its hash names, remembered in the key's state so the hash is computed once):
//!
//! - windows, through each key's [`KeyWindows`] (watermark, panes, closing);
//! - the latest value (highest event time; ties go to the later arrival), emitted as a
//!   differential change once per key and time (retract the old, insert the new);
//! - samples per device, one count per device and time.
//!
//! Each worker reads a message's samples in runs of one key (NC-Link sends an item's values
//! together), so keys are looked up, and other workers' keys skipped, once per run.
//!
//! One operator rather than three keeps each sample read once; it has three outputs, one per
//! kind of result ([`AggregateByKey::aggregate_by_key`]), and its state is a [`KeyedOperator`].
//!
//! The operator holds one capability, kept at its input frontier, to emit windows that close
//! without new data for their key (idle keys, checked on a timer) and to flush everything when
//! the input ends. Each worker reads every batch in the order it was sent (FIFO lanes), so a
//! key's samples are aggregated in arrival order and the output depends neither on the number
//! of workers nor on how the input was batched.
//!
//! In cluster mode a key's samples come from several processes, in no common order: there the
//! operator holds its input until its time is complete — every process has passed it — and
//! absorbs it key by key in event-time order. Input enters at its receive time, and a process
//! keeping samples back holds the cluster's time ([`super::hold`]), so completeness follows
//! the order in which the processes received the samples, as one process would have.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::input::SharedBatch;
use super::{DataflowOptions, Observer, key_hash};
use crate::id::Id;
use crate::live::views::{ItemKey, LatestValue};
use crate::sample::{Sample, now_ms};
use crate::window::{ClosedWindow, KeyWindows, WindowRow, WindowSpec};

/// How often idle keys are checked.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// A differential update: data, time, difference.
pub(super) type Update<D> = (D, u64, isize);
/// A change of one key's latest value.
pub(super) type LatestChange = Update<(ItemKey, LatestValue)>;

/// The per-key operator's outputs, each a stream of its own.
pub(super) struct Aggregated<'scope> {
    /// Windows as they close.
    pub windows: Stream<'scope, u64, Vec<WindowRow>>,
    /// Latest-value changes, once per key and time (retract the old, insert the new).
    pub latest: Stream<'scope, u64, Vec<Update<(ItemKey, LatestValue)>>>,
    /// Samples per device, once per device and time.
    pub counts: Stream<'scope, u64, Vec<Update<Id>>>,
}

/// The per-key operator, on a stream of sample batches.
pub(super) trait AggregateByKey<'scope> {
    /// Windows, latest values and counts of the keys this worker owns (see the module's
    /// header); late samples and watermarks are reported to `observer`.
    fn aggregate_by_key(
        self,
        options: &DataflowOptions,
        observer: Arc<dyn Observer>,
    ) -> Aggregated<'scope>;
}

/// What this worker keeps of one device.
#[derive(Default)]
struct DeviceState {
    items: FxHashMap<Id, KeyState>,
    /// Samples of its owned keys at the time being processed.
    counted: isize,
}

type Keys = FxHashMap<Id, DeviceState>;

#[derive(Default)]
struct KeyState {
    /// This worker aggregates the key (other workers keep an empty state to remember that
    /// they do not).
    owned: bool,
    windows: Option<KeyWindows>,
    latest: Option<LatestValue>,
    /// The newest value seen at the time being processed.
    pending: Option<LatestValue>,
}

impl<'scope> AggregateByKey<'scope> for Stream<'scope, u64, Vec<SharedBatch>> {
    fn aggregate_by_key(
        self,
        options: &DataflowOptions,
        observer: Arc<dyn Observer>,
    ) -> Aggregated<'scope> {
        let scope = self.scope();
        let mut builder = OperatorBuilder::new("AggregateByKey".to_owned(), scope);
        let mut input = builder.new_input(self, Pipeline);
        let (windows_out, windows) = builder.new_output::<Vec<WindowRow>>();
        let (latest_out, latest) = builder.new_output::<Vec<Update<(ItemKey, LatestValue)>>>();
        let (counts_out, counts) = builder.new_output::<Vec<Update<Id>>>();
        let mut windows_out =
            OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowRow>>>::from(windows_out);
        let mut latest_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(latest_out);
        let mut counts_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(counts_out);
        let activator = scope.activator_for(builder.operator_info().address.clone());
        let mut operator = KeyedOperator::new(options, observer, scope.index(), scope.peers());
        builder.build(move |capabilities| {
            // One per output (windows, latest, counts), kept at the input frontier: windows
            // close without new data (idle keys, the end of the input), and in cluster mode
            // held input is absorbed once its time is complete.
            let mut held: Option<Vec<Capability<u64>>> = Some(capabilities);
            // The time of the latest values and counts not emitted yet, for both outputs.
            let mut changes_at: Option<(Capability<u64>, Capability<u64>)> = None;
            let mut wake = super::wake::Wake::default();
            move |frontiers| {
                let frontier = frontiers[0].frontier();
                let mut windows_out = windows_out.activate();
                let mut latest_out = latest_out.activate();
                let mut counts_out = counts_out.activate();
                let ports = (latest_out.output_index(), counts_out.output_index());
                let mut emit = |operator: &mut KeyedOperator,
                                latest_cap: &Capability<u64>,
                                counts_cap: &Capability<u64>| {
                    let (mut latest, mut counts) = operator.take_changes(*latest_cap.time());
                    if !latest.is_empty() {
                        latest_out.session(latest_cap).give_container(&mut latest);
                    }
                    if !counts.is_empty() {
                        counts_out.session(counts_cap).give_container(&mut counts);
                    }
                };
                let now = operator.clock(frontier.first());
                input.for_each(|time, data| {
                    if operator.stash(time.least().copied().unwrap_or_default(), data) {
                        return;
                    }
                    // Latest values and counts change once per key and time, not per message:
                    // fewer updates for the differential views. Times arrive in order (one
                    // pipeline from the input), so a later time completes the earlier one.
                    if let Some((l, _)) = changes_at.as_ref()
                        && time.least().is_some_and(|t| t > l.time())
                    {
                        let (l, c) = changes_at.take().expect("checked above");
                        emit(&mut operator, &l, &c);
                    }
                    if changes_at.is_none() {
                        changes_at = time.retain_least(ports.0).zip(time.retain_least(ports.1));
                    }
                    operator.absorb_batches(data, now);
                });
                // Changes of a time are complete once the frontier has passed it.
                if let Some((l, _)) = changes_at.as_ref()
                    && !frontier.less_equal(l.time())
                {
                    let (l, c) = changes_at.take().expect("checked above");
                    emit(&mut operator, &l, &c);
                }
                if let Some(caps) = held.as_ref()
                    && operator.absorb_complete(frontier.first(), now)
                {
                    emit(&mut operator, &caps[1], &caps[2]);
                }
                operator.report_late();
                operator.check_idle(now);
                if frontier.is_empty() {
                    operator.flush();
                }
                if let Some(caps) = held.as_mut() {
                    let mut closed = operator.take_windows();
                    if !closed.is_empty() {
                        windows_out.session(&caps[0]).give_container(&mut closed);
                    }
                    match frontier.first() {
                        Some(t) => caps.iter_mut().for_each(|c| c.downgrade(t)),
                        None => held = None,
                    }
                }
                if operator.idle_timeout.is_some() && held.is_some() {
                    wake.after(&activator, IDLE_CHECK);
                }
            }
        });
        Aggregated {
            windows,
            latest,
            counts,
        }
    }
}

/// The operator's state and the settings it runs with: what one worker keeps between
/// activations.
struct KeyedOperator {
    spec: WindowSpec,
    lateness: i64,
    idle_timeout: Option<i64>,
    observer: Arc<dyn Observer>,
    worker: usize,
    peers: u64,
    state: WorkerState,
    /// Cluster mode: input waiting to be absorbed in event-time order, by its time.
    stash: Option<std::collections::BTreeMap<u64, Vec<Arc<[Sample]>>>>,
    /// Samples found late since the last report.
    late: u64,
    last_idle_check: i64,
}

impl KeyedOperator {
    fn new(
        options: &DataflowOptions,
        observer: Arc<dyn Observer>,
        worker: usize,
        peers: usize,
    ) -> KeyedOperator {
        KeyedOperator {
            spec: options.windows.clone(),
            lateness: options.allowed_lateness_ms,
            idle_timeout: options.idle_timeout_ms,
            observer,
            worker,
            peers: peers as u64,
            state: WorkerState::default(),
            stash: options.cluster.is_some().then(Default::default),
            late: 0,
            last_idle_check: 0,
        }
    }

    /// The operator's clock. In cluster mode it is the time its input is absorbed up to
    /// (epochs are the wall clock there), so that while a process holds the cluster's time
    /// (`super::hold`) idle keys' windows stay open too.
    fn clock(&self, frontier: Option<&u64>) -> i64 {
        match (self.stash.is_some(), frontier) {
            (true, Some(f)) => now_ms().min(*f as i64),
            _ => now_ms(),
        }
    }

    /// Whether this worker aggregates a key (its hash names the worker).
    fn owner(&self) -> impl Fn(&str, &str) -> bool + use<> {
        let (peers, worker) = (self.peers, self.worker as u64);
        move |d: &str, i: &str| peers == 1 || key_hash(d, i) % peers == worker
    }

    /// Cluster mode: keeps the batches of `time` to absorb once it is complete (true);
    /// otherwise leaves them to be absorbed now (false).
    fn stash(&mut self, time: u64, batches: &[SharedBatch]) -> bool {
        let Some(stash) = self.stash.as_mut() else {
            return false;
        };
        stash
            .entry(time)
            .or_default()
            .extend(batches.iter().map(|b| b.samples.clone()));
        true
    }

    /// Absorbs batches as they come (one process: every worker reads every batch in order).
    fn absorb_batches(&mut self, batches: &[SharedBatch], now: i64) {
        let owns = self.owner();
        for batch in batches.iter() {
            self.late += absorb(
                &batch.samples,
                &mut self.state,
                &self.spec,
                self.lateness,
                now,
                &owns,
            );
        }
    }

    /// Cluster mode: once a time is complete (`bound` has passed it), every process's input up
    /// to it is here (it entered at its receive time, and no process's time passes what it
    /// keeps back): absorbed together, in event-time order per key (stable: equal times keep
    /// their arrival order). True when anything was absorbed: its changes are to be emitted.
    fn absorb_complete(&mut self, bound: Option<&u64>, now: i64) -> bool {
        let Some(stash) = self.stash.as_mut() else {
            return false;
        };
        let pending = match bound {
            Some(bound) => stash.split_off(bound),
            None => Default::default(),
        };
        let complete = std::mem::replace(stash, pending);
        if complete.is_empty() {
            return false;
        }
        // This worker's samples, grouped by key (hash) and in event-time order within each:
        // one run per key for `absorb`, the hash computed once.
        let mut ready: Vec<(u64, Sample)> = complete
            .values()
            .flatten()
            .flat_map(|samples| samples.iter())
            .map(|s| (key_hash(&s.device, &s.item), s))
            .filter(|(h, _)| h % self.peers == self.worker as u64)
            .map(|(h, s)| (h, s.clone()))
            .collect();
        ready.sort_by_key(|(h, s)| (*h, s.ts));
        let ready: Vec<Sample> = ready.into_iter().map(|(_, s)| s).collect();
        let owns = self.owner();
        self.late += absorb(
            &ready,
            &mut self.state,
            &self.spec,
            self.lateness,
            now,
            &owns,
        );
        true
    }

    fn report_late(&mut self) {
        if self.late > 0 {
            self.observer.on_late(std::mem::take(&mut self.late));
        }
    }

    /// Every so often: closes the windows of keys idle for `idle_timeout`, and reports the
    /// lowest watermark of the recently active keys.
    fn check_idle(&mut self, now: i64) {
        let Some(idle_timeout) = self.idle_timeout else {
            return;
        };
        if now - self.last_idle_check < IDLE_CHECK.as_millis() as i64 {
            return;
        }
        self.last_idle_check = now;
        let (spec, lateness) = (&self.spec, self.lateness);
        let mut lowest: Option<i64> = None;
        self.state.each_window(&mut |w, closed| {
            if w.has_open_windows() {
                w.advance_idle(spec, lateness, idle_timeout, now, closed);
            }
            if now - w.last_arrival() <= idle_timeout
                && let Some(m) = w.watermark()
            {
                lowest = Some(lowest.map_or(m, |l| l.min(m)));
            }
        });
        self.observer.on_watermark(self.worker, lowest);
    }

    /// The input has ended: closes every open window.
    fn flush(&mut self) {
        let spec = &self.spec;
        self.state
            .each_window(&mut |w, closed| w.flush(spec, closed));
    }

    /// The windows closed since the last call.
    fn take_windows(&mut self) -> Vec<WindowRow> {
        std::mem::take(&mut self.state.windows)
    }

    /// The latest-value and count changes of time `t`.
    fn take_changes(&mut self, t: u64) -> (Vec<LatestChange>, Vec<Update<Id>>) {
        let mut latest = Vec::new();
        let mut counts = Vec::new();
        take_changes(t, &mut self.state, &mut latest, &mut counts);
        (latest, counts)
    }
}

/// What one worker keeps: its keys' state and the outputs not emitted yet.
#[derive(Default)]
struct WorkerState {
    keys: Keys,
    /// Devices with samples counted at the time being processed.
    counted: Vec<Id>,
    /// Keys with a new latest value at the time being processed.
    touched: Vec<(Id, Id)>,
    closed: Vec<ClosedWindow>,
    windows: Vec<WindowRow>,
}

impl WorkerState {
    /// Calls `f` on every key's windows; what it closes becomes rows to emit.
    fn each_window(&mut self, f: &mut dyn FnMut(&mut KeyWindows, &mut Vec<ClosedWindow>)) {
        let WorkerState {
            keys,
            closed,
            windows,
            ..
        } = self;
        for (device, state) in keys.iter_mut() {
            for (item, state) in state.items.iter_mut() {
                if let Some(w) = state.windows.as_mut() {
                    f(w, closed);
                    windows.extend(
                        closed
                            .drain(..)
                            .map(|c| WindowRow::new(device.clone(), item.clone(), &c)),
                    );
                }
            }
        }
    }
}

/// Adds `samples` to the keys this worker owns (others are skipped); returns how many were
/// late for their windows.
fn absorb(
    samples: &[Sample],
    w: &mut WorkerState,
    spec: &WindowSpec,
    lateness: i64,
    now: i64,
    owns: &impl Fn(&str, &str) -> bool,
) -> u64 {
    let mut late = 0;
    let mut at = 0;
    while at < samples.len() {
        // A message carries each item's values together: look the key up
        // once per run of samples of one key.
        let first = &samples[at];
        let run = &samples[at..at + same_key_run(&samples[at..])];
        at += run.len();
        let DeviceState {
            items,
            counted: device_count,
        } = w.keys.entry(first.device.clone()).or_default();
        let state = items.entry(first.item.clone()).or_insert_with(|| KeyState {
            owned: owns(&first.device, &first.item),
            ..KeyState::default()
        });
        if !state.owned {
            continue;
        }
        if *device_count == 0 {
            w.counted.push(first.device.clone());
        }
        *device_count += run.len() as isize;
        // Latest value: the newest of this message (`max_by_key` gives the
        // last of equals: a tie goes to the later arrival),
        // compared to the last one.
        let newest = run.iter().max_by_key(|s| s.ts).expect("a run is not empty");
        let newer = match (&state.pending, &state.latest) {
            (Some(p), _) => newest.ts >= p.ts,
            (None, Some(l)) => newest.ts >= l.ts,
            (None, None) => true,
        };
        if newer {
            if state.pending.is_none() {
                w.touched.push((first.device.clone(), first.item.clone()));
            }
            state.pending = Some(LatestValue::of(newest));
        }
        // Windows: numeric samples only (a non-finite value, from a damaged file or a replayed
        // lake, is no number a window can use).
        for sample in run {
            let Some(value) = sample.value.filter(|v| v.is_finite()) else {
                continue;
            };
            let windows_state = state.windows.get_or_insert_with(|| KeyWindows::new(spec));
            if !windows_state.insert(spec, lateness, sample.ts, value, now, &mut w.closed) {
                late += 1;
            }
            w.windows.extend(
                w.closed
                    .drain(..)
                    .map(|c| WindowRow::new(first.device.clone(), first.item.clone(), &c)),
            );
        }
    }
    late
}

/// How many samples from the start of `samples` (at least one) share the first one's key.
fn same_key_run(samples: &[Sample]) -> usize {
    let first = &samples[0];
    let same = |s: &Sample| s.item == first.item && s.device == first.device;
    1 + samples[1..].iter().take_while(|s| same(s)).count()
}

/// The latest-value and count changes of time `t`: per device the samples counted, per key
/// touched its new latest value (retracting the old).
fn take_changes(
    t: u64,
    worker: &mut WorkerState,
    latest: &mut Vec<Update<(ItemKey, LatestValue)>>,
    counts: &mut Vec<Update<Id>>,
) {
    let WorkerState {
        keys,
        counted,
        touched,
        ..
    } = worker;
    for device in counted.drain(..) {
        let state = keys.get_mut(&device).expect("counted devices exist");
        let n = std::mem::take(&mut state.counted);
        counts.push((device, t, n));
    }
    for (device, item) in touched.drain(..) {
        let state = keys
            .get_mut(&device)
            .and_then(|d| d.items.get_mut(&item))
            .expect("touched keys exist");
        let Some(new) = state.pending.take() else {
            continue;
        };
        match state.latest.take() {
            Some(old) if old == new => state.latest = Some(old),
            Some(old) => {
                let key = (device, item);
                latest.push(((key.clone(), old), t, -1));
                latest.push(((key, new.clone()), t, 1));
                state.latest = Some(new);
            }
            None => {
                latest.push((((device, item), new.clone()), t, 1));
                state.latest = Some(new);
            }
        }
    }
}
