//! A window as the HTTP API and the live events show it (DESIGN.md §8): statistics that are
//! not finite (an empty window's min, say) become `null`, since JSON has no NaN.

use serde::Serialize;

use super::WindowRow;
use crate::id::Id;

/// A window as the API shows it (DESIGN.md §8).
#[derive(Debug, Clone, Serialize)]
pub struct WindowJson {
    pub item: Id,
    pub size_ms: i64,
    pub start: i64,
    pub end: i64,
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub first: Option<f64>,
    pub last: Option<f64>,
}

impl From<&WindowRow> for WindowJson {
    fn from(w: &WindowRow) -> WindowJson {
        let f = |v: f64| v.is_finite().then_some(v);
        WindowJson {
            item: w.item.clone(),
            size_ms: w.size_ms,
            start: w.start,
            end: w.end,
            count: w.count,
            min: f(w.min),
            max: f(w.max),
            mean: f(w.mean),
            stddev: w.stddev.and_then(f),
            p50: f(w.p50),
            p95: f(w.p95),
            p99: f(w.p99),
            first: f(w.first),
            last: f(w.last),
        }
    }
}

impl WindowJson {
    /// The row as `/windows` and `/history` list it: their answer names the item and size once.
    pub fn row(w: &WindowRow) -> serde_json::Value {
        let mut v = serde_json::to_value(WindowJson::from(w)).expect("serializable");
        if let Some(o) = v.as_object_mut() {
            o.remove("item");
            o.remove("size_ms");
        }
        v
    }
}
