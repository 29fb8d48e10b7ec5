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
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::{Observer, key_hash};
use crate::nclink::status::{MachineState, STATUS_ITEM};
use crate::sample::Sample;
use crate::views::{ItemKey, LatestValue};

type Update<D> = (D, u64, isize);

pub(super) fn views<'scope>(
    samples: Stream<'scope, u64, Vec<Sample>>,
    observer: Arc<dyn Observer>,
) {
    let exchange = Exchange::new(|s: &Sample| key_hash(&s.device, &s.item));
    let latest = samples
        .clone()
        .unary::<timely::container::CapacityContainerBuilder<Vec<Update<(ItemKey, LatestValue)>>>, _, _, _>(exchange, "Latest", |_capability, _info| {
            let mut current: FxHashMap<ItemKey, LatestValue> = FxHashMap::default();
            move |input, output| {
                input.for_each(|time, data| {
                    let Some(cap) = time.retain_least(output.output_index()) else { return };
                    let t = *cap.time();
                    let mut session = output.session(&cap);
                    for sample in data.iter() {
                        let key = (sample.device.clone(), sample.item.clone());
                        let new = LatestValue::of(sample);
                        match current.get_mut(&key) {
                            Some(old) if old.ts > new.ts => {}
                            Some(old) if *old == new => {}
                            Some(old) => {
                                session.give(((key.clone(), old.clone()), t, -1));
                                session.give(((key, new.clone()), t, 1));
                                *old = new;
                            }
                            None => {
                                session.give(((key.clone(), new.clone()), t, 1));
                                current.insert(key, new);
                            }
                        }
                    }
                });
            }
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

    // Samples per device: one update per device and batch, weighted by its sample count.
    let o = observer;
    samples
        .unary::<timely::container::CapacityContainerBuilder<Vec<Update<Arc<str>>>>, _, _, _>(
            Pipeline,
            "PerDevice",
            |_capability, _info| {
                move |input, output| {
                    input.for_each(|time, data| {
                        let Some(cap) = time.retain_least(output.output_index()) else {
                            return;
                        };
                        let t = *cap.time();
                        let mut counts: FxHashMap<Arc<str>, isize> = FxHashMap::default();
                        for sample in data.iter() {
                            *counts.entry(sample.device.clone()).or_default() += 1;
                        }
                        let mut session = output.session(&cap);
                        for (device, n) in counts {
                            session.give((device, t, n));
                        }
                    });
                }
            },
        )
        .as_collection()
        .count_total()
        .inspect_batch(move |_, changes| {
            let changes: Vec<(Arc<str>, i64, isize)> = changes
                .iter()
                .map(|((device, count), _, diff)| (device.clone(), *count as i64, *diff))
                .collect();
            o.on_samples_per_device(&changes);
        });
}
