//! The MySQL sink's one write: a batch as one transaction of 1,000-row inserts, the rows
//! MySQL's types cannot hold set aside first, and which errors may pass.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::{ROWS_PER_STATEMENT, SCHEMA};
use crate::sample::Sample;
use crate::sinks::sql::{
    SAMPLE_COLUMNS, WINDOW_COLUMNS, bind_sample, bind_window, placeholders, window_columns,
    window_updates,
};
use crate::sinks::writer::{Batch, BatchWriter, WriteError};
use crate::time::Utc;
use crate::window::WindowRow;

/// The store's side of the sink.
pub struct MySqlWriter {
    options: MySqlConnectOptions,
    pool: Option<MySqlPool>,
}

impl MySqlWriter {
    pub fn new(options: MySqlConnectOptions) -> MySqlWriter {
        MySqlWriter {
            options,
            pool: None,
        }
    }

    /// The pool, creating the database and tables on first use.
    async fn pool(&mut self) -> Result<&MySqlPool, WriteError> {
        if self.pool.is_none() {
            self.pool = Some(open(&self.options).await?);
        }
        Ok(self.pool.as_ref().expect("set above"))
    }
}

impl BatchWriter for MySqlWriter {
    async fn write(&mut self, batch: &Batch) -> Result<(), WriteError> {
        let pool = self.pool().await?;
        write(pool, batch).await
    }

    fn refuse_sample(&self, s: &Sample) -> Option<String> {
        id_fits("device", &s.device)
            .or_else(|| id_fits("item", &s.item))
            .or_else(|| datetime_fits(s.ts))
    }

    fn refuse_window(&self, w: &WindowRow) -> Option<String> {
        id_fits("device", &w.device)
            .or_else(|| id_fits("item", &w.item))
            .or_else(|| datetime_fits(w.start))
            .or_else(|| {
                (!(1..=i64::from(i32::MAX)).contains(&w.size_ms))
                    .then(|| format!("window size {} ms does not fit `size_ms INT`", w.size_ms))
            })
            .or_else(|| {
                i64::try_from(w.count)
                    .is_err()
                    .then(|| format!("count {} does not fit `count BIGINT`", w.count))
            })
    }
}

/// Why an id does not fit its `VARCHAR(64)` column, if it does not.
fn id_fits(what: &str, id: &str) -> Option<String> {
    let chars = id.chars().count();
    if chars == 0 || chars > 64 {
        return Some(format!(
            "{what} id of {chars} characters does not fit VARCHAR(64): {}",
            crate::nclink::limits::shown(id)
        ));
    }
    None
}

/// Why a time does not fit `DATETIME(3)` (years 1000–9999), if it does not.
fn datetime_fits(ts: i64) -> Option<String> {
    let year = Utc::from_ms(ts).year;
    (!(1000..=9999).contains(&year))
        .then(|| format!("time {ts} ms (year {year}) is outside DATETIME's years 1000 to 9999"))
}

/// Connects, creating the database if missing, and applies the schema.
pub async fn open(options: &MySqlConnectOptions) -> Result<MySqlPool, WriteError> {
    let database = options.get_database().unwrap_or_default().to_string();
    // The database may not exist yet: create it over a connection that names none.
    let mut server = options
        .clone()
        .database("")
        .connect()
        .await
        .map_err(classify)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
        database.replace('`', "``")
    )))
    .execute(&mut server)
    .await
    .map_err(classify)?;
    let _ = server.close().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(classify)?;
    sqlx::raw_sql(SCHEMA)
        .execute(&pool)
        .await
        .map_err(classify)?;
    Ok(pool)
}

/// Writes one batch in one transaction.
pub async fn write(pool: &MySqlPool, batch: &Batch) -> Result<(), WriteError> {
    let mut tx = pool.begin().await.map_err(classify)?;
    for chunk in batch.samples.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO samples (device, item, ts, value, text) VALUES {} \
             ON DUPLICATE KEY UPDATE ts = ts",
            placeholders(SAMPLE_COLUMNS, chunk.len())
        );
        // Only placeholders are formatted into the statement; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            query = bind_sample(query, s);
        }
        query.execute(&mut *tx).await.map_err(classify)?;
    }
    for chunk in batch.windows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO window_aggregates ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
            window_columns(),
            placeholders(WINDOW_COLUMNS, chunk.len()),
            window_updates()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in chunk {
            query = bind_window(query, w);
        }
        query.execute(&mut *tx).await.map_err(classify)?;
    }
    tx.commit().await.map_err(classify)
}

/// Server error codes worth retrying: lock timeouts and deadlocks, too many connections,
/// shutdown in progress, a killed connection, a read-only server (failover), out of memory.
const TRANSIENT_CODES: [&str; 8] = [
    "1205", "1213", "1040", "1053", "1927", "1290", "1836", "1041",
];

/// Retry what a later attempt can fix; a statement the server refuses (bad data, access
/// denied, unknown database rights) is permanent for its batch.
pub fn classify(error: sqlx::Error) -> WriteError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            if TRANSIENT_CODES.contains(&code.as_str()) {
                WriteError::transient(format!("MySQL: {db}"))
            } else {
                WriteError::Permanent(format!("MySQL error {code}: {db}"))
            }
        }
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => {
            WriteError::Permanent(format!("MySQL: {error}"))
        }
        _ => WriteError::transient(format!("MySQL: {error}")),
    }
}
