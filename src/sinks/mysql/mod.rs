//! MySQL 8 and MariaDB through sqlx (`schemas/mysql.sql`; database and tables created if
//! missing), the SQL store of the classroom stack.
//!
//! Each batch is one transaction of multi-row `INSERT`s ([`ROWS_PER_STATEMENT`] rows each, a
//! fixed size so the prepared statements are reused), which on one connection is the fastest
//! path sqlx offers (no `LOAD DATA`). Writes are idempotent on the primary keys: a re-delivered
//! sample leaves its row as it was (`ON DUPLICATE KEY UPDATE ts = ts`, which unlike `INSERT
//! IGNORE` still fails on real errors), a recomputed window replaces its row.
//!
//! The sink starts even when the server is down (the pool connects lazily): its batches wait
//! and spool while the writer retries, so a database outage never stops the engine.

mod config;
mod writer;

pub use config::{connect_options, healthcheck};
pub use writer::{MySqlWriter, classify, open, write};

use std::sync::Arc;
use std::time::Duration;

use super::writer::WriteSettings;
use super::{SinkQueue, SinkStats};
use crate::config::{MysqlConfig, SinkCommon};

/// The DDL, embedded.
pub const SCHEMA: &str = include_str!("../../../schemas/mysql.sql");
/// Rows per INSERT (5 or 14 parameters each; the protocol allows 65,535 per statement).
pub const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows per transaction when not configured.
pub const DEFAULT_BATCH_ROWS: usize = 20_000;
/// Longest a row waits for its batch when not configured.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// Checks the configuration and starts the writer task (connecting happens there).
pub fn spawn(
    common: &SinkCommon,
    config: &MysqlConfig,
    queue: SinkQueue,
    stats: Arc<SinkStats>,
    state_dir: &std::path::Path,
) -> Result<tokio::task::JoinHandle<bool>, String> {
    let options = connect_options(config).map_err(|e| format!("sink {:?}: {e}", common.name))?;
    let writer = MySqlWriter::new(options);
    let settings = WriteSettings::new(
        common,
        config.batch_rows,
        config.linger,
        (DEFAULT_BATCH_ROWS, DEFAULT_LINGER),
        state_dir,
    );
    Ok(tokio::spawn(super::writer::run(
        queue, writer, stats, settings,
    )))
}
