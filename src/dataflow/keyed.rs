//! The per-key operator: everything millstream computes per (device, item) in one pass over
//! the samples of the keys this worker owns (the input partitioned them by key):
//!
//! - windows, through each key's [`KeyWindows`] (watermark, panes, closing);
//! - the latest value (highest event time; ties go to the later arrival), emitted as a
//!   differential change once per key and input message (retract the old, insert the new);
//! - samples per device, one count per device and message.
//!
//! One operator rather than three keeps each sample read once and its device and item ids
//! untouched: lookups borrow the ids (no reference-count traffic between workers, which share
//! them), and ids are cloned only into new state and outputs.
//!
//! The operator holds one capability, kept at its input frontier, to emit windows that close
//! without new data for their key (idle keys, checked on a timer) and to flush everything when
//! the input ends. Each key's samples arrive in the order they were received (one lane per
//! key, FIFO channels), so the output depends neither on the number of workers nor on how the
//! input was batched.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::{DataflowOptions, Observer};
use crate::sample::{Sample, now_ms};
use crate::views::{ItemKey, LatestValue};
use crate::window::{ClosedWindow, KeyWindows, WindowRow};

/// How often idle keys are checked.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// A differential update: data, time, difference.
pub(super) type Update<D> = (D, u64, isize);

/// What the operator emits.
#[derive(Debug, Clone)]
pub(super) enum KeyedOut {
    Window(WindowRow),
    Latest(Update<(ItemKey, LatestValue)>),
    Count(Update<Arc<str>>),
}

#[derive(Default)]
struct KeyState {
    windows: Option<KeyWindows>,
    latest: Option<LatestValue>,
    /// The newest value seen in the message being processed.
    pending: Option<LatestValue>,
}

pub(super) fn keyed<'scope>(
    samples: Stream<'scope, u64, Vec<Sample>>,
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
            let mut held = Some(capability);
            let mut keys: FxHashMap<Arc<str>, FxHashMap<Arc<str>, KeyState>> = FxHashMap::default();
            let mut closed: Vec<ClosedWindow> = Vec::new();
            let mut windows: Vec<KeyedOut> = Vec::new();
            let mut touched: Vec<(Arc<str>, Arc<str>)> = Vec::new();
            let mut counts: Vec<(Arc<str>, isize)> = Vec::new();
            let mut last_idle_check = 0i64;
            move |(input, frontier), output| {
                let now = now_ms();
                let mut late = 0u64;
                input.for_each(|time, data| {
                    let Some(cap) = time.retain_least(output.output_index()) else { return };
                    let t = *cap.time();
                    for sample in data.iter() {
                        match counts.last_mut() {
                            Some((device, n)) if **device == *sample.device => *n += 1,
                            _ => match counts.iter_mut().find(|(d, _)| **d == *sample.device) {
                                Some((_, n)) => *n += 1,
                                None => counts.push((sample.device.clone(), 1)),
                            },
                        }
                        let items = match keys.get_mut(&*sample.device) {
                            Some(items) => items,
                            None => keys.entry(sample.device.clone()).or_default(),
                        };
                        let state = match items.get_mut(&*sample.item) {
                            Some(state) => state,
                            None => items.entry(sample.item.clone()).or_default(),
                        };
                        // Latest value: the newest of this message, compared to the last one.
                        let newer = match (&state.pending, &state.latest) {
                            (Some(p), _) => sample.ts >= p.ts,
                            (None, Some(l)) => sample.ts >= l.ts,
                            (None, None) => true,
                        };
                        if newer {
                            if state.pending.is_none() {
                                touched.push((sample.device.clone(), sample.item.clone()));
                            }
                            state.pending = Some(LatestValue::of(sample));
                        }
                        // Windows: numeric samples only.
                        if let Some(value) = sample.value {
                            let windows_state = state.windows.get_or_insert_with(|| KeyWindows::new(&spec));
                            if !windows_state.insert(&spec, lateness, sample.ts, value, now, &mut closed) {
                                late += 1;
                            }
                            windows.extend(
                                closed
                                    .drain(..)
                                    .map(|c| KeyedOut::Window(WindowRow::new(sample.device.clone(), sample.item.clone(), &c))),
                            );
                        }
                    }
                    let mut session = output.session(&cap);
                    for (device, n) in counts.drain(..) {
                        session.give(KeyedOut::Count((device, t, n)));
                    }
                    for (device, item) in touched.drain(..) {
                        let state = keys.get_mut(&device).and_then(|i| i.get_mut(&item)).expect("touched keys exist");
                        let Some(new) = state.pending.take() else { continue };
                        match state.latest.take() {
                            Some(old) if old == new => state.latest = Some(old),
                            Some(old) => {
                                let key = (device, item);
                                session.give(KeyedOut::Latest(((key.clone(), old), t, -1)));
                                session.give(KeyedOut::Latest(((key, new.clone()), t, 1)));
                                state.latest = Some(new);
                            }
                            None => {
                                session.give(KeyedOut::Latest((((device, item), new.clone()), t, 1)));
                                state.latest = Some(new);
                            }
                        }
                    }
                });
                if late > 0 {
                    observer.on_late(late);
                }
                let each_window = |keys: &mut FxHashMap<Arc<str>, FxHashMap<Arc<str>, KeyState>>,
                                   windows: &mut Vec<KeyedOut>,
                                   closed: &mut Vec<ClosedWindow>,
                                   f: &mut dyn FnMut(&mut KeyWindows, &mut Vec<ClosedWindow>)| {
                    for (device, items) in keys.iter_mut() {
                        for (item, state) in items.iter_mut() {
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
