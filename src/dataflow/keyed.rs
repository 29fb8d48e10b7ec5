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
//! One operator rather than three keeps each sample read once.
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
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

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

/// What the operator emits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) enum KeyedOut {
    Window(WindowRow),
    Latest(Update<(ItemKey, LatestValue)>),
    Count(Update<Id>),
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

pub(super) fn keyed<'scope>(
    samples: Stream<'scope, u64, Vec<SharedBatch>>,
    options: &DataflowOptions,
    observer: Arc<dyn Observer>,
) -> Stream<'scope, u64, Vec<KeyedOut>> {
    let spec = options.windows.clone();
    let lateness = options.allowed_lateness_ms;
    let idle_timeout = options.idle_timeout_ms;
    let cluster = options.cluster.is_some();
    let scope = samples.scope();
    samples.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<KeyedOut>>, _, _, _>(
        Pipeline,
        "Keyed",
        move |capability, info| {
            let activator = scope.activator_for(info.address.clone());
            let worker = scope.index();
            let peers = scope.peers() as u64;
            let owns = move |device: &str, item: &str| peers == 1 || key_hash(device, item) % peers == worker as u64;
            let mut held = Some(capability);
            let mut state = WorkerState::default();
            let mut changes: Vec<KeyedOut> = Vec::new();
            // Cluster mode: input waiting to be absorbed in event-time order, with its time.
            let mut stash: Option<std::collections::BTreeMap<u64, Vec<Arc<[Sample]>>>> =
                cluster.then(Default::default);
            // The time of the latest values and counts not emitted yet.
            let mut changes_at: Option<timely::dataflow::operators::Capability<u64>> = None;
            let mut last_idle_check = 0i64;
            let mut wake = super::wake::Wake::default();
            move |(input, frontier), output| {
                // Cluster mode: the operator's clock is the time its input is absorbed up to
                // (epochs are the wall clock there), so that while a process holds the
                // cluster's time (`super::hold`) idle keys' windows stay open too.
                let now = match (cluster, frontier.frontier().first()) {
                    (true, Some(f)) => now_ms().min(*f as i64),
                    _ => now_ms(),
                };
                let mut late = 0u64;
                input.for_each(|time, data| {
                    if let Some(stash) = stash.as_mut() {
                        // Cluster mode: held back to be absorbed in event-time order (below).
                        let t = time.least().copied().unwrap_or_default();
                        stash.entry(t).or_default().extend(data.iter().map(|b| b.samples.clone()));
                        return;
                    }
                    // Latest values and counts change once per key and time, not per message:
                    // fewer updates for the differential views. Times arrive in order (one
                    // pipeline from the input), so a later time completes the earlier one.
                    if let Some(cap) = changes_at.as_ref()
                        && time.least().is_some_and(|t| t > cap.time())
                    {
                        let cap = changes_at.take().expect("checked above");
                        take_changes(*cap.time(), &mut state, &mut changes);
                        output.session(&cap).give_container(&mut changes);
                        changes.clear();
                    }
                    if changes_at.is_none() {
                        changes_at = time.retain_least(output.output_index());
                    }
                    for batch in data.iter() {
                        late += absorb(&batch.samples, &mut state, &spec, lateness, now, &owns);
                    }
                });
                // Changes of a time are complete once the frontier has passed it.
                if let Some(cap) = changes_at.as_ref()
                    && !frontier.frontier().less_equal(cap.time())
                {
                    let cap = changes_at.take().expect("checked above");
                    take_changes(*cap.time(), &mut state, &mut changes);
                    output.session(&cap).give_container(&mut changes);
                    changes.clear();
                }
                // Cluster mode: once a time is complete, every process's input up to it is
                // here (it entered at its receive time, and no process's time passes what it
                // keeps back): absorbed together, in event-time order per key (stable: equal
                // times keep their arrival order).
                if let (Some(stash), Some(cap)) = (stash.as_mut(), held.as_ref()) {
                    let pending = match frontier.frontier().first() {
                        Some(bound) => stash.split_off(bound),
                        None => Default::default(),
                    };
                    let complete = std::mem::replace(stash, pending);
                    if !complete.is_empty() {
                        // This worker's samples, grouped by key (hash) and in event-time order
                        // within each: one run per key for `absorb`, the hash computed once.
                        let mut ready: Vec<(u64, Sample)> = complete
                            .values()
                            .flatten()
                            .flat_map(|samples| samples.iter())
                            .map(|s| (key_hash(&s.device, &s.item), s))
                            .filter(|(h, _)| h % peers == worker as u64)
                            .map(|(h, s)| (h, s.clone()))
                            .collect();
                        ready.sort_by_key(|(h, s)| (*h, s.ts));
                        let ready: Vec<Sample> = ready.into_iter().map(|(_, s)| s).collect();
                        late += absorb(&ready, &mut state, &spec, lateness, now, &owns);
                        take_changes(*cap.time(), &mut state, &mut changes);
                        output.session(cap).give_container(&mut changes);
                        changes.clear();
                    }
                }
                if late > 0 {
                    observer.on_late(late);
                }
                let each_window = |state: &mut WorkerState, f: &mut dyn FnMut(&mut KeyWindows, &mut Vec<ClosedWindow>)| {
                    let WorkerState { keys, closed, windows, .. } = state;
                    for (device, state) in keys.iter_mut() {
                        for (item, state) in state.items.iter_mut() {
                            if let Some(w) = state.windows.as_mut() {
                                f(w, closed);
                                windows.extend(
                                    closed.drain(..).map(|c| KeyedOut::Window(WindowRow::new(device.clone(), item.clone(), &c))),
                                );
                            }
                        }
                    }
                };
                if let Some(idle_timeout) = idle_timeout
                    && now - last_idle_check >= IDLE_CHECK.as_millis() as i64
                {
                    last_idle_check = now;
                    let mut lowest: Option<i64> = None;
                    each_window(&mut state, &mut |w, closed| {
                        if w.has_open_windows() {
                            w.advance_idle(&spec, lateness, idle_timeout, now, closed);
                        }
                        if now - w.last_arrival() <= idle_timeout
                            && let Some(m) = w.watermark()
                        {
                            lowest = Some(lowest.map_or(m, |l| l.min(m)));
                        }
                    });
                    observer.on_watermark(worker, lowest);
                }
                if frontier.frontier().is_empty() {
                    each_window(&mut state, &mut |w, closed| w.flush(&spec, closed));
                }
                if let Some(cap) = held.as_mut() {
                    if !state.windows.is_empty() {
                        output.session(&*cap).give_container(&mut state.windows);
                        state.windows.clear();
                    }
                    match frontier.frontier().first() {
                        Some(t) => cap.downgrade(t),
                        None => held = None,
                    }
                }
                if idle_timeout.is_some() && held.is_some() {
                    wake.after(&activator, IDLE_CHECK);
                }
            }
        },
    )
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
    windows: Vec<KeyedOut>,
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
            w.windows.extend(w.closed.drain(..).map(|c| {
                KeyedOut::Window(WindowRow::new(first.device.clone(), first.item.clone(), &c))
            }));
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
fn take_changes(t: u64, worker: &mut WorkerState, out: &mut Vec<KeyedOut>) {
    let WorkerState {
        keys,
        counted,
        touched,
        ..
    } = worker;
    for device in counted.drain(..) {
        let state = keys.get_mut(&device).expect("counted devices exist");
        let n = std::mem::take(&mut state.counted);
        out.push(KeyedOut::Count((device, t, n)));
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
                out.push(KeyedOut::Latest(((key.clone(), old), t, -1)));
                out.push(KeyedOut::Latest(((key, new.clone()), t, 1)));
                state.latest = Some(new);
            }
            None => {
                out.push(KeyedOut::Latest((((device, item), new.clone()), t, 1)));
                state.latest = Some(new);
            }
        }
    }
}
