//! The live views (DESIGN.md §6), maintained incrementally with differential dataflow.
//!
//! A small operator turns samples into changes of the latest value per (device, item) — the
//! sample with the highest event time wins; on a tie, the later arrival — as a differential
//! collection (retract the old, insert the new). From it differential derives the fleet status
//! (machines per state of item `010302`; machines without one are `unknown`), and from the raw
//! samples the count per device. Each view's changes go to the observer.

use std::sync::Arc;

use differential_dataflow::AsCollection;
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::operators::threshold::ThresholdTotal;
use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

use super::Observer;
use crate::nclink::status::{MachineState, STATUS_ITEM};
use crate::sample::Sample;
use crate::views::{ItemKey, LatestValue};

type Update<D> = (D, u64, isize);

/// What the per-key operator emits: changes of the latest value, and sample counts per device.
#[derive(Clone)]
enum Change {
    Latest(Update<(ItemKey, LatestValue)>),
    Count(Update<Arc<str>>),
}

pub(super) fn views<'scope>(
    samples: Stream<'scope, u64, Vec<Sample>>,
    observer: Arc<dyn Observer>,
) {
    let changes = samples
        .unary::<timely::container::CapacityContainerBuilder<Vec<Change>>, _, _, _>(
            Pipeline,
            "Latest",
            |_capability, _info| {
                let mut current: FxHashMap<ItemKey, LatestValue> = FxHashMap::default();
                // The newest value per key within one input message: a key's value changes once per
                // message in the collection, however many samples of it the message carries.
                let mut newest: FxHashMap<ItemKey, LatestValue> = FxHashMap::default();
                let mut counts: FxHashMap<Arc<str>, isize> = FxHashMap::default();
                move |input, output| {
                    input.for_each(|time, data| {
                        let Some(cap) = time.retain_least(output.output_index()) else {
                            return;
                        };
                        let t = *cap.time();
                        for sample in data.iter() {
                            *counts.entry(sample.device.clone()).or_default() += 1;
                            let newer = |old: &LatestValue| sample.ts >= old.ts;
                            match newest.get_mut(&(sample.device.clone(), sample.item.clone())) {
                                Some(value) => {
                                    if newer(value) {
                                        *value = LatestValue::of(sample);
                                    }
                                }
                                None => {
                                    let key = (sample.device.clone(), sample.item.clone());
                                    if current.get(&key).is_none_or(newer) {
                                        newest.insert(key, LatestValue::of(sample));
                                    }
                                }
                            }
                        }
                        let mut session = output.session(&cap);
                        for (device, n) in counts.drain() {
                            session.give(Change::Count((device, t, n)));
                        }
                        for (key, new) in newest.drain() {
                            match current.get_mut(&key) {
                                Some(old) if *old == new => {}
                                Some(old) => {
                                    session.give(Change::Latest((
                                        (key.clone(), old.clone()),
                                        t,
                                        -1,
                                    )));
                                    session.give(Change::Latest(((key, new.clone()), t, 1)));
                                    *old = new;
                                }
                                None => {
                                    session.give(Change::Latest((
                                        (key.clone(), new.clone()),
                                        t,
                                        1,
                                    )));
                                    current.insert(key, new);
                                }
                            }
                        }
                    });
                }
            },
        );
    let mut parts = changes
        .partition::<timely::container::CapacityContainerBuilder<Vec<Change>>, _, _>(
            2,
            |c| match c {
                Change::Latest(_) => (0, c),
                Change::Count(_) => (1, c),
            },
        );
    let counts = parts.pop().expect("two parts");
    let latest = parts.pop().expect("two parts");
    let latest = latest
        .flat_map(|c| match c {
            Change::Latest(u) => Some(u),
            Change::Count(_) => None,
        })
        .as_collection();
    let counts = counts
        .flat_map(|c| match c {
            Change::Count(u) => Some(u),
            Change::Latest(_) => None,
        })
        .as_collection();

    let o = observer.clone();
    let latest = latest.consolidate().inspect_batch(move |_, changes| {
        let changes: Vec<(ItemKey, LatestValue, isize)> = changes
            .iter()
            .map(|((key, value), _, diff)| (key.clone(), value.clone(), *diff))
            .collect();
        o.on_latest(&changes);
    });

    let status = latest
        .clone()
        .filter(|((_, item), _)| &**item == STATUS_ITEM)
        .map(|((device, _), value)| (device, value.state()));
    let devices = latest.map(|((device, _), _)| device).distinct_total();
    let with_status = status.clone().map(|(device, _)| device).distinct_total();
    let unknown = devices
        .map(|device| (device, ()))
        .antijoin(with_status)
        .map(|(device, ())| (device, MachineState::Unknown));
    let o = observer.clone();
    status
        .concat(unknown)
        .map(|(_, state)| state)
        .count_total()
        .inspect_batch(move |_, changes| {
            let changes: Vec<(MachineState, i64, isize)> = changes
                .iter()
                .map(|((state, count), _, diff)| (*state, *count as i64, *diff))
                .collect();
            o.on_fleet(&changes);
        });

    // Samples per device: partial counts per worker and message, summed by differential.
    let o = observer;
    counts.count_total().inspect_batch(move |_, changes| {
        let changes: Vec<(Arc<str>, i64, isize)> = changes
            .iter()
            .map(|((device, count), _, diff)| (device.clone(), *count as i64, *diff))
            .collect();
        o.on_samples_per_device(&changes);
    });
}
