//! Recently closed windows, kept in memory for `/api/v1/windows`: a ring per (device, item,
//! size), bounded twice — at most `per_key` windows each, and at most `budget` windows in all
//! (rings are trimmed to their fair share when the fleet is large) — so memory stays flat
//! however long millstream runs and however many items a fleet has. Older windows are in the
//! sinks (SQL, the lake).

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

use crate::id::Id;
use crate::window::WindowRow;

/// Windows kept per (device, item, size): 2 minutes of 1 s windows, 2 hours of 1 min ones.
pub const DEFAULT_PER_KEY: usize = 120;
/// Windows kept in all (~25 MB).
pub const DEFAULT_BUDGET: usize = 250_000;
/// Rings are never trimmed below this.
const MIN_PER_KEY: usize = 8;

/// A window without its key (the key is the ring's).
#[derive(Debug, Clone, Copy)]
struct Stored {
    start: i64,
    count: u64,
    values: [f64; 9],
    has_stddev: bool,
}

impl Stored {
    fn of(w: &WindowRow) -> Stored {
        Stored {
            start: w.start,
            count: w.count,
            values: w.stats(),
            has_stddev: w.stddev.is_some(),
        }
    }

    fn row(&self, key: &Key) -> WindowRow {
        WindowRow::from_stats(
            key.0.clone(),
            key.1.clone(),
            key.2,
            self.start,
            self.count,
            self.values,
            self.has_stddev,
        )
    }
}

type Key = (Id, Id, i64);

#[derive(Debug, Default)]
struct Rings {
    rings: HashMap<Key, VecDeque<Stored>>,
    total: usize,
}

#[derive(Debug)]
pub struct WindowStore {
    per_key: usize,
    budget: usize,
    inner: RwLock<Rings>,
}

impl Default for WindowStore {
    fn default() -> Self {
        WindowStore::new(DEFAULT_PER_KEY, DEFAULT_BUDGET)
    }
}

impl WindowStore {
    pub fn new(per_key: usize, budget: usize) -> WindowStore {
        WindowStore {
            per_key: per_key.max(1),
            budget: budget.max(1),
            inner: RwLock::new(Rings::default()),
        }
    }

    pub fn add(&self, rows: &[WindowRow]) {
        let mut inner = self.inner.write().expect("window store lock");
        let Rings { rings, total } = &mut *inner;
        for row in rows {
            let ring = rings
                .entry((row.device.clone(), row.item.clone(), row.size_ms))
                .or_default();
            let before = ring.len();
            // Keep start order even if windows of one key arrive out of order.
            let at = ring.partition_point(|w| w.start < row.start);
            if ring.get(at).is_some_and(|w| w.start == row.start) {
                ring[at] = Stored::of(row);
            } else {
                ring.insert(at, Stored::of(row));
            }
            while ring.len() > self.per_key {
                ring.pop_front();
            }
            *total = *total + ring.len() - before;
        }
        // Over budget with many rings: trim every ring to its fair share once.
        if inner.total > self.budget {
            let share = (self.budget / inner.rings.len().max(1)).max(MIN_PER_KEY);
            let mut total = 0;
            for ring in inner.rings.values_mut() {
                while ring.len() > share {
                    ring.pop_front();
                }
                total += ring.len();
            }
            inner.total = total;
        }
    }

    /// Windows of a key with `from <= start < to`, oldest first, at most `limit` (the newest).
    pub fn query(
        &self,
        device: &str,
        item: &str,
        size_ms: i64,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Vec<WindowRow> {
        let inner = self.inner.read().expect("window store lock");
        // Looked up, not interned: the names come from HTTP requests.
        let (Some(device), Some(item)) = (Id::get(device), Id::get(item)) else {
            return Vec::new();
        };
        let key: Key = (device, item, size_ms);
        let Some(ring) = inner.rings.get(&key) else {
            return Vec::new();
        };
        let selected: Vec<&Stored> = ring
            .iter()
            .filter(|w| w.start >= from && w.start < to)
            .collect();
        let skip = selected.len().saturating_sub(limit);
        selected
            .into_iter()
            .skip(skip)
            .map(|w| w.row(&key))
            .collect()
    }

    /// Windows held in all.
    pub fn len(&self) -> usize {
        self.inner.read().expect("window store lock").total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, start: i64) -> WindowRow {
        WindowRow {
            device: device.into(),
            item: "x".into(),
            size_ms: 1_000,
            start,
            end: start + 1_000,
            count: 1,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            stddev: None,
            p50: 1.0,
            p95: 1.0,
            p99: 1.0,
            first: 1.0,
            last: 1.0,
        }
    }

    #[test]
    fn bounded_per_key_and_in_all() {
        let store = WindowStore::new(10, 100);
        for start in (0..50_000).step_by(1_000) {
            store.add(&[row("A", start)]);
        }
        let a = store.query("A", "x", 1_000, i64::MIN, i64::MAX, 1_000);
        assert_eq!(a.len(), 10);
        assert_eq!(a[0].start, 40_000, "the newest ten, oldest first");
        assert_eq!(a[9].stddev, None);
        for d in 0..50 {
            for start in (0..20_000).step_by(1_000) {
                store.add(&[row(&format!("D{d}"), start)]);
            }
        }
        // 51 rings share a budget of 100: each is cut to the minimum of 8.
        assert_eq!(store.len(), 51 * 8);
        assert_eq!(
            store
                .query("D3", "x", 1_000, i64::MIN, i64::MAX, 1_000)
                .len(),
            8
        );
        assert_eq!(
            store.query("D3", "x", 1_000, i64::MIN, i64::MAX, 1_000)[7].start,
            19_000,
            "the newest are kept"
        );
    }
}
