//! The live views the HTTP API reads (DESIGN.md §6): the latest value per (device, item), how
//! many machines are in each state, and samples per device. `crate::dataflow` maintains them
//! incrementally with differential dataflow and applies each change here; readers take a lock
//! briefly and copy what they need.

use std::collections::BTreeMap;
use std::sync::RwLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::nclink::status::MachineState;
use crate::sample::Sample;

/// The newest sample of one (device, item), ordered so it can live in a differential collection
/// (the value is kept as its bit pattern: `f64` is not `Ord`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LatestValue {
    pub ts: i64,
    pub value_bits: Option<u64>,
    pub text: Option<Box<str>>,
}

impl LatestValue {
    pub fn of(sample: &Sample) -> LatestValue {
        LatestValue {
            ts: sample.ts,
            value_bits: sample.value.map(f64::to_bits),
            text: sample.text.clone(),
        }
    }

    pub fn value(&self) -> Option<f64> {
        self.value_bits.map(f64::from_bits)
    }

    /// The machine state this value means, if it is a STATUS value.
    pub fn state(&self) -> MachineState {
        MachineState::from_sample(self.value(), self.text.as_deref())
    }
}

/// A (device, item) key.
pub type ItemKey = (Id, Id);

/// Latest values by device, then item.
// Fx, not SipHash: every key's change passes here up to 500 times a second (once per epoch).
type LatestByDevice = FxHashMap<Id, FxHashMap<Id, Multiset<LatestValue>>>;

/// The views, updated by the dataflow and read by the API.
#[derive(Debug, Default)]
pub struct LiveViews {
    latest: RwLock<LatestByDevice>,
    fleet: RwLock<BTreeMap<MachineState, i64>>,
    samples: RwLock<FxHashMap<Id, Multiset<i64>>>,
}

/// A few values with signed multiplicities: differential changes may arrive as an insertion
/// before the matching retraction, so the view keeps both until they cancel.
#[derive(Debug, Clone)]
struct Multiset<V>(Vec<(V, isize)>);

impl<V> Default for Multiset<V> {
    fn default() -> Self {
        Multiset(Vec::new())
    }
}

impl<V: PartialEq + Clone> Multiset<V> {
    fn update(&mut self, value: V, diff: isize) {
        match self.0.iter_mut().find(|(v, _)| *v == value) {
            Some(entry) => entry.1 += diff,
            None => self.0.push((value, diff)),
        }
        self.0.retain(|(_, n)| *n != 0);
    }

    fn current(&self) -> Option<&V> {
        self.0.iter().find(|(_, n)| *n > 0).map(|(v, _)| v)
    }
}

impl LiveViews {
    pub fn apply_latest(&self, changes: &[(ItemKey, LatestValue, isize)]) {
        let mut latest = self.latest.write().expect("views lock");
        for ((device, item), value, diff) in changes {
            let items = latest.entry(device.clone()).or_default();
            let entry = items.entry(item.clone()).or_default();
            entry.update(value.clone(), *diff);
            if entry.0.is_empty() {
                items.remove(item);
            }
        }
    }

    pub fn apply_fleet(&self, changes: &[(MachineState, i64, isize)]) {
        let mut fleet = self.fleet.write().expect("views lock");
        // A count_total change is (state, count) ± 1: the retracted count goes, the new one stays.
        for (state, count, diff) in changes {
            let entry = fleet.entry(*state).or_insert(0);
            *entry += count * *diff as i64;
        }
    }

    pub fn apply_samples(&self, changes: &[(Id, i64, isize)]) {
        let mut samples = self.samples.write().expect("views lock");
        for (device, count, diff) in changes {
            let entry = samples.entry(device.clone()).or_default();
            entry.update(*count, *diff);
        }
    }

    /// The latest value of every item of `device`.
    pub fn latest(&self, device: &str) -> Option<BTreeMap<Id, LatestValue>> {
        let latest = self.latest.read().expect("views lock");
        latest.get(device).map(|items| {
            items
                .iter()
                .filter_map(|(item, m)| m.current().map(|v| (item.clone(), v.clone())))
                .collect()
        })
    }

    /// Machines per state (every state present, zero when none).
    pub fn fleet(&self) -> BTreeMap<MachineState, i64> {
        let fleet = self.fleet.read().expect("views lock");
        [
            MachineState::Running,
            MachineState::Free,
            MachineState::Holding,
            MachineState::Unknown,
        ]
        .into_iter()
        .map(|s| (s, fleet.get(&s).copied().unwrap_or(0)))
        .collect()
    }

    /// Samples seen per device.
    pub fn samples_per_device(&self) -> BTreeMap<Id, i64> {
        let samples = self.samples.read().expect("views lock");
        samples
            .iter()
            .filter_map(|(d, m)| m.current().map(|c| (d.clone(), *c)))
            .collect()
    }

    /// Devices with at least one latest value.
    pub fn devices(&self) -> Vec<Id> {
        let latest = self.latest.read().expect("views lock");
        let mut devices: Vec<Id> = latest
            .iter()
            .filter(|(_, i)| !i.is_empty())
            .map(|(d, _)| d.clone())
            .collect();
        devices.sort();
        devices
    }
}
