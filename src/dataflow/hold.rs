//! Holds on a cluster process's input time, while it keeps samples back.
//!
//! In cluster mode a key's samples reach its owner from several processes, and the per-key
//! operator absorbs, in event-time order, everything before the cluster's frontier; a batch
//! enters at its receive time. That covers steady traffic, not *backlogs*: Sample messages a
//! process keeps while a device's model is unknown, or the write-ahead log it replays after a
//! restart. Each process releases its backlog when it can — seconds apart under load — and what
//! one released early would be absorbed before the other's older samples arrive, making them
//! late.
//!
//! So a process that keeps samples back takes a [`Hold`]: its input time does not move past the
//! hold's start (or, if it already had, from where it is: time cannot go back) until the
//! samples kept back have entered the dataflow, and with it the
//! frontier of the whole cluster (a frontier is the minimum over every process). Those samples
//! enter at their receive times (or, for a replay, at the held time), not at the moment of
//! release, so the owner absorbs them in the order one process would have received them.
//! A hold ends when its last handle is dropped: the platform hands one to every batch it
//! releases, and the input drops it once the batch is given to every worker.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The holds of one process (cheap to clone: shared).
#[derive(Debug, Clone, Default)]
pub struct Holds(Arc<Registry>);

#[derive(Debug, Default)]
struct Registry {
    /// Active holds as (start, id): the first is the limit.
    active: Mutex<BTreeSet<(u64, u64)>>,
    next_id: AtomicU64,
}

impl Holds {
    /// Holds the input's time at or below `since` (ms since the Unix epoch) until the returned
    /// hold, and every clone of it, is dropped.
    pub fn hold(&self, since: u64) -> Arc<Hold> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.0
            .active
            .lock()
            .expect("holds lock")
            .insert((since, id));
        Arc::new(Hold {
            registry: self.0.clone(),
            key: (since, id),
        })
    }

    /// The highest time the input may move to: the start of the oldest hold (`u64::MAX`
    /// without one).
    pub fn limit(&self) -> u64 {
        self.0
            .active
            .lock()
            .expect("holds lock")
            .first()
            .map_or(u64::MAX, |(since, _)| *since)
    }

    /// Holds in force.
    pub fn len(&self) -> usize {
        self.0.active.lock().expect("holds lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One hold; ends when dropped.
#[derive(Debug)]
pub struct Hold {
    registry: Arc<Registry>,
    key: (u64, u64),
}

impl Hold {
    /// Where the hold keeps the input's time.
    pub fn since(&self) -> u64 {
        self.key.0
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.registry
            .active
            .lock()
            .expect("holds lock")
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_hold_sets_the_limit_until_every_handle_is_dropped() {
        let holds = Holds::default();
        assert_eq!(holds.limit(), u64::MAX);
        let late = holds.hold(500);
        let early = holds.hold(200);
        let again = holds.hold(200);
        assert_eq!((holds.limit(), holds.len()), (200, 3));
        let shared = early.clone();
        drop(early);
        assert_eq!(holds.limit(), 200, "a clone still holds");
        drop(shared);
        assert_eq!(
            holds.limit(),
            200,
            "a second hold at the same time is distinct"
        );
        drop(again);
        assert_eq!(holds.limit(), late.since());
        drop(late);
        assert!(holds.is_empty());
        assert_eq!(holds.limit(), u64::MAX);
    }
}
