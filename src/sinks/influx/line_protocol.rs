//! InfluxDB line protocol for millstream's two measurements (DESIGN.md §5):
//!
//! ```text
//! samples,device=<d>,item=<i> value=<float> <ts ms>        (or text="<string>")
//! windows,device=<d>,item=<i>,size=10s count=<n>i,min=…,max=…,… <start ms>
//! ```
//!
//! Tag values escape `,`, `=` and space with a backslash; line protocol cannot carry a line
//! break in a tag, so `\n` and `\r` there become spaces. A backslash in a tag value that ends
//! it, or stands before one of those characters or another backslash, is escaped too: left
//! alone it would swallow the separator after it and break the line (InfluxDB 1.x keeps such a
//! backslash doubled; 2.x reads it back single). String fields escape `"` and `\`; a line
//! break cannot travel in a string field either (InfluxDB splits lines first), so it is written
//! as the two characters `\n` (`\r` likewise); texts are cut to [`MAX_TEXT`] bytes, InfluxDB's
//! limit for a string field.
//! Non-finite floats (NaN, ±inf) cannot be written: such fields are left out, and a point left
//! without fields is skipped (counted by the caller).
//!
//! InfluxDB keeps one point per series and timestamp, so two samples of one (device, item) in
//! the same millisecond leave the later-written one, where the SQL stores keep the first and
//! the lake keeps both (documented in DESIGN.md §5 of docs/).

use std::fmt::Write as _;

use crate::config::HumanDuration;
use crate::sample::Sample;
use crate::window::WindowRow;

/// Longest string field written, in bytes (InfluxDB refuses longer ones).
pub const MAX_TEXT: usize = 65_535;

/// Appends a tag value, escaped.
fn tag(out: &mut String, value: &str) {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            '\\' if matches!(
                chars.peek(),
                None | Some(',' | '=' | ' ' | '\n' | '\r' | '\\')
            ) =>
            {
                out.push_str("\\\\")
            }
            c => out.push(c),
        }
    }
}

/// Appends a string field value, quoted and escaped.
fn string_field(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `key=float` (comma-separated after the first field) when the value is finite.
fn float_field(out: &mut String, first: &mut bool, key: &str, value: f64) {
    if !value.is_finite() {
        return;
    }
    if !*first {
        out.push(',');
    }
    *first = false;
    // Debug prints the shortest exact form, with an exponent for very large or small values
    // ("1e300", not 301 digits), which InfluxDB parses.
    let _ = write!(out, "{key}={value:?}");
}

fn series(out: &mut String, measurement: &str, device: &str, item: &str) {
    out.push_str(measurement);
    out.push_str(",device=");
    tag(out, device);
    out.push_str(",item=");
    tag(out, item);
}

/// Appends one sample's line; `false` (nothing appended) when it has nothing writable.
pub fn sample(out: &mut String, s: &Sample) -> bool {
    let mark = out.len();
    series(out, "samples", &s.device, &s.item);
    out.push(' ');
    let mut first = true;
    if let Some(v) = s.value {
        float_field(out, &mut first, "value", v);
    }
    if first && let Some(text) = &s.text {
        out.push_str("text=");
        string_field(out, crate::nclink::limits::cut(text, MAX_TEXT));
        first = false;
    }
    if first {
        out.truncate(mark);
        return false;
    }
    let _ = writeln!(out, " {}", s.ts);
    true
}

/// Appends one window's line (time = window start).
pub fn window(out: &mut String, w: &WindowRow) {
    series(out, "windows", &w.device, &w.item);
    out.push_str(",size=");
    let size = HumanDuration::from_millis(w.size_ms.max(0) as u64).to_string();
    tag(out, &size);
    let _ = write!(out, " count={}i", w.count);
    let mut first = false;
    for (key, value) in crate::window::STATS.into_iter().zip(w.stats()) {
        float_field(out, &mut first, key, value);
    }
    let _ = writeln!(out, " {}", w.start);
}

#[cfg(test)]
mod tests {
    use crate::id::Id;

    use super::*;

    fn line(s: &Sample) -> String {
        let mut out = String::new();
        sample(&mut out, s);
        out
    }

    #[test]
    fn escapes_awkward_tags_and_strings() {
        let d: Id = Id::from("机床 A,1=x");
        let i: Id = Id::from("item\nnext");
        let mut s = Sample::number(d.clone(), i.clone(), 1_700_000_000_123, 0.5);
        assert_eq!(
            line(&s),
            "samples,device=机床\\ A\\,1\\=x,item=item\\ next value=0.5 1700000000123\n"
        );
        s.value = None;
        s.text = Some("say \"hi\"\\ now\nplease".into());
        assert_eq!(
            line(&s),
            "samples,device=机床\\ A\\,1\\=x,item=item\\ next text=\"say \\\"hi\\\"\\\\ now\\nplease\" 1700000000123\n"
        );
    }

    #[test]
    fn non_finite_values_are_left_out() {
        let d: Id = Id::from("d");
        let s = Sample::number(d.clone(), d.clone(), 1, f64::NAN);
        assert_eq!(line(&s), "");
        let s = Sample::number(d.clone(), d, 1, 1e300);
        assert_eq!(line(&s), "samples,device=d,item=d value=1e300 1\n");
    }

    #[test]
    fn windows_carry_size_and_integer_count() {
        let d: Id = Id::from("d");
        let w = WindowRow {
            device: d.clone(),
            item: d,
            size_ms: 10_000,
            start: 20_000,
            end: 30_000,
            count: 1,
            min: 2.0,
            max: 2.0,
            mean: 2.0,
            stddev: None,
            p50: 2.0,
            p95: 2.0,
            p99: 2.0,
            first: 2.0,
            last: 2.0,
        };
        let mut out = String::new();
        window(&mut out, &w);
        assert_eq!(
            out,
            "windows,device=d,item=d,size=10s count=1i,min=2.0,max=2.0,mean=2.0,p50=2.0,p95=2.0,p99=2.0,first=2.0,last=2.0 20000\n"
        );
    }

    #[test]
    fn backslashes_never_swallow_a_separator() {
        for (device, want) in [
            ("end\\", "end\\\\"),
            ("a\\,b", "a\\\\\\,b"),
            ("a\\\\", "a\\\\\\\\"),
            ("mid\\dle", "mid\\dle"),
        ] {
            let d: Id = Id::from(device);
            let i: Id = Id::from("i");
            let got = line(&Sample::number(d, i, 1, 1.0));
            assert_eq!(
                got,
                format!("samples,device={want},item=i value=1.0 1\n"),
                "{device}"
            );
        }
    }
}
