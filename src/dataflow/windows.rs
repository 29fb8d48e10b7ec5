//! The window operator: samples (already exchanged by (device, item)), each key's
//! [`KeyWindows`](crate::window::KeyWindows) deciding when its windows close.
//!
//! The operator holds one capability, kept at its input frontier, to emit windows that close
//! without new data for their key (idle keys, checked on a timer) and to flush everything when
//! the input ends. Samples are processed in arrival order (one producer, FIFO channels), so the
//! output depends neither on the number of workers nor on how the input was batched.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::generic::Operator;

use super::{DataflowOptions, Observer};
use crate::sample::{Sample, now_ms};
use crate::window::{ClosedWindow, KeyWindows, WindowRow};

/// How often idle keys are checked.
const IDLE_CHECK: Duration = Duration::from_millis(200);

pub(super) fn windows<'scope>(
    samples: Stream<'scope, u64, Vec<Sample>>,
    options: &DataflowOptions,
    observer: Arc<dyn Observer>,
) {
    if options.windows.is_empty() {
        return;
    }
    let spec = options.windows.clone();
    let lateness = options.allowed_lateness_ms;
    let idle_timeout = options.idle_timeout_ms;
    let late_observer = observer.clone();
    let scope = samples.scope();
    samples
        .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<WindowRow>>, _, _, _>(
            Pipeline,
            "Windows",
            move |capability, info| {
                let activator = scope.activator_for(info.address.clone());
                let worker = scope.index();
                let mut held = Some(capability);
                let mut keys: FxHashMap<(Arc<str>, Arc<str>), KeyWindows> = FxHashMap::default();
                let mut closed: Vec<ClosedWindow> = Vec::new();
                let mut rows: Vec<WindowRow> = Vec::new();
                let mut last_idle_check = 0i64;
                move |(input, frontier), output| {
                    let now = now_ms();
                    let mut late = 0u64;
                    input.for_each(|_time, data| {
                        for sample in data.iter() {
                            let Some(value) = sample.value else { continue };
                            let key =
                                match keys.get_mut(&(sample.device.clone(), sample.item.clone())) {
                                    Some(k) => k,
                                    None => keys
                                        .entry((sample.device.clone(), sample.item.clone()))
                                        .or_insert_with(|| KeyWindows::new(&spec)),
                                };
                            if !key.insert(&spec, lateness, sample.ts, value, now, &mut closed) {
                                late += 1;
                            }
                            rows.extend(closed.drain(..).map(|c| {
                                WindowRow::new(sample.device.clone(), sample.item.clone(), &c)
                            }));
                        }
                    });
                    if late > 0 {
                        late_observer.on_late(late);
                    }
                    if let Some(idle_timeout) = idle_timeout
                        && now - last_idle_check >= IDLE_CHECK.as_millis() as i64
                    {
                        last_idle_check = now;
                        let mut lowest: Option<i64> = None;
                        for ((device, item), key) in keys.iter_mut() {
                            if key.has_open_windows() {
                                key.advance_idle(&spec, lateness, idle_timeout, now, &mut closed);
                                rows.extend(
                                    closed
                                        .drain(..)
                                        .map(|c| WindowRow::new(device.clone(), item.clone(), &c)),
                                );
                            }
                            if now - key.last_arrival() <= idle_timeout
                                && let Some(w) = key.watermark()
                            {
                                lowest = Some(lowest.map_or(w, |l| l.min(w)));
                            }
                        }
                        late_observer.on_watermark(worker, lowest);
                    }
                    let done = frontier.frontier().is_empty();
                    if done {
                        for ((device, item), key) in keys.iter_mut() {
                            key.flush(&spec, &mut closed);
                            rows.extend(
                                closed
                                    .drain(..)
                                    .map(|c| WindowRow::new(device.clone(), item.clone(), &c)),
                            );
                        }
                    }
                    if let Some(cap) = held.as_mut() {
                        if !rows.is_empty() {
                            output.session(&*cap).give_container(&mut rows);
                            rows.clear();
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
        .inspect_core(move |event| {
            if let Ok((_, rows)) = event {
                observer.on_windows(rows);
            }
        });
}
