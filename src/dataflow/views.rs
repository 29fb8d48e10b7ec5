//! The live views (DESIGN.md §6), maintained incrementally with differential dataflow, from the
//! changes the per-key operator emits: the latest value per (device, item) as a collection, the
//! fleet status derived from it (machines per state of item `010302`; machines without one are
//! `unknown`), and samples per device (partial counts summed). Each view's changes go to the
//! observer.

use std::sync::Arc;

use differential_dataflow::AsCollection;
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::operators::threshold::ThresholdTotal;
use timely::dataflow::Stream;

use super::Observer;
use super::keyed::Update;
use crate::id::Id;
use crate::nclink::status::{MachineState, STATUS_ITEM};
use crate::views::{ItemKey, LatestValue};

/// The differential views over the per-key operator's changes.
pub(super) fn views<'scope>(
    latest: Stream<'scope, u64, Vec<Update<(ItemKey, LatestValue)>>>,
    counts: Stream<'scope, u64, Vec<Update<Id>>>,
    observer: Arc<dyn Observer>,
) {
    let latest = latest.as_collection();
    let counts = counts.as_collection();

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
        let changes: Vec<(Id, i64, isize)> = changes
            .iter()
            .map(|((device, count), _, diff)| (device.clone(), *count as i64, *diff))
            .collect();
        o.on_samples_per_device(&changes);
    });
}
