//! The window state of one (device, item) key: its watermark and the panes of its open windows.
//!
//! A key's watermark is its highest event time minus `allowed_lateness`; it never goes back.
//! When the watermark passes a window's end the window is closed and emitted, once. A key that
//! receives nothing for `idle_timeout` (wall clock) has its *frontier* — where windows close —
//! advanced at wall-clock speed from its watermark, so windows close on a quiet system;
//! recordings replayed faster than real time are unaffected as long as keys keep receiving
//! data.
//!
//! A sample is *late* — refused here (the caller counts it; raw sinks still get it) — when it
//! is older than its key's watermark, or falls before the end of a window already emitted.
//! Nothing else makes it late: not the wall clock, not another key. So the idle advance
//! closes a quiet key's windows without eating its lateness: when the key sends again (a
//! machine uploading what it buffered during a drop, seconds old), the frontier goes back to
//! the end of the last window actually emitted — windows it passed without emitting were
//! empty, and may still fill.
//!
//! Samples are added to one pane per distinct pane width (not to every window), and windows are
//! assembled from panes when they close; closing work happens only when the watermark crosses
//! the next window boundary, so most samples cost two pane updates.
//!
//! Event times are checked where they enter (`source.limits`), but this arithmetic does not
//! rely on it: every step saturates, so no time a caller passes can overflow here.

use std::collections::{BTreeMap, BTreeSet};

use super::aggregate::Aggregate;
use super::spec::WindowSpec;

/// A window that closed, with its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub size: i64,
    pub start: i64,
    pub aggregate: Aggregate,
}

/// The state of one key.
#[derive(Debug, Clone)]
pub struct KeyWindows {
    max_ts: Option<i64>,
    /// Windows ending at or before this are closed: the watermark, or beyond it while the key
    /// is idle.
    watermark: i64,
    /// The end of the last window emitted (`i64::MIN`: none yet).
    emitted_until: i64,
    /// Wall-clock ms of the last sample.
    last_arrival: i64,
    /// Arrival counter, for first/last ties.
    seq: u64,
    /// Smallest window end above the watermark, over all families.
    next_boundary: i64,
    /// Open panes per pane width (indexed like `WindowSpec::panes`).
    panes: Vec<BTreeMap<i64, Aggregate>>,
}

impl KeyWindows {
    pub fn new(spec: &WindowSpec) -> KeyWindows {
        KeyWindows {
            max_ts: None,
            watermark: i64::MIN,
            emitted_until: i64::MIN,
            last_arrival: i64::MIN,
            seq: 0,
            next_boundary: i64::MIN,
            panes: vec![BTreeMap::new(); spec.panes.len()],
        }
    }

    pub fn watermark(&self) -> Option<i64> {
        self.max_ts.map(|_| self.watermark)
    }

    /// Wall-clock ms of the last sample.
    pub fn last_arrival(&self) -> i64 {
        self.last_arrival
    }

    pub fn has_open_windows(&self) -> bool {
        self.panes.iter().any(|p| !p.is_empty())
    }

    /// Adds a numeric sample that arrived at wall-clock `now`; returns false when it was late
    /// (and not added). Windows the sample's watermark advance closes are appended to `out`.
    pub fn insert(
        &mut self,
        spec: &WindowSpec,
        lateness: i64,
        ts: i64,
        value: f64,
        now: i64,
        out: &mut Vec<ClosedWindow>,
    ) -> bool {
        self.last_arrival = now;
        if let Some(max_ts) = self.max_ts {
            // Late: older than the key's own newest time allows, or in an emitted window.
            let on_time = max_ts.saturating_sub(lateness).max(self.emitted_until);
            if ts < on_time {
                return false;
            }
            if self.watermark > on_time {
                // The key sends again: the idle advance passed only empty windows; take it
                // back to where windows were emitted, so they may still fill.
                self.watermark = on_time;
                self.next_boundary = next_boundary(spec, on_time);
            }
        }
        if !value.is_finite() {
            // Not a number a window can use (the operator passes none); not late either.
            return true;
        }
        self.seq += 1;
        let seq = self.seq;
        for (panes, &width) in self.panes.iter_mut().zip(&spec.panes) {
            let start = pane_start(ts, width);
            match panes.last_entry() {
                Some(mut last) if *last.key() == start => last.get_mut().add(ts, seq, value),
                _ => match panes.get_mut(&start) {
                    Some(pane) => pane.add(ts, seq, value),
                    None => {
                        panes.insert(start, Aggregate::new(ts, seq, value));
                    }
                },
            }
        }
        if self.max_ts.is_none_or(|m| ts > m) {
            self.max_ts = Some(ts);
            self.advance(spec, ts.saturating_sub(lateness), out);
        }
        true
    }

    /// Advances an idle key's watermark with the wall clock: once nothing arrived for
    /// `idle_timeout`, the watermark moves on from where the data left it at wall-clock speed.
    pub fn advance_idle(
        &mut self,
        spec: &WindowSpec,
        lateness: i64,
        idle_timeout: i64,
        now: i64,
        out: &mut Vec<ClosedWindow>,
    ) {
        let Some(max_ts) = self.max_ts else { return };
        let idle_for = now
            .saturating_sub(self.last_arrival)
            .saturating_sub(idle_timeout);
        if idle_for > 0 {
            self.advance(
                spec,
                max_ts.saturating_sub(lateness).saturating_add(idle_for),
                out,
            );
        }
    }

    /// Closes every open window (end of input).
    pub fn flush(&mut self, spec: &WindowSpec, out: &mut Vec<ClosedWindow>) {
        if self.has_open_windows() {
            self.close(spec, self.watermark, i64::MAX, out);
            self.panes.iter_mut().for_each(BTreeMap::clear);
        }
    }

    fn advance(&mut self, spec: &WindowSpec, to: i64, out: &mut Vec<ClosedWindow>) {
        if to <= self.watermark {
            return;
        }
        let from = self.watermark;
        self.watermark = to;
        if to < self.next_boundary {
            return;
        }
        let emitted = out.len();
        self.close(spec, from, to, out);
        if let Some(last) = out[emitted..]
            .iter()
            .map(|c| c.start.saturating_add(c.size))
            .max()
        {
            self.emitted_until = self.emitted_until.max(last);
        }
        self.prune(spec, to);
        self.next_boundary = next_boundary(spec, to);
    }

    /// Emits the windows with an open pane whose end is in `(from, to]`, ordered by end, size
    /// and start.
    fn close(&self, spec: &WindowSpec, from: i64, to: i64, out: &mut Vec<ClosedWindow>) {
        let mut due: BTreeSet<(i64, i64, i64, usize)> = BTreeSet::new();
        for (family, &pane_index) in spec.families.iter().zip(&spec.family_pane) {
            for &pane in self.panes[pane_index].keys() {
                for start in family.starts_containing(pane) {
                    let end = start.saturating_add(family.size);
                    if end > from && end <= to {
                        due.insert((end, family.size, start, pane_index));
                    }
                }
            }
        }
        // The same (size, start) from two families is one window.
        let mut last: Option<(i64, i64)> = None;
        for (end, size, start, pane_index) in due {
            if last == Some((size, start)) {
                continue;
            }
            last = Some((size, start));
            let mut panes = self.panes[pane_index].range(start..end).map(|(_, a)| a);
            if let Some(first) = panes.next() {
                let mut aggregate = first.clone();
                panes.for_each(|p| aggregate.merge(p));
                out.push(ClosedWindow {
                    size,
                    start,
                    aggregate,
                });
            }
        }
    }

    /// Drops panes every window of which has closed.
    fn prune(&mut self, spec: &WindowSpec, watermark: i64) {
        for (pane_index, panes) in self.panes.iter_mut().enumerate() {
            let families: Vec<_> = spec
                .families
                .iter()
                .zip(&spec.family_pane)
                .filter(|(_, p)| **p == pane_index)
                .map(|(f, _)| *f)
                .collect();
            panes.retain(|&pane, _| {
                families
                    .iter()
                    .any(|f| pane_start(pane, f.every).saturating_add(f.size) > watermark)
            });
        }
    }
}

/// The start of the `width`-wide span holding `ts` (aligned to the epoch), saturating.
pub(super) fn pane_start(ts: i64, width: i64) -> i64 {
    ts.div_euclid(width).saturating_mul(width)
}

/// The smallest window end above `to`, over all families.
fn next_boundary(spec: &WindowSpec, to: i64) -> i64 {
    spec.families
        .iter()
        .map(|f| {
            pane_start(to.saturating_sub(f.size), f.every)
                .saturating_add(f.every)
                .saturating_add(f.size)
        })
        .min()
        .unwrap_or(i64::MAX)
}
