//! The live views (DESIGN.md §6), maintained incrementally with differential dataflow, from the
//! changes the per-key operator emits: the latest value per (device, item) as a collection, the
//! fleet status derived from it (machines per state of item `010302`; machines without one are
//! `unknown`), and samples per device (partial counts summed). Each view's changes go to the
//! observer — in cluster mode all of them on worker 0 (process 0 serves the API).

use std::sync::Arc;

use differential_dataflow::AsCollection;
use differential_dataflow::ExchangeData;
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::operators::threshold::ThresholdTotal;
use timely::dataflow::Stream;
use timely::dataflow::operators::{Exchange, Inspect};

use super::Observer;
use super::keyed::Update;
use crate::id::Id;
use crate::live::views::{ItemKey, LatestValue};
use crate::nclink::status::{MachineState, STATUS_ITEM};

/// The differential views over the per-key operator's changes.
pub(super) fn views<'scope>(
    latest: Stream<'scope, u64, Vec<Update<(ItemKey, LatestValue)>>>,
    counts: Stream<'scope, u64, Vec<Update<Id>>>,
    observer: Arc<dyn Observer>,
    gather: bool,
) {
    let latest = latest.as_collection();
    let counts = counts.as_collection();

    let o = observer.clone();
    let latest = latest.consolidate();
    observe(latest.inner.clone(), gather, move |changes| {
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
    let fleet = status.concat(unknown).map(|(_, state)| state).count_total();
    observe(fleet.inner, gather, move |changes| {
        let changes: Vec<(MachineState, i64, isize)> = changes
            .iter()
            .map(|((state, count), _, diff)| (*state, *count as i64, *diff))
            .collect();
        o.on_fleet(&changes);
    });

    // Samples per device: partial counts per worker and message, summed by differential.
    let o = observer;
    observe(counts.count_total().inner, gather, move |changes| {
        let changes: Vec<(Id, i64, isize)> = changes
            .iter()
            .map(|((device, count), _, diff)| (device.clone(), *count as i64, *diff))
            .collect();
        o.on_samples_per_device(&changes);
    });
}

/// Hands a view's changes to `f` where they are computed, or (`gather`) on worker 0.
fn observe<'scope, D: ExchangeData>(
    changes: Stream<'scope, u64, Vec<(D, u64, isize)>>,
    gather: bool,
    mut f: impl FnMut(&[(D, u64, isize)]) + 'static,
) {
    let changes = if gather {
        changes.exchange(|_: &(D, u64, isize)| 0)
    } else {
        changes
    };
    changes.inspect_core(move |event| {
        if let Ok((_, changes)) = event {
            f(changes);
        }
    });
}
