//! Which windows exist: tumbling sizes and sliding (size, every) pairs from the configuration,
//! reduced to a set of *families* (size, every) that never produce the same window twice, each
//! with the pane width its windows are assembled from.
//!
//! A tumbling window of size S is the sliding family (S, S). A tumbling family is dropped when a
//! sliding family of the same size already produces its windows (S divisible by the slide).
//! Windows of a family are `[k·every, k·every + size)`; a family's pane width is
//! `gcd(size, every)`, so every window is a whole number of panes.

/// One family of windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub size: i64,
    pub every: i64,
}

impl Family {
    pub fn pane(&self) -> i64 {
        gcd(self.size, self.every)
    }

    /// Starts of this family's windows that contain time `t`.
    pub fn starts_containing(&self, t: i64) -> impl Iterator<Item = i64> + use<> {
        let (size, every) = (self.size, self.every);
        let last = super::key_windows::pane_start(t, every);
        let windows = (size - 1) / every + 1;
        let first = last.saturating_sub((windows - 1).saturating_mul(every));
        (0..windows)
            .map(move |k| first.saturating_add(k.saturating_mul(every)))
            .take_while(move |s| *s <= last)
            .filter(move |s| s.saturating_add(size) > t)
    }
}

/// The window families of a configuration, with their distinct pane widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub families: Vec<Family>,
    /// Distinct pane widths; `family_pane[i]` indexes this for family `i`.
    pub panes: Vec<i64>,
    pub family_pane: Vec<usize>,
    pub max_size: i64,
}

impl WindowSpec {
    /// From tumbling sizes and sliding (size, every) pairs, in milliseconds (all positive).
    pub fn new(tumbling: &[i64], sliding: &[(i64, i64)]) -> WindowSpec {
        let mut families: Vec<Family> = sliding
            .iter()
            .map(|&(size, every)| Family { size, every })
            .collect();
        for &size in tumbling {
            let covered = sliding.iter().any(|&(s, e)| s == size && size % e == 0);
            if !covered {
                families.push(Family { size, every: size });
            }
        }
        families.sort();
        families.dedup();
        let mut panes: Vec<i64> = families.iter().map(Family::pane).collect();
        panes.sort();
        panes.dedup();
        let family_pane = families
            .iter()
            .map(|f| {
                panes
                    .iter()
                    .position(|p| *p == f.pane())
                    .expect("collected above")
            })
            .collect();
        let max_size = families.iter().map(|f| f.size).max().unwrap_or(0);
        WindowSpec {
            families,
            panes,
            family_pane,
            max_size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_windows_share_panes_and_never_repeat() {
        let spec = WindowSpec::new(&[1_000, 10_000, 60_000], &[(60_000, 10_000)]);
        // 1 m tumbling is produced by the 1 m / 10 s sliding family.
        assert_eq!(
            spec.families,
            vec![
                Family {
                    size: 1_000,
                    every: 1_000
                },
                Family {
                    size: 10_000,
                    every: 10_000
                },
                Family {
                    size: 60_000,
                    every: 10_000
                },
            ]
        );
        assert_eq!(spec.panes, vec![1_000, 10_000]);
        assert_eq!(spec.max_size, 60_000);
    }

    #[test]
    fn starts_containing() {
        let f = Family {
            size: 60_000,
            every: 10_000,
        };
        let starts: Vec<i64> = f.starts_containing(65_000).collect();
        assert_eq!(starts, vec![10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
        let t = Family {
            size: 1_000,
            every: 1_000,
        };
        assert_eq!(t.starts_containing(-1).collect::<Vec<_>>(), vec![-1_000]);
        let odd = Family {
            size: 25,
            every: 10,
        };
        assert_eq!(
            odd.starts_containing(30).collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
        assert_eq!(odd.pane(), 5);
    }
}
