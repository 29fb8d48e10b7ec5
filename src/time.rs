//! Calendar arithmetic on UTC milliseconds, for partition names (`date=YYYY-MM-DD/hour=HH`) and
//! SQL timestamps, without a date-time library: Howard Hinnant's days ↔ civil date algorithms.

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

/// Parses a time given as ms since the epoch or RFC 3339 (`2025-11-25T16:00:00Z`,
/// `2025-11-25T16:00:00.5+08:00`).
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Some(ms);
    }
    // A trailing numeric offset: ±HH:MM after the time part.
    let (body, offset_ms) = match t.rfind(['+', '-']).filter(|&i| i > 10) {
        Some(i) => {
            let (body, offset) = t.split_at(i);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (h, m) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
            let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
            (body, sign * minutes * 60_000)
        }
        None => (t, 0),
    };
    if !body.contains('T') && !body.contains(' ') {
        return None;
    }
    parse_sql(body).map(|ms| ms - offset_ms)
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
        assert_eq!(parse_time("2025-11-25T16:00:00Z"), Some(1_764_086_400_000));
        assert_eq!(
            parse_time("2025-11-26T00:00:00+08:00"),
            Some(1_764_086_400_000)
        );
        assert_eq!(
            parse_time("2025-11-25T15:30:00.250-00:30"),
            Some(1_764_086_400_250)
        );
        assert_eq!(parse_time("1764086400000"), Some(1_764_086_400_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2025-11-25"), None);
    }
}
