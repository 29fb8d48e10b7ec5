//! Recently closed windows, kept in memory for `/api/v1/windows`: a bounded ring per
//! (device, item, size), so memory stays flat however long millstream runs. Older windows are
//! in the sinks (SQL, the lake).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use crate::window::WindowRow;

/// Windows kept per (device, item, size).
pub const DEFAULT_PER_KEY: usize = 720;

type Key = (Arc<str>, Arc<str>, i64);

#[derive(Debug)]
pub struct WindowStore {
    per_key: usize,
    windows: RwLock<HashMap<Key, VecDeque<WindowRow>>>,
}

impl Default for WindowStore {
    fn default() -> Self {
        WindowStore::new(DEFAULT_PER_KEY)
    }
}

impl WindowStore {
    pub fn new(per_key: usize) -> WindowStore {
        WindowStore {
            per_key: per_key.max(1),
            windows: RwLock::new(HashMap::new()),
        }
    }

    pub fn add(&self, rows: &[WindowRow]) {
        let mut windows = self.windows.write().expect("window store lock");
        for row in rows {
            let ring = windows
                .entry((row.device.clone(), row.item.clone(), row.size_ms))
                .or_default();
            // Keep start order even if windows of one key arrive out of order.
            let at = ring.partition_point(|w| w.start < row.start);
            if ring.get(at).is_some_and(|w| w.start == row.start) {
                ring[at] = row.clone();
            } else {
                ring.insert(at, row.clone());
            }
            while ring.len() > self.per_key {
                ring.pop_front();
            }
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
        let windows = self.windows.read().expect("window store lock");
        let key = (Arc::from(device), Arc::from(item), size_ms);
        let Some(ring) = windows.get(&key) else {
            return Vec::new();
        };
        let selected: Vec<&WindowRow> = ring
            .iter()
            .filter(|w| w.start >= from && w.start < to)
            .collect();
        let skip = selected.len().saturating_sub(limit);
        selected.into_iter().skip(skip).cloned().collect()
    }

    /// Window sizes seen for a key.
    pub fn sizes(&self) -> Vec<i64> {
        let windows = self.windows.read().expect("window store lock");
        let mut sizes: Vec<i64> = windows.keys().map(|k| k.2).collect();
        sizes.sort();
        sizes.dedup();
        sizes
    }
}
