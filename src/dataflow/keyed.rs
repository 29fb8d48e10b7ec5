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

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::input::SharedBatch;
use super::{DataflowOptions, Observer, key_hash};
use crate::id::Id;
use crate::sample::{Sample, now_ms};
use crate::views::{ItemKey, LatestValue};
use crate::window::{ClosedWindow, KeyWindows, WindowRow};

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
            let mut keys: Keys = FxHashMap::default();
            let mut closed: Vec<ClosedWindow> = Vec::new();
            let mut windows: Vec<KeyedOut> = Vec::new();
            let mut touched: Vec<(Id, Id)> = Vec::new();
            // Devices with samples counted at the time being processed.
            let mut counted: Vec<Id> = Vec::new();
            let mut changes: Vec<KeyedOut> = Vec::new();
            // The time of the latest values and counts not emitted yet.
            let mut changes_at: Option<timely::dataflow::operators::Capability<u64>> = None;
            let mut last_idle_check = 0i64;
            move |(input, frontier), output| {
                let now = now_ms();
                let mut late = 0u64;
                input.for_each(|time, data| {
                    // Latest values and counts change once per key and time, not per message:
                    // fewer updates for the differential views. Local times arrive in order,
                    // so a later time completes the earlier one. (In cluster mode samples from
                    // other processes may come at an earlier time: their changes join the
                    // later time held, which a capability allows, and keeps each key's changes
                    // in time order.)
                    if let Some(cap) = changes_at.as_ref()
                        && time.least().is_some_and(|t| t > cap.time())
                    {
                        let cap = changes_at.take().expect("checked above");
                        take_changes(*cap.time(), &mut keys, &mut counted, &mut touched, &mut changes);
                        output.session(&cap).give_container(&mut changes);
                        changes.clear();
                    }
                    if changes_at.is_none() {
                        changes_at = time.retain_least(output.output_index());
                    }
                    for batch in data.iter() {
                        let samples = &batch.samples[..];
                        let mut at = 0;
                        while at < samples.len() {
                            // A message carries each item's values together: look the key up
                            // once per run of samples of one key.
                            let first = &samples[at];
                            let run = &samples[at..at + same_key_run(&samples[at..])];
                            at += run.len();
                            let DeviceState { items, counted: device_count } =
                                keys.entry(first.device.clone()).or_default();
                            let state = items.entry(first.item.clone()).or_insert_with(|| KeyState {
                                owned: owns(&first.device, &first.item),
                                ..KeyState::default()
                            });
                            if !state.owned {
                                continue;
                            }
                            if *device_count == 0 {
                                counted.push(first.device.clone());
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
                                    touched.push((first.device.clone(), first.item.clone()));
                                }
                                state.pending = Some(LatestValue::of(newest));
                            }
                            // Windows: numeric samples only.
                            for sample in run {
                                let Some(value) = sample.value else { continue };
                                let windows_state = state.windows.get_or_insert_with(|| KeyWindows::new(&spec));
                                if !windows_state.insert(&spec, lateness, sample.ts, value, now, &mut closed) {
                                    late += 1;
                                }
                                windows.extend(
                                    closed
                                        .drain(..)
                                        .map(|c| KeyedOut::Window(WindowRow::new(first.device.clone(), first.item.clone(), &c))),
                                );
                            }
                        }
                    }
                });
                // Changes of a time are complete once the frontier has passed it.
                if let Some(cap) = changes_at.as_ref()
                    && !frontier.frontier().less_equal(cap.time())
                {
                    let cap = changes_at.take().expect("checked above");
                    take_changes(*cap.time(), &mut keys, &mut counted, &mut touched, &mut changes);
                    output.session(&cap).give_container(&mut changes);
                    changes.clear();
                }
                if late > 0 {
                    observer.on_late(late);
                }
                let each_window = |keys: &mut Keys,
                                   windows: &mut Vec<KeyedOut>,
                                   closed: &mut Vec<ClosedWindow>,
                                   f: &mut dyn FnMut(&mut KeyWindows, &mut Vec<ClosedWindow>)| {
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
                    each_window(&mut keys, &mut windows, &mut closed, &mut |w, closed| {
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
                    each_window(&mut keys, &mut windows, &mut closed, &mut |w, closed| w.flush(&spec, closed));
                }
                if let Some(cap) = held.as_mut() {
                    if !windows.is_empty() {
                        output.session(&*cap).give_container(&mut windows);
                        windows.clear();
                    }
                    match frontier.frontier().first() {
                        Some(t) => cap.downgrade(t),
                        None => held = None,
                    }
                }
                if idle_timeout.is_some() && held.is_some() {
                    activator.activate_after(IDLE_CHECK);
                }
            }
        },
    )
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
    keys: &mut Keys,
    counted: &mut Vec<Id>,
    touched: &mut Vec<(Id, Id)>,
    out: &mut Vec<KeyedOut>,
) {
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
