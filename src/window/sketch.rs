//! A mergeable quantile sketch with a guaranteed relative error (DDSketch, Masson et al., VLDB
//! 2019): values fall into logarithmic buckets `(γ^(i-1), γ^i]` with `γ = (1+α)/(1-α)`, and a
//! bucket's representative `2γ^i/(γ+1)` is within `α` of every value in it. Merging two
//! sketches adds their bucket counts, so window panes can be combined exactly.
//!
//! `α` is 0.009 here, under the 1 % the contract promises, leaving room for rounding. Negative
//! values go to a mirrored store; values closer to zero than [`MIN_MAGNITUDE`] count as zero.
//!
//! Memory is bounded whatever the values: a store keeps at most [`MAX_BINS`] buckets, which
//! span magnitudes over a factor of about 10¹⁶; values spread wider have their smallest
//! magnitudes merged into the store's lowest bucket (DDSketch's "collapsing lowest"), so high
//! quantiles keep their accuracy and low ones of such a window lose it. Non-finite values are
//! not numbers a quantile can use and are ignored (the window operator never passes them).

/// Relative accuracy of every quantile.
pub const RELATIVE_ACCURACY: f64 = 0.009;
/// Magnitudes below this are counted as zero.
pub const MIN_MAGNITUDE: f64 = 1e-9;
/// Most buckets per store (4 bytes each): γ^2048 ≈ 1.0e16.
pub const MAX_BINS: usize = 2_048;

/// Bucket counts over a contiguous range of indexes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    offset: i32,
    counts: Vec<u32>,
    total: u64,
}

impl Store {
    fn add(&mut self, index: i32, n: u32) {
        let mut index = index;
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        } else if index < self.offset {
            // Keep the top MAX_BINS buckets: a lower index joins the lowest one kept.
            let top = self.offset as i64 + self.counts.len() as i64 - 1;
            let lowest = (top - MAX_BINS as i64 + 1).max(index as i64) as i32;
            if lowest < self.offset {
                let grow = (self.offset - lowest) as usize;
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.offset = lowest;
            }
            index = index.max(self.offset);
        } else if index as i64 >= self.offset as i64 + self.counts.len() as i64 {
            let len = (index as i64 - self.offset as i64 + 1) as usize;
            if len > MAX_BINS {
                // Collapse the lowest buckets into the lowest one kept.
                let drop = len - MAX_BINS;
                let collapsed: u32 = self
                    .counts
                    .drain(..drop.min(self.counts.len()))
                    .fold(0u32, u32::saturating_add);
                self.offset = index - MAX_BINS as i32 + 1;
                if self.counts.is_empty() {
                    self.counts.push(0);
                }
                self.counts[0] = self.counts[0].saturating_add(collapsed);
            }
            self.counts.resize((index - self.offset) as usize + 1, 0);
        }
        let slot = &mut self.counts[(index - self.offset) as usize];
        *slot = slot.saturating_add(n);
        self.total += u64::from(n);
    }

    fn merge(&mut self, other: &Store) {
        for (i, &n) in other.counts.iter().enumerate() {
            if n > 0 {
                self.add(other.offset + i as i32, n);
            }
        }
    }

    /// The bucket index holding the value of 0-based `rank` (counting from the low end).
    fn index_at(&self, rank: u64) -> i32 {
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen > rank {
                return self.offset + i as i32;
            }
        }
        self.offset + self.counts.len() as i32 - 1
    }
}

/// A quantile sketch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    positive: Store,
    negative: Store,
    zeros: u64,
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

fn ln_gamma() -> f64 {
    // Computed once; `ln` of a constant is folded by the optimiser only in const context.
    static LN_GAMMA: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *LN_GAMMA.get_or_init(|| gamma().ln())
}

fn index_of(magnitude: f64) -> i32 {
    (magnitude.ln() / ln_gamma()).ceil() as i32
}

fn value_of(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

impl Sketch {
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if value > MIN_MAGNITUDE {
            self.positive.add(index_of(value), 1);
        } else if value < -MIN_MAGNITUDE {
            self.negative.add(index_of(-value), 1);
        } else {
            self.zeros += 1;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        self.zeros += other.zeros;
    }

    pub fn count(&self) -> u64 {
        self.positive.total + self.negative.total + self.zeros
    }

    /// The `q`-quantile (0 ≤ q ≤ 1): an estimate of the value of 0-based rank
    /// `floor(q × (n − 1))` in sorted order, within the relative accuracy. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        let negatives = self.negative.total;
        if rank < negatives {
            // Negative values sorted ascending are the negative store from its high end.
            let index = self.negative.index_at(negatives - 1 - rank);
            Some(-value_of(index))
        } else if rank < negatives + self.zeros {
            Some(0.0)
        } else {
            Some(value_of(
                self.positive.index_at(rank - negatives - self.zeros),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_within_one_percent() {
        let mut rng = Rng::new(3);
        for case in 0..200 {
            let n = rng.int(1, 2_000) as usize;
            let scale = 10f64.powi(rng.int(-3, 6) as i32);
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    let v = rng.range(-1.0, 1.0) * scale;
                    if case % 3 == 0 {
                        v.abs()
                    } else if rng.chance(0.05) {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            let mut sketch = Sketch::default();
            values.iter().for_each(|v| sketch.add(*v));
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.01, 0.25, 0.5, 0.95, 0.99, 1.0] {
                let (want, got) = (exact(&sorted, q), sketch.quantile(q).unwrap());
                assert!(
                    (got - want).abs() <= 0.01 * want.abs(),
                    "case {case} q {q}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn merging_equals_adding() {
        let mut rng = Rng::new(4);
        let values: Vec<f64> = (0..1_000).map(|_| rng.range(-50.0, 500.0)).collect();
        let mut whole = Sketch::default();
        values.iter().for_each(|v| whole.add(*v));
        let mut a = Sketch::default();
        let mut b = Sketch::default();
        values[..400].iter().for_each(|v| a.add(*v));
        values[400..].iter().for_each(|v| b.add(*v));
        a.merge(&b);
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(a.quantile(q), whole.quantile(q));
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn memory_is_bounded_whatever_the_values() {
        let mut sketch = Sketch::default();
        for v in [
            1.0,
            1e-8,
            f64::MIN_POSITIVE,
            1e-300,
            1e300,
            -f64::MAX,
            -1e-8,
            5.0,
        ] {
            sketch.add(v);
        }
        sketch.add(f64::INFINITY);
        sketch.add(f64::NAN);
        sketch.add(f64::NEG_INFINITY);
        assert!(sketch.positive.counts.len() <= MAX_BINS);
        assert!(sketch.negative.counts.len() <= MAX_BINS);
        assert_eq!(sketch.count(), 8, "non-finite values are ignored");
        // The top of a wide window keeps its accuracy.
        let top = sketch.quantile(1.0).unwrap();
        assert!((top - 1e300).abs() <= 0.01 * 1e300, "{top}");
        let mut merged = Sketch::default();
        let mut low = Sketch::default();
        low.add(1e-8);
        merged.add(1e200);
        merged.merge(&low);
        assert!(merged.positive.counts.len() <= MAX_BINS);
        assert_eq!(merged.count(), 2);
    }
}
