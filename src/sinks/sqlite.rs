//! SQLite through sqlx (`schemas/sqlite.sql`, created if missing): the embedded default for SQL.
//!
//! Rows are buffered and written in one transaction per batch (`batch_rows`, or `linger`) as
//! multi-row inserts, by the shared write loop ([`super::writer`]: retries, rejected batches). Writes are idempotent on the primary keys: a re-delivered sample is
//! ignored (`ON CONFLICT DO NOTHING`), a recomputed window replaces its row. Text longer than
//! the schema's 1024 characters is cut at a character boundary.

use std::str::FromStr;
use std::sync::Arc;

use super::writer::{Batch, BatchWriter, WriteError, WriteSettings};
use super::{SinkQueue, SinkStats};
use crate::config::SinkConfig;
use crate::sample::Sample;
use crate::time::Utc;
use crate::window::WindowRow;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The DDL, embedded.
pub const SCHEMA: &str = include_str!("../../schemas/sqlite.sql");
/// Rows per INSERT statement (5 or 14 parameters each; SQLite allows 32 766).
const ROWS_PER_STATEMENT: usize = 500;
/// Rows per transaction when not configured: large transactions touch each B-tree page once
/// for many rows (5,000-row transactions inserted 220 K rows/s, 200,000-row ones 420 K).
pub const DEFAULT_BATCH_ROWS: usize = 100_000;
/// Longest text kept (`VARCHAR(1024)`).
pub const MAX_TEXT: usize = 1024;
/// Longest a row waits for its transaction when not configured.
pub const DEFAULT_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the database (creating file and tables) and starts the writer task.
pub async fn spawn(
    config: &SinkConfig,
    queue: SinkQueue,
    stats: Arc<SinkStats>,
    state_dir: &std::path::Path,
) -> Result<tokio::task::JoinHandle<bool>, String> {
    let url = config.url.clone().ok_or("sqlite sink without url")?;
    let pool = open(&url)
        .await
        .map_err(|e| format!("sink {:?}: {e}", config.name))?;
    let settings = WriteSettings {
        name: config.name.clone(),
        batch_rows: config.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS).max(1),
        linger: config.linger.map_or(DEFAULT_LINGER, |d| d.get()),
        rejected_dir: state_dir.join("rejected").join(&config.name),
    };
    Ok(tokio::spawn(async move {
        let writer = SqliteWriter { pool: pool.clone() };
        let durable = super::writer::run(queue, writer, stats, settings).await;
        pool.close().await;
        durable
    }))
}

/// The store's side of the SQLite sink.
pub struct SqliteWriter {
    pool: SqlitePool,
}

impl BatchWriter for SqliteWriter {
    async fn write(&mut self, batch: &Batch) -> Result<(), WriteError> {
        write(&self.pool, &batch.samples, &batch.windows)
            .await
            .map_err(classify)
    }
}

/// A busy or locked database, a full disk or an I/O error may pass; anything else is the
/// batch's fault.
fn classify(error: sqlx::Error) -> WriteError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_IOERR 10, SQLITE_FULL 13 (and extended codes).
            let primary = code.parse::<u32>().map(|c| c & 0xff).unwrap_or(0);
            if matches!(primary, 5 | 6 | 10 | 13) {
                WriteError::transient(format!("SQLite: {db}"))
            } else {
                WriteError::Permanent(format!("SQLite error {code}: {db}"))
            }
        }
        _ => WriteError::transient(format!("SQLite: {error}")),
    }
}

/// Opens (and creates) the database at a `sqlite://path` URL and applies the schema.
pub async fn open(url: &str) -> Result<SqlitePool, String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    if let Some(parent) = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| format!("bad SQLite URL {url:?}: {e}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // An ingest-sized page cache (32 MB, bounded: no mmap, which would let the growing file
        // count against memory), and the WAL copied back less often.
        .pragma("cache_size", "-32768")
        .pragma("wal_autocheckpoint", "8192")
        .pragma("temp_store", "memory");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .map_err(|e| format!("cannot create the tables in {path}: {e}"))?;
    Ok(pool)
}

/// Writes one batch in one transaction.
pub async fn write(
    pool: &SqlitePool,
    samples: &[Sample],
    windows: &[WindowRow],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for chunk in samples.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            // OR IGNORE rather than ON CONFLICT: a statement that cannot abort needs no
            // statement journal, which was a tenth of the insert cost.
            "INSERT OR IGNORE INTO samples (device, item, ts, value, text) VALUES {}",
            placeholders(5, chunk.len())
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            query = query
                .bind(&*s.device)
                .bind(&*s.item)
                .bind(Utc::from_ms(s.ts).sql_fast())
                .bind(s.value)
                .bind(s.text.as_deref().map(|t| cut(t, MAX_TEXT)));
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in windows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT OR REPLACE INTO window_aggregates \
             (device, item, size_ms, start, count, min, max, mean, stddev, p50, p95, p99, first, last) VALUES {}",
            placeholders(14, chunk.len())
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in chunk {
            let finite = |v: f64| v.is_finite().then_some(v);
            query = query
                .bind(&*w.device)
                .bind(&*w.item)
                .bind(w.size_ms)
                .bind(Utc::from_ms(w.start).sql())
                .bind(w.count as i64)
                .bind(finite(w.min))
                .bind(finite(w.max))
                .bind(finite(w.mean))
                .bind(w.stddev.and_then(finite))
                .bind(finite(w.p50))
                .bind(finite(w.p95))
                .bind(finite(w.p99))
                .bind(finite(w.first))
                .bind(finite(w.last));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// `(?,?,…),(?,?,…)…`: `rows` groups of `columns` placeholders (shared with the MySQL sink).
pub(super) fn placeholders(columns: usize, rows: usize) -> String {
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
