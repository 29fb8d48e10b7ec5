//! Calendar arithmetic on UTC milliseconds, for partition names (`date=YYYY-MM-DD/hour=HH`) and
//! SQL timestamps, on the hot path without a date-time library (Howard Hinnant's days ↔ civil
//! date algorithms), and the parsing of times people give (`--from`, `from=`), which is
//! strict and goes through chrono.

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Broken-down UTC time of `ms` since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Utc {
    pub fn from_ms(ms: i64) -> Utc {
        let days = ms.div_euclid(86_400_000);
        let rest = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: (rest / 3_600_000) as u32,
            minute: (rest / 60_000 % 60) as u32,
            second: (rest / 1_000 % 60) as u32,
            millis: (rest % 1_000) as u32,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// [`Utc::sql`] without the formatting machinery (the SQL sinks format one per row).
    pub fn sql_fast(&self) -> String {
        let mut b = *b"0000-00-00 00:00:00.000";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        if !(0..=9999).contains(&self.year) {
            return self.sql();
        }
        put(0, 4, self.year as u64);
        put(5, 2, u64::from(self.month));
        put(8, 2, u64::from(self.day));
        put(11, 2, u64::from(self.hour));
        put(14, 2, u64::from(self.minute));
        put(17, 2, u64::from(self.second));
        put(20, 3, u64::from(self.millis));
        String::from_utf8(b.to_vec()).expect("ascii digits")
    }

    /// `YYYY-MM-DD HH:MM:SS.mmm` (SQL `DATETIME(3)` text, UTC).
    pub fn sql(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.mmm]` (or with `T`, optional `Z`) as UTC ms.
pub fn parse_sql(text: &str) -> Option<i64> {
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.splitn(3, ':');
    let (hh, mm, ss): (i64, i64, i64) = (
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
    );
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    let millis: i64 = frac.parse().ok()?;
    Some(
        days_from_civil(y, mo, da) * 86_400_000
            + hh * 3_600_000
            + mm * 60_000
            + ss * 1_000
            + millis,
    )
}

/// Earliest time [`parse_time`] accepts: 0000-01-01T00:00:00Z.
pub const MIN_TIME_MS: i64 = -62_167_219_200_000;
/// Latest time [`parse_time`] accepts: 9999-12-31T23:59:59.999Z. Within these two,
/// differences and sums of a few parsed times never overflow.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Parses a time given as ms since the epoch or RFC 3339 (`2025-11-25T16:00:00Z`,
/// `2025-11-25T16:00:00.5+08:00`; without an offset, UTC), strictly: real calendar dates,
/// offsets of at most ±23:59, years 0000–9999. The error says what was wrong.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let in_range = |ms: i64| {
        if (MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
            Ok(ms)
        } else {
            Err(format!(
                "{ms} ms is outside the years 0000 to 9999 ({MIN_TIME_MS} to {MAX_TIME_MS})"
            ))
        }
    };
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| "a number of ms too large".to_string())
            .and_then(in_range);
    }
    let parsed = match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(time) => time.timestamp_millis(),
        Err(with_offset) => {
            // Without an offset: UTC, as `analyze --from 2026-11-27T08:00:00` means.
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|format| chrono::NaiveDateTime::parse_from_str(t, format).ok());
            match naive {
                Some(naive) => naive.and_utc().timestamp_millis(),
                None => return Err(format!("not an RFC 3339 time: {with_offset}")),
            }
        }
    };
    in_range(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(Utc::from_ms(0).sql(), "1970-01-01 00:00:00.000");
        assert_eq!(
            Utc::from_ms(1_764_086_400_123).sql(),
            "2025-11-25 16:00:00.123"
        );
        assert_eq!(Utc::from_ms(951_782_400_000).date(), "2000-02-29");
        assert_eq!(Utc::from_ms(-1).sql(), "1969-12-31 23:59:59.999");
        for days in -800_000..800_000i64 {
            if days % 997 == 0 {
                let (y, m, d) = civil_from_days(days);
                assert_eq!(days_from_civil(y, m, d), days);
            }
        }
        for ms in [0, 1_764_086_400_123, 951_782_400_000, -86_400_001] {
            assert_eq!(parse_sql(&Utc::from_ms(ms).sql()), Some(ms));
            assert_eq!(Utc::from_ms(ms).sql_fast(), Utc::from_ms(ms).sql());
        }
        assert_eq!(parse_sql("2025-11-25T16:00:00Z"), Some(1_764_086_400_000));
        assert_eq!(parse_time("2025-11-25T16:00:00Z"), Ok(1_764_086_400_000));
        assert_eq!(
            parse_time("2025-11-26T00:00:00+08:00"),
            Ok(1_764_086_400_000)
        );
        assert_eq!(
            parse_time("2025-11-25T15:30:00.250-00:30"),
            Ok(1_764_086_400_250)
        );
        assert_eq!(parse_time("2025-11-25T16:00:00"), Ok(1_764_086_400_000));
        assert_eq!(parse_time("1764086400000"), Ok(1_764_086_400_000));
        assert_eq!(parse_time("-1"), Ok(-1));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2025-11-25").is_err());
    }

    #[test]
    fn parse_time_is_strict() {
        for bad in [
            "2025-02-30T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-11-25T24:00:01Z",
            "2025-11-25T16:00:00+24:00",
            "2025-11-25T16:00:00+08",
            "99999999999999999-01-01T00:00:00Z",
            "9223372036854775807",
            "-9223372036854775808",
            "253402300800000",
            "1e12",
            "",
            "--5",
            "2025-11-25T16:00:00Z junk",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(parse_time("9999-12-31T23:59:59.999Z"), Ok(MAX_TIME_MS));
        assert_eq!(parse_time("0000-01-01T00:00:00Z"), Ok(MIN_TIME_MS));
    }
}
