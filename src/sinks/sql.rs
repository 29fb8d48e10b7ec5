//! What the SQL sinks (SQLite, MySQL) share: the multi-row `VALUES` placeholders, and text cut
//! to the schema's width. Every value is bound; only placeholders are formatted into SQL.

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
/// The columns of a window row, in the order both sinks bind them.
pub const WINDOW_COLUMNS: usize = 14;
