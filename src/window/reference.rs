//! A straightforward reference for the windows, for tests: replays arrivals key by key to decide
//! which samples are late, then computes every window of every family by brute force over the
//! accepted samples (two-pass variance, exact ranks).

use std::collections::{BTreeMap, BTreeSet};

use super::spec::WindowSpec;

/// One arrival: key, event time, value.
pub type Arrival = ((String, String), i64, f64);

/// Expected window: key, size, start, then count, min, max, mean, stddev, exact p50/p95/p99,
/// first, last.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub key: (String, String),
    pub size: i64,
    pub start: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: Option<f64>,
    pub quantiles: [f64; 3],
    pub first: f64,
    pub last: f64,
}

/// The windows every key ends with after all `arrivals` (in order) and a final flush, and the
/// number of late samples.
pub fn expected(spec: &WindowSpec, lateness: i64, arrivals: &[Arrival]) -> (Vec<Expected>, u64) {
    // Per key: (event time, arrival, value) of the samples that were not late.
    type Accepted = BTreeMap<(String, String), Vec<(i64, usize, f64)>>;
    let mut accepted: Accepted = BTreeMap::new();
    let mut max_ts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut late = 0;
    for (seq, (key, ts, value)) in arrivals.iter().enumerate() {
        if let Some(max) = max_ts.get(key)
            && *ts < max - lateness
        {
            late += 1;
            continue;
        }
        let max = max_ts.entry(key.clone()).or_insert(*ts);
        *max = (*max).max(*ts);
        accepted
            .entry(key.clone())
            .or_default()
            .push((*ts, seq, *value));
    }
    let mut out = Vec::new();
    for (key, samples) in accepted {
        let mut windows: BTreeSet<(i64, i64)> = BTreeSet::new();
        for family in &spec.families {
            for (ts, _, _) in &samples {
                for start in family.starts_containing(*ts) {
                    windows.insert((family.size, start));
                }
            }
        }
        for (size, start) in windows {
            let inside: Vec<&(i64, usize, f64)> = samples
                .iter()
                .filter(|(ts, _, _)| *ts >= start && *ts < start + size)
                .collect();
            let n = inside.len();
            let values: Vec<f64> = inside.iter().map(|s| s.2).collect();
            let mean = values.iter().sum::<f64>() / n as f64;
            let stddev = (n >= 2).then(|| {
                (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            });
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = |q: f64| sorted[(q * (n - 1) as f64).floor() as usize];
            let first = inside.iter().min_by_key(|s| (s.0, s.1)).unwrap().2;
            let last = inside.iter().max_by_key(|s| (s.0, s.1)).unwrap().2;
            out.push(Expected {
                key: key.clone(),
                size,
                start,
                count: n as u64,
                min: sorted[0],
                max: sorted[n - 1],
                mean,
                stddev,
                quantiles: [rank(0.5), rank(0.95), rank(0.99)],
                first,
                last,
            });
        }
    }
    (out, late)
}

/// Checks a computed window against the reference: exact counts, extremes and first/last,
/// float aggregates to 1e-9 relative, quantiles within 1 %.
pub fn check(got: &super::WindowRow, want: &Expected) -> Result<(), String> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let within = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.abs();
    let ctx = format!("{:?} size {} start {}", want.key, want.size, want.start);
    if got.count != want.count || got.min != want.min || got.max != want.max {
        return Err(format!(
            "{ctx}: count/min/max {:?} vs {:?}",
            (got.count, got.min, got.max),
            (want.count, want.min, want.max)
        ));
    }
    if got.first != want.first || got.last != want.last {
        return Err(format!(
            "{ctx}: first/last {:?} vs {:?}",
            (got.first, got.last),
            (want.first, want.last)
        ));
    }
    if !close(got.mean, want.mean) {
        return Err(format!("{ctx}: mean {} vs {}", got.mean, want.mean));
    }
    match (got.stddev, want.stddev) {
        (None, None) => {}
        (Some(a), Some(b)) if (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0) => {}
        other => return Err(format!("{ctx}: stddev {other:?}")),
    }
    for (got, want) in [got.p50, got.p95, got.p99].into_iter().zip(want.quantiles) {
        if !within(got, want) {
            return Err(format!("{ctx}: quantile {got} vs {want}"));
        }
    }
    Ok(())
}
