//! Pacing a replay by its recorded times: `max` never waits; `Nx` keeps recorded time running
//! N times as fast as the wall clock, from the first message on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the machine allows.
    Max,
    /// Recorded time runs this many times as fast as the wall clock (`1x` = as recorded).
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(text: &str) -> Result<Speed, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let factor = text
            .strip_suffix(['x', 'X'])
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n > 0.0);
        match factor {
            Some(n) => Ok(Speed::Times(n)),
            None => Err(format!(
                "speed `{text}`: expected `max`, `1x`, or a positive factor like `10x` or `0.5x`"
            )),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Times(n) => write!(f, "{n}x"),
        }
    }
}

/// Waits until a recorded time is due.
pub struct Pacer {
    speed: Speed,
    origin: Option<(i64, Instant)>,
}

/// Sleeps no longer than this at once, so a stop request is seen.
const SLICE: Duration = Duration::from_millis(50);

impl Pacer {
    pub fn new(speed: Speed) -> Pacer {
        Pacer {
            speed,
            origin: None,
        }
    }

    /// Returns when recorded time `ts` is due (at once for `max`, or when `stop` is set).
    pub fn wait(&mut self, ts: i64, stop: &AtomicBool) {
        let Speed::Times(factor) = self.speed else {
            return;
        };
        let (first, started) = *self.origin.get_or_insert((ts, Instant::now()));
        let offset_ms = (ts - first).max(0) as f64 / factor;
        let due = started + Duration::from_secs_f64(offset_ms / 1000.0);
        loop {
            let now = Instant::now();
            if now >= due || stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - now).min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("max".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("1x".parse::<Speed>().unwrap(), Speed::Times(1.0));
        assert_eq!("2.5x".parse::<Speed>().unwrap(), Speed::Times(2.5));
        for bad in ["0x", "-1x", "fast", "10", "x", "infx"] {
            let e = bad.parse::<Speed>().unwrap_err();
            assert!(e.contains("expected `max`"), "{bad}: {e}");
        }
    }

    #[test]
    fn ten_times_speed_waits_a_tenth_of_recorded_time() {
        let stop = AtomicBool::new(false);
        let mut pacer = Pacer::new(Speed::Times(10.0));
        let started = Instant::now();
        pacer.wait(1_000, &stop);
        pacer.wait(2_000, &stop); // 1 s recorded = 100 ms
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        let mut max = Pacer::new(Speed::Max);
        let started = Instant::now();
        max.wait(0, &stop);
        max.wait(3_600_000, &stop);
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
