//! Durations as people write them in config files and flags: `250ms`, `10s`, `1m`, `1h`, `2d`,
//! or sums such as `1m30s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration parsed from `250ms`, `10s`, `1m30s`, `1h`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(ms))
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

const UNITS: [(&str, f64); 5] = [
    ("ms", 1.0),
    ("s", 1e3),
    ("m", 60e3),
    ("h", 3_600e3),
    ("d", 86_400e3),
];

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("bad duration {text:?}: write a number and a unit, e.g. 250ms, 10s, 1m, 1h");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms = 0.0_f64;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
            rest = &rest[number_len..];
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let (_, scale) = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .ok_or_else(bad)?;
            total_ms += number * scale;
            rest = &rest[unit_len..];
        }
        if !total_ms.is_finite() || total_ms > 1e15 || total_ms.fract() != 0.0 {
            return Err(format!(
                "bad duration {text:?}: must be a whole number of milliseconds"
            ));
        }
        Ok(HumanDuration(Duration::from_millis(total_ms as u64)))
    }
}

impl fmt::Display for HumanDuration {
    /// The shortest exact form: `250ms`, `10s`, `1m`, `90s`, `1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        for (unit, scale) in UNITS.iter().rev() {
            let scale = *scale as u64;
            if ms != 0 && ms.is_multiple_of(scale) {
                return write!(f, "{}{unit}", ms / scale);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::from_str_de(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms, shown) in [
            ("250ms", 250, "250ms"),
            ("10s", 10_000, "10s"),
            ("1m", 60_000, "1m"),
            ("1m30s", 90_000, "90s"),
            ("1.5s", 1_500, "1500ms"),
            ("1h", 3_600_000, "1h"),
            ("2d", 172_800_000, "2d"),
            ("0s", 0, "0ms"),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), shown, "{text}");
        }
        for bad in ["", "10", "5x", "s", "1.2.3s", "-1s", "1 s", "0.5ms"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }
}
