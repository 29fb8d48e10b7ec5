//! Bounds on what a device may send, checked before anything from the wire reaches the
//! engine's state, arithmetic or a store (DESIGN.md §7, "Bounds").
//!
//! Every byte of an NC-Link message is untrusted: one crafted message must not be able to
//! overflow window arithmetic (an event time near `i64::MAX`), exhaust memory (a model whose
//! every item copies a long component path), fill the process-wide id table, or put a string
//! into a store that the store refuses. Each bound here has a default that real machines stay
//! far below, can be changed in `[source.limits]`, and names what exceeding it gets.

use super::error::{DecodeError, Reason};

/// The longest device or item id, in bytes: the SQL schemas store both as `VARCHAR(64)`, and
/// an id every store can take is the same id everywhere.
pub const MAX_ID_BYTES: usize = 64;

/// 1970-01-01T00:00:00Z.
pub const DEFAULT_EARLIEST_MS: i64 = 0;
/// 2200-01-01T00:00:00Z: far inside every store's range (InfluxDB's nanoseconds end in 2262,
/// MySQL's `DATETIME` in 9999) and inside any arithmetic on milliseconds.
pub const DEFAULT_LATEST_MS: i64 = 7_258_118_400_000;

/// The bounds of [`WireLimits`] a device's traffic is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLimits {
    /// Earliest event time accepted (inclusive), ms since the epoch; earlier: `bad_time`.
    pub earliest_ms: i64,
    /// Latest event time accepted (exclusive); later: `bad_time`.
    pub latest_ms: i64,
    /// Furthest a value may lie ahead of its message's receive time; further: `bad_time`.
    pub ahead_ms: i64,
    /// Largest model (`probe` of a `Probe/Query/Response`), in bytes of JSON.
    pub model_bytes: usize,
    /// Most data items, configs and channel entries in one model.
    pub model_items: usize,
    /// Deepest nesting of components in a model.
    pub model_depth: usize,
    /// Longest name, type, `dataType` or `number` text of a model entry, in bytes (longer ones
    /// are cut at a character boundary: they are for people).
    pub name_bytes: usize,
    /// Most values of one item in a Query answer (each becomes an indexed item `{id}[i]`).
    pub indexed_values: usize,
    /// Most distinct item ids one device may use (its model's and its samples').
    pub ids_per_device: usize,
    /// Most distinct (device, item) ids over all devices: the dataflow keeps state per key.
    pub keys: usize,
    /// Most bytes of models held over all devices.
    pub models_bytes: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            earliest_ms: DEFAULT_EARLIEST_MS,
            latest_ms: DEFAULT_LATEST_MS,
            ahead_ms: 60_000,
            model_bytes: 512 << 10,
            model_items: 10_000,
            model_depth: 32,
            name_bytes: 256,
            indexed_values: 1_024,
            ids_per_device: 16_384,
            keys: 1_000_000,
            models_bytes: 256 << 20,
        }
    }
}

impl WireLimits {
    /// Whether `ts` is a plausible event time.
    pub fn time_ok(&self, ts: i64) -> bool {
        (self.earliest_ms..self.latest_ms).contains(&ts)
    }

    /// `bad_time` unless every time in `first..=last` is plausible.
    pub fn check_times(&self, first: i64, last: i64) -> Result<(), DecodeError> {
        for ts in [first, last] {
            if !self.time_ok(ts) {
                return Err(DecodeError::new(
                    Reason::BadTime,
                    format!(
                        "event time {ts} ms is outside source.limits [{}, {})",
                        self.earliest_ms, self.latest_ms
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Checks an id from the wire: not empty, at most [`MAX_ID_BYTES`], and no control or
/// bidirectional-override characters (which make a log line or a dashboard show another
/// id than the one stored). `what` names the id in the message ("device id", "item id").
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("empty {what}"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "{what} longer than {MAX_ID_BYTES} bytes: {}",
            shown(id)
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(format!(
            "{what} with the control character U+{:04X}: {}",
            c as u32,
            shown(id)
        ));
    }
    Ok(())
}

/// Unicode's explicit bidirectional formatting characters (UAX #9) and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Most characters of a device-provided string shown in a log line or an error.
pub const SHOWN_CHARS: usize = 80;

/// A device-provided string for a log line or an error message: at most [`SHOWN_CHARS`]
/// characters, debug-escaped (control characters visible), `…` when cut.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{:?}…", &text[..at]),
        None => format!("{text:?}"),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_free_of_control_characters() {
        assert!(check_id("item id", "0103502202").is_ok());
        assert!(check_id("item id", "01035430[12]").is_ok());
        assert!(check_id("item id", "主轴").is_ok());
        assert!(check_id("item id", &"x".repeat(MAX_ID_BYTES)).is_ok());
        let long = check_id("item id", &"x".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert!(long.contains("longer than 64"), "{long}");
        assert!(long.len() < 200, "the id is not repeated whole: {long}");
        assert!(check_id("item id", "").is_err());
        for bad in [
            "a\nb",
            "a\u{7}",
            "a\u{202E}gnp.exe",
            "\u{2066}x",
            "a\u{200F}",
        ] {
            let e = check_id("device id", bad).unwrap_err();
            assert!(e.contains("control character U+"), "{e}");
        }
    }

    #[test]
    fn times_are_checked_against_the_range() {
        let limits = WireLimits::default();
        assert!(limits.check_times(0, DEFAULT_LATEST_MS - 1).is_ok());
        for (first, last) in [(-1, 0), (0, DEFAULT_LATEST_MS), (i64::MAX, i64::MAX)] {
            let e = limits.check_times(first, last).unwrap_err();
            assert_eq!(e.reason, Reason::BadTime);
        }
    }

    #[test]
    fn shown_and_cut_keep_characters_whole() {
        assert_eq!(shown("a\u{202E}b"), "\"a\\u{202e}b\"");
        let long = "é".repeat(100);
        let s = shown(&long);
        assert!(s.ends_with('…') && s.chars().filter(|c| *c == 'é').count() == SHOWN_CHARS);
        assert_eq!(cut("éé", 3), "é");
        assert_eq!(cut("abc", 5), "abc");
    }
}
