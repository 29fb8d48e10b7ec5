//! The aggregates of one window (or of one pane of windows): count, min, max, mean and variance
//! (Welford, merged with Chan et al.'s formula), first and last by event time, and a quantile
//! sketch. Merging two aggregates gives the aggregate of the union, so larger windows are built
//! from panes.

use super::sketch::Sketch;

/// A value with its event time and arrival order, for first/last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamped {
    pub ts: i64,
    /// Arrival order within the key: ties in `ts` go to the earlier arrival for `first` and the
    /// later for `last`.
    pub seq: u64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sum of squared differences from the mean.
    pub m2: f64,
    pub first: Stamped,
    pub last: Stamped,
    pub sketch: Sketch,
}

impl Aggregate {
    pub fn new(ts: i64, seq: u64, value: f64) -> Aggregate {
        let stamped = Stamped { ts, seq, value };
        let mut sketch = Sketch::default();
        sketch.add(value);
        Aggregate {
            count: 1,
            min: value,
            max: value,
            mean: value,
            m2: 0.0,
            first: stamped,
            last: stamped,
            sketch,
        }
    }

    pub fn add(&mut self, ts: i64, seq: u64, value: f64) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        let stamped = Stamped { ts, seq, value };
        if earlier(&stamped, &self.first) {
            self.first = stamped;
        }
        if !earlier(&stamped, &self.last) {
            self.last = stamped;
        }
        self.sketch.add(value);
    }

    pub fn merge(&mut self, other: &Aggregate) {
        let n = self.count + other.count;
        let delta = other.mean - self.mean;
        let (na, nb) = (self.count as f64, other.count as f64);
        self.mean += delta * nb / n as f64;
        self.m2 += other.m2 + delta * delta * na * nb / n as f64;
        self.count = n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if earlier(&other.first, &self.first) {
            self.first = other.first;
        }
        if !earlier(&other.last, &self.last) {
            self.last = other.last;
        }
        self.sketch.merge(&other.sketch);
    }

    /// Sample standard deviation (n − 1); `None` below two values.
    pub fn stddev(&self) -> Option<f64> {
        (self.count >= 2).then(|| (self.m2.max(0.0) / (self.count - 1) as f64).sqrt())
    }
}

/// Orders by event time, then arrival.
fn earlier(a: &Stamped, b: &Stamped) -> bool {
    (a.ts, a.seq) < (b.ts, b.seq)
}
