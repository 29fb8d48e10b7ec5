//! Windowed aggregates (DESIGN.md §6), independent of the engine that runs them: which windows
//! exist ([`spec`]), what is computed per window ([`aggregate`], [`sketch`]), and the
//! per-key event-time state that decides when a window closes ([`key_windows`]).
//! `crate::dataflow` runs this inside timely; tests run it directly against a reference.

pub mod aggregate;
pub mod json;
pub mod key_windows;
pub mod sketch;
pub mod spec;

use serde::{Deserialize, Serialize};

use crate::id::Id;

pub use json::WindowJson;
pub use key_windows::{ClosedWindow, KeyWindows};
pub use spec::WindowSpec;

/// A closed window of one (device, item), as every sink and the API see it (DESIGN.md §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    pub device: Id,
    pub item: Id,
    pub size_ms: i64,
    /// Window start, ms since the epoch (inclusive).
    pub start: i64,
    /// Window end, ms since the epoch (exclusive).
    pub end: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation; `None` below two values.
    pub stddev: Option<f64>,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub first: f64,
    pub last: f64,
}

/// A window's statistics, in the order every store writes them: SQL columns, InfluxDB fields,
/// Parquet columns, the spool's record, the API's JSON ([`WindowRow::stats`]).
pub const STATS: [&str; 9] = [
    "min", "max", "mean", "stddev", "p50", "p95", "p99", "first", "last",
];

impl WindowRow {
    /// The statistics in [`STATS`] order; `stddev` is NaN when there is none (below two
    /// values).
    pub fn stats(&self) -> [f64; 9] {
        [
            self.min,
            self.max,
            self.mean,
            self.stddev.unwrap_or(f64::NAN),
            self.p50,
            self.p95,
            self.p99,
            self.first,
            self.last,
        ]
    }

    /// A row from its key, count and statistics in [`STATS`] order (`stddev` given apart: a
    /// stored NaN is not "none").
    pub fn from_stats(
        device: Id,
        item: Id,
        size_ms: i64,
        start: i64,
        count: u64,
        v: [f64; 9],
        has_stddev: bool,
    ) -> WindowRow {
        WindowRow {
            device,
            item,
            size_ms,
            start,
            end: start.saturating_add(size_ms),
            count,
            min: v[0],
            max: v[1],
            mean: v[2],
            stddev: has_stddev.then_some(v[3]),
            p50: v[4],
            p95: v[5],
            p99: v[6],
            first: v[7],
            last: v[8],
        }
    }

    pub fn new(device: Id, item: Id, closed: &ClosedWindow) -> WindowRow {
        let a = &closed.aggregate;
        // The sketch's estimate, clamped to the exact extremes: still within the error bound,
        // and a window of one value reports that value.
        let q = |q: f64| {
            a.sketch
                .quantile(q)
                .map_or(f64::NAN, |v| v.clamp(a.min, a.max))
        };
        WindowRow {
            device,
            item,
            size_ms: closed.size,
            start: closed.start,
            end: closed.start.saturating_add(closed.size),
            count: a.count,
            min: a.min,
            max: a.max,
            mean: a.mean,
            stddev: a.stddev(),
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            first: a.first.value,
            last: a.last.value,
        }
    }
}

#[cfg(test)]
pub mod reference;

#[cfg(test)]
pub(crate) mod tests {
    use super::reference::{Arrival, check, expected};
    use super::*;
    use proptest::prelude::*;

    /// Random arrivals: a few keys, times moving forward with jitter, duplicates in time, some
    /// far-late samples.
    pub(crate) fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
        prop::collection::vec(
            (
                0usize..3,
                0usize..2,
                -3_000i64..400,
                -1_000.0f64..1_000.0,
                0u8..20,
            ),
            1..400,
        )
        .prop_map(|steps| {
            let mut clock = 1_700_000_000_000i64;
            steps
                .into_iter()
                .map(|(device, item, jitter, value, dice)| {
                    clock += jitter.max(0) / 4;
                    let ts = match dice {
                        0 => clock - 30_000, // far late
                        1 => clock,          // duplicate times
                        _ => clock + jitter.min(0) / 3,
                    };
                    let value = if dice == 2 {
                        0.0
                    } else {
                        (value * 100.0).round() / 100.0
                    };
                    ((format!("D{device}"), format!("I{item}")), ts, value)
                })
                .collect()
        })
    }

    fn run(spec: &WindowSpec, lateness: i64, arrivals: &[Arrival]) -> (Vec<WindowRow>, u64) {
        let mut keys: std::collections::BTreeMap<(String, String), KeyWindows> = Default::default();
        let mut rows = Vec::new();
        let mut late = 0;
        let mut closed = Vec::new();
        for (key, ts, value) in arrivals {
            let state = keys
                .entry(key.clone())
                .or_insert_with(|| KeyWindows::new(spec));
            let before = state.watermark();
            if !state.insert(spec, lateness, *ts, *value, 0, &mut closed) {
                late += 1;
            }
            for c in closed.drain(..) {
                // A window closes once its key's watermark has passed its end.
                assert!(
                    c.start + c.size <= state.watermark().unwrap(),
                    "closed early"
                );
                assert!(before.is_none_or(|b| c.start + c.size > b), "closed twice");
                rows.push(WindowRow::new(
                    key.0.as_str().into(),
                    key.1.as_str().into(),
                    &c,
                ));
            }
        }
        for (key, state) in &mut keys {
            state.flush(spec, &mut closed);
            rows.extend(
                closed
                    .drain(..)
                    .map(|c| WindowRow::new(key.0.as_str().into(), key.1.as_str().into(), &c)),
            );
        }
        (rows, late)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn windows_match_the_reference(arrivals in arrivals(), lateness in prop::sample::select(vec![0i64, 500, 2_000])) {
            let spec = WindowSpec::new(&[1_000, 10_000, 60_000], &[(60_000, 10_000), (5_000, 2_000)]);
            let (mut rows, late) = run(&spec, lateness, &arrivals);
            let (want, want_late) = expected(&spec, lateness, &arrivals);
            prop_assert_eq!(late, want_late);
            rows.sort_by(|a, b| (&a.device, &a.item, a.size_ms, a.start).cmp(&(&b.device, &b.item, b.size_ms, b.start)));
            prop_assert_eq!(rows.len(), want.len(), "windows emitted once each");
            for (got, want) in rows.iter().zip(&want) {
                prop_assert_eq!((&*got.device, &*got.item, got.size_ms, got.start), (want.key.0.as_str(), want.key.1.as_str(), want.size, want.start));
                if let Err(e) = check(got, want) {
                    return Err(TestCaseError::fail(e));
                }
            }
        }
    }

    #[test]
    fn an_idle_key_closes_its_windows_at_wall_clock_speed() {
        let spec = WindowSpec::new(&[1_000], &[]);
        let mut key = KeyWindows::new(&spec);
        let mut out = Vec::new();
        key.insert(&spec, 2_000, 10_500, 1.0, 100_000, &mut out);
        assert!(out.is_empty());
        // Idle for less than the timeout: nothing moves.
        key.advance_idle(&spec, 2_000, 2_000, 101_000, &mut out);
        assert_eq!(key.watermark(), Some(8_500));
        // 3 s of wall clock after the last sample = 1 s past the idle timeout: +1 s.
        key.advance_idle(&spec, 2_000, 2_000, 103_000, &mut out);
        assert_eq!(key.watermark(), Some(9_500));
        assert!(out.is_empty());
        // Another 2 s: the watermark reaches 11 500, past the window [10 000, 11 000).
        key.advance_idle(&spec, 2_000, 2_000, 105_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].aggregate.count), (10_000, 1));
        // The watermark never jumped to the wall clock.
        assert_eq!(key.watermark(), Some(11_500));
    }

    /// Issue 19: the idle advance closes a quiet key's windows but does not eat its lateness:
    /// a sample is late only below its key's newest time minus the lateness, or in a window
    /// already emitted.
    #[test]
    fn an_idle_advance_makes_only_samples_of_emitted_windows_late() {
        let spec = WindowSpec::new(&[1_000], &[]);
        let mut key = KeyWindows::new(&spec);
        let mut out = Vec::new();
        assert!(key.insert(&spec, 2_000, 10_500, 1.0, 100_000, &mut out));
        // 3 s quiet: the frontier moves a second on (to 9 500), passing no window.
        key.advance_idle(&spec, 2_000, 2_000, 103_000, &mut out);
        assert_eq!(key.watermark(), Some(9_500));
        // Buffered data a second older arrives: within the lateness, not late.
        assert!(key.insert(&spec, 2_000, 9_000, 2.0, 103_000, &mut out));
        assert!(key.insert(&spec, 2_000, 8_500, 3.0, 103_000, &mut out));
        assert!(
            !key.insert(&spec, 2_000, 8_499, 3.0, 103_000, &mut out),
            "older than lateness"
        );
        assert!(out.is_empty());
        // A long pause: the frontier passes [8 000, 9 000), [9 000, 10 000), [10 000, 11 000).
        key.advance_idle(&spec, 2_000, 2_000, 110_000, &mut out);
        let emitted: Vec<(i64, u64)> = out.iter().map(|c| (c.start, c.aggregate.count)).collect();
        assert_eq!(emitted, vec![(8_000, 1), (9_000, 1), (10_000, 1)]);
        // Data for those windows is late; newer data is not, though the idle frontier (13 500)
        // is past it, and the empty window it falls in is emitted once, whole.
        assert!(!key.insert(&spec, 2_000, 10_800, 4.0, 110_000, &mut out));
        assert!(key.insert(&spec, 2_000, 11_200, 5.0, 110_000, &mut out));
        assert!(key.insert(&spec, 2_000, 11_300, 6.0, 110_000, &mut out));
        assert_eq!(
            key.watermark(),
            Some(11_000),
            "back to the last emitted window"
        );
        out.clear();
        key.advance_idle(&spec, 2_000, 2_000, 120_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].aggregate.count), (11_000, 2));
    }

    /// Times at the ends of `i64` (which `source.limits` keeps out) still cannot overflow the
    /// window arithmetic; non-finite values are never aggregated.
    #[test]
    fn extreme_times_and_values_do_not_overflow() {
        let spec = WindowSpec::new(&[1_000, 86_400_000], &[(60_000, 10_000), (25, 10)]);
        let mut key = KeyWindows::new(&spec);
        let mut out = Vec::new();
        for ts in [0, i64::MAX, i64::MIN, i64::MAX - 1, -1, i64::MIN + 1] {
            key.insert(&spec, 2_000, ts, 1.0, 0, &mut out);
            key.advance_idle(&spec, i64::MAX, 2_000, i64::MAX, &mut out);
        }
        assert!(key.insert(&spec, 2_000, i64::MAX, f64::INFINITY, 0, &mut out));
        assert!(key.insert(&spec, 2_000, i64::MAX, f64::NAN, 0, &mut out));
        key.flush(&spec, &mut out);
        for closed in &out {
            let row = WindowRow::new("D".into(), "I".into(), closed);
            assert!(row.min.is_finite() && row.max.is_finite(), "{row:?}");
            assert!(row.end >= row.start);
        }
    }
}
