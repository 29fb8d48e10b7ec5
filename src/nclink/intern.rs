//! The item ids of one device, and the budget that keeps devices from exhausting the
//! process-wide table of [`Id`]s.
//!
//! Ids are interned for the life of the process (copying one is free), so the table is
//! bounded ([`crate::id::MAX_IDS`]), and the dataflow keeps state per (device, item). Left to
//! the global bound alone, one device sending random item ids (in `paths`, in Query answers, as
//! indexed values) would fill the table and lock every other device out. So each device gets
//! its own [`Interner`]: the ids it already used are served from its own set without the
//! global lock; a new one is checked ([`check_id`]), charged to the device
//! (`source.limits.ids_per_device`) and to the shared [`KeyBudget`] (`source.limits.keys`, the
//! number of keys over all devices), and only then interned. What exceeds a bound is
//! dead-lettered as `overloaded` before anything is interned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashSet;

use super::error::{DecodeError, Reason};
use super::limits::{WireLimits, check_id, shown};
use crate::id::Id;

/// How many (device, item) ids all devices of a platform may use together.
#[derive(Debug)]
pub struct KeyBudget {
    used: AtomicUsize,
    limit: usize,
}

impl KeyBudget {
    pub fn new(limit: usize) -> Arc<KeyBudget> {
        Arc::new(KeyBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `n` keys; false (nothing taken) when that would pass the limit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Keys in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// The item ids one device uses.
#[derive(Debug)]
pub struct Interner {
    ids: FxHashSet<Id>,
    per_device: usize,
    indexed_values: usize,
    budget: Arc<KeyBudget>,
}

impl Default for Interner {
    /// An interner with the default limits and a budget of its own (tests, tools).
    fn default() -> Self {
        let limits = WireLimits::default();
        Interner::new(&limits, KeyBudget::new(limits.keys))
    }
}

impl Interner {
    pub fn new(limits: &WireLimits, budget: Arc<KeyBudget>) -> Interner {
        Interner {
            ids: FxHashSet::default(),
            per_device: limits.ids_per_device,
            indexed_values: limits.indexed_values,
            budget,
        }
    }

    /// An item id from the wire: known ones at once; a new one checked and charged first.
    pub fn intern(&mut self, id: &str) -> Result<Id, DecodeError> {
        if let Some(known) = self.ids.get(id) {
            return Ok(known.clone());
        }
        check_id("item id", id).map_err(DecodeError::wrong_shape)?;
        self.charge(1)?;
        match intern(id) {
            Ok(new) => {
                self.ids.insert(new.clone());
                Ok(new)
            }
            Err(e) => {
                self.budget.give_back(1);
                Err(e)
            }
        }
    }

    /// Ids of a model about to be accepted: all of them fit, or none is taken.
    pub fn intern_all<'s>(
        &mut self,
        ids: impl IntoIterator<Item = &'s str> + Clone,
    ) -> Result<(), DecodeError> {
        let new: FxHashSet<&str> = ids
            .clone()
            .into_iter()
            .filter(|id| !self.ids.contains(*id))
            .collect();
        for id in &new {
            check_id("item id", id).map_err(DecodeError::wrong_shape)?;
        }
        self.charge(new.len())?;
        let mut left = new.len();
        for id in new {
            match intern(id) {
                Ok(id) => {
                    self.ids.insert(id);
                    left -= 1;
                }
                Err(e) => {
                    // What was interned stays the device's; the rest is given back.
                    self.budget.give_back(left);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The shared id of `id` if this device uses it.
    pub fn get(&self, id: &str) -> Option<&Id> {
        self.ids.get(id)
    }

    /// An id from the engine's own files (the lake): always accepted, never charged.
    pub fn intern_trusted(&mut self, id: &str) -> Id {
        if let Some(known) = self.ids.get(id) {
            return known.clone();
        }
        let id = Id::from(id);
        if self.ids.len() < self.per_device {
            self.ids.insert(id.clone());
        }
        id
    }

    /// Most values of one item in a Query answer.
    pub fn indexed_values(&self) -> usize {
        self.indexed_values
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn charge(&mut self, n: usize) -> Result<(), DecodeError> {
        if n == 0 {
            return Ok(());
        }
        if self.ids.len().saturating_add(n) > self.per_device {
            return Err(DecodeError::new(
                Reason::Overloaded,
                format!(
                    "the device would use more than {} item ids (source.limits.ids_per_device)",
                    self.per_device
                ),
            ));
        }
        if !self.budget.take(n) {
            return Err(DecodeError::new(
                Reason::Overloaded,
                format!(
                    "more than {} device and item keys in all (source.limits.keys)",
                    self.budget.limit
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for Interner {
    fn drop(&mut self) {
        self.budget.give_back(self.ids.len());
    }
}

/// A device id or model id from the wire, interned once checked; refused (as `overloaded`)
/// once the process holds too many ids.
pub fn intern(id: &str) -> Result<Id, DecodeError> {
    Id::intern(id)
        .map_err(|e| DecodeError::new(Reason::Overloaded, format!("id {}: {e}", shown(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_device: usize, keys: usize) -> WireLimits {
        WireLimits {
            ids_per_device: per_device,
            keys,
            ..WireLimits::default()
        }
    }

    #[test]
    fn a_device_gets_its_quota_and_the_budget_is_shared() {
        let budget = KeyBudget::new(5);
        let mut a = Interner::new(&limits(3, 5), budget.clone());
        let mut b = Interner::new(&limits(3, 5), budget.clone());
        assert_eq!(a.intern("x").unwrap(), a.intern("x").unwrap());
        a.intern("y").unwrap();
        a.intern("z").unwrap();
        let refused = a.intern("w").unwrap_err();
        assert_eq!(refused.reason, Reason::Overloaded);
        assert!(refused.detail.contains("ids_per_device"), "{refused}");
        assert_eq!(&*a.intern("y").unwrap(), "y", "known ids are still served");
        // Another device may use the same ids, charged to it, until the shared budget ends.
        b.intern("x").unwrap();
        b.intern("y").unwrap();
        let refused = b.intern("v").unwrap_err();
        assert!(refused.detail.contains("source.limits.keys"), "{refused}");
        assert_eq!(budget.used(), 5);
        drop(a);
        assert_eq!(budget.used(), 2, "a forgotten device gives its keys back");
        // Bad ids are refused before anything is charged.
        let bad = b.intern(&"q".repeat(65)).unwrap_err();
        assert_eq!(bad.reason, Reason::WrongShape);
        assert_eq!(budget.used(), 2);
    }

    #[test]
    fn a_model_takes_all_its_ids_or_none() {
        let budget = KeyBudget::new(100);
        let mut a = Interner::new(&limits(4, 100), budget.clone());
        a.intern("known").unwrap();
        let refused = a.intern_all(["known", "1", "2", "3", "4"]).unwrap_err();
        assert_eq!(refused.reason, Reason::Overloaded);
        assert_eq!((a.len(), budget.used()), (1, 1), "nothing taken");
        a.intern_all(["known", "1", "2", "2"]).unwrap();
        assert_eq!((a.len(), budget.used()), (3, 3));
        assert!(a.get("2").is_some());
    }
}
