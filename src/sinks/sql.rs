//! What the SQL sinks (SQLite, MySQL) share: the multi-row `VALUES` placeholders, the binding
//! of a sample's and a window's columns (generic over the sqlx database), and text cut to the
//! schema's width. Every value is bound; only placeholders are formatted into SQL.

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use crate::sample::Sample;
use crate::time::Utc;
use crate::window::WindowRow;

/// Binds a sample's columns in [`SAMPLE_COLUMNS`] order: device, item, time, value (a
/// non-finite value as NULL), text (cut to [`MAX_TEXT`] characters).
pub fn bind_sample<'q, DB>(
    query: Query<'q, DB, DB::Arguments>,
    s: &Sample,
) -> Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<f64>: Encode<'t, DB> + Type<DB>,
{
    query
        .bind(&*s.device)
        .bind(&*s.item)
        .bind(Utc::from_ms(s.ts).sql_fast())
        .bind(s.value.filter(|v| v.is_finite()))
        .bind(s.text.as_deref().map(|t| cut(t, MAX_TEXT)))
}

/// Binds a window's columns in [`window_columns`] order (a non-finite statistic as NULL).
pub fn bind_window<'q, DB>(
    query: Query<'q, DB, DB::Arguments>,
    w: &WindowRow,
) -> Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<f64>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut query = query
        .bind(&*w.device)
        .bind(&*w.item)
        .bind(w.size_ms)
        .bind(Utc::from_ms(w.start).sql())
        .bind(w.count as i64);
    for v in w.stats() {
        query = query.bind(v.is_finite().then_some(v));
    }
    query
}

/// Longest text kept (`VARCHAR(1024)` in both schemas).
pub const MAX_TEXT: usize = 1024;

/// `(?,?,…),(?,?,…)…`: `rows` groups of `columns` placeholders.
pub fn placeholders(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    vec![row; rows].join(",")
}

/// The longest prefix of `text` of at most `max` characters.
pub fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The columns of a sample row, in the order both sinks bind them.
pub const SAMPLE_COLUMNS: usize = 5;
/// The columns of a window row: its key, its count, its statistics.
pub const WINDOW_COLUMNS: usize = 5 + STATS.len();

use crate::window::STATS;

/// `device, item, size_ms, start, count, min, …`: a window row's columns, in bind order.
pub fn window_columns() -> String {
    format!("device, item, size_ms, start, count, {}", STATS.join(", "))
}

/// `count = VALUES(count), min = VALUES(min), …`: what a recomputed window replaces (MySQL).
pub fn window_updates() -> String {
    std::iter::once("count")
        .chain(STATS)
        .map(|c| format!("{c} = VALUES({c})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column names of `window_aggregates` in a schema, in order.
    fn columns(schema: &str) -> Vec<String> {
        let table = &schema[schema.find("window_aggregates").expect("the table")..];
        table
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|l| !l.starts_with("PRIMARY KEY") && !l.starts_with(')'))
            .filter_map(|l| l.split_whitespace().next())
            .map(|c| c.trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn both_schemas_have_the_window_columns_in_bind_order() {
        let bound: Vec<String> = window_columns().split(", ").map(String::from).collect();
        assert_eq!(bound.len(), WINDOW_COLUMNS);
        assert_eq!(columns(crate::sinks::sqlite::SCHEMA), bound);
        assert_eq!(columns(crate::sinks::mysql::SCHEMA), bound);
        assert!(window_updates().starts_with("count = VALUES(count), min = VALUES(min)"));
        assert!(window_updates().ends_with("last = VALUES(last)"));
        let lake = crate::lake::writer::windows_schema();
        let names: Vec<&str> = lake.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[names.len() - STATS.len()..], &STATS[..]);
    }
}
