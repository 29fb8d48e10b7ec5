//! The SQLite sink's one write: a batch as one transaction of multi-row inserts, and which
//! errors may pass (busy, locked, full, I/O) and which are the batch's.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{ROWS_PER_STATEMENT, SCHEMA};
use crate::sample::Sample;
use crate::sinks::sql::{
    SAMPLE_COLUMNS, WINDOW_COLUMNS, bind_sample, bind_window, placeholders, window_columns,
};
use crate::sinks::writer::{Batch, BatchWriter, WriteError};
use crate::window::WindowRow;

/// The store's side of the SQLite sink.
pub struct SqliteWriter {
    pub(super) pool: SqlitePool,
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
            placeholders(SAMPLE_COLUMNS, chunk.len())
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            query = bind_sample(query, s);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in windows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT OR REPLACE INTO window_aggregates ({}) VALUES {}",
            window_columns(),
            placeholders(WINDOW_COLUMNS, chunk.len())
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in chunk {
            query = bind_window(query, w);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}
