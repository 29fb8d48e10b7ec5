//! SQLite through sqlx (`schemas/sqlite.sql`, created if missing): the embedded default for SQL.
//!
//! Rows are buffered and written in one transaction per batch (`batch_rows`, or `linger`) as
//! multi-row inserts, by the shared write loop ([`super::writer`]: retries, rejected rows).
//! Writes are idempotent on the primary keys: a re-delivered sample is ignored (`ON CONFLICT
//! DO NOTHING`), a recomputed window replaces its row. Text longer than the schema's 1024
//! characters is cut at a character boundary.

use std::sync::Arc;

mod config;
mod writer;

pub use config::healthcheck;
pub use writer::{SqliteWriter, open, write};

use super::writer::WriteSettings;
use super::{SinkQueue, SinkStats};
use crate::config::{SinkCommon, SqliteConfig};

/// The DDL, embedded.
pub const SCHEMA: &str = include_str!("../../../schemas/sqlite.sql");
/// Rows per INSERT statement (5 or 14 parameters each; SQLite allows 32 766).
pub(crate) const ROWS_PER_STATEMENT: usize = 500;
/// Rows per transaction when not configured: large transactions touch each B-tree page once
/// for many rows (5,000-row transactions inserted 220 K rows/s, 200,000-row ones 420 K).
pub const DEFAULT_BATCH_ROWS: usize = 100_000;
/// Longest a row waits for its transaction when not configured.
pub const DEFAULT_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the database (creating file and tables) and starts the writer task.
pub async fn spawn(
    common: &SinkCommon,
    config: &SqliteConfig,
    queue: SinkQueue,
    stats: Arc<SinkStats>,
    state_dir: &std::path::Path,
) -> Result<tokio::task::JoinHandle<bool>, String> {
    let pool = open(config.url.as_str())
        .await
        .map_err(|e| format!("sink {:?}: {e}", common.name))?;
    let settings = WriteSettings::new(
        common,
        config.batch_rows,
        config.linger,
        (DEFAULT_BATCH_ROWS, DEFAULT_LINGER),
        state_dir,
    );
    Ok(tokio::spawn(async move {
        let writer = SqliteWriter { pool: pool.clone() };
        let durable = super::writer::run(queue, writer, stats, settings).await;
        pool.close().await;
        durable
    }))
}
