//! InfluxDB, at the edge and in the cloud: line protocol over HTTP, gzip-compressed.
//!
//! Two API flavours, chosen by the sink's keys (DESIGN.md §4):
//! - **1.x** (`database`, optional `username`/`password`): `POST /write?db=…&precision=ms`,
//!   with HTTP basic auth (never credentials in the URL, which error messages may show). The
//!   database is created on first use when the user may (`CREATE DATABASE` is idempotent).
//! - **2.x/3.x/Cloud** (`org`, `bucket`, `token`): `POST /api/v2/write?org=…&bucket=…&precision=ms`
//!   with `Authorization: Token …`.
//!
//! The `influxdb2` crate only speaks `/api/v2/*` (InfluxDB 1.6 answers 404), so one small
//! writer over reqwest serves both: the batch is encoded once ([`line_protocol`]), compressed,
//! and posted. Answers map to the write loop's retry rules: 2xx written; 429 and 503 retried
//! after the server's `Retry-After`; other 5xx and network errors retried with backoff; any
//! other 4xx refuses the batch for good, with the server's message.

mod config;
pub mod line_protocol;
mod writer;

pub use config::healthcheck;
pub use writer::{InfluxWriter, classify};

use std::sync::Arc;
use std::time::Duration;

use super::writer::WriteSettings;
use super::{SinkQueue, SinkStats};
use crate::config::{InfluxConfig, SinkCommon};

/// Points per write when not configured (InfluxData's recommended batch size).
pub const DEFAULT_BATCH_ROWS: usize = 5_000;
/// Longest a row waits for its batch when not configured.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);
/// A write that takes longer is abandoned and retried.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to write (chosen when the configuration is read).
pub use crate::config::InfluxApi as Api;

/// Checks the configuration and starts the writer task.
pub fn spawn(
    common: &SinkCommon,
    config: &InfluxConfig,
    queue: SinkQueue,
    stats: Arc<SinkStats>,
    state_dir: &std::path::Path,
) -> Result<tokio::task::JoinHandle<bool>, String> {
    let writer =
        InfluxWriter::from_config(config).map_err(|e| format!("sink {:?}: {e}", common.name))?;
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
