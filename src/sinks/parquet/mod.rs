//! The parquet sink: feeds the lake's writer ([`crate::lake::writer::Lake`]) from its queue,
//! reports its counters, passes checkpoint barriers once the files holding everything before
//! them are complete. (The WebHDFS upload of closed partitions is the engine's to start and
//! stop: `crate::lake::upload`.)
//!
//! A file is durable once completed: synced, renamed, and its directory synced. A write that
//! fails (a full disk) abandons the file it was for; its rows are counted as failed and held
//! (`crate::lake::writer`), written again every second into new files, and no checkpoint
//! barrier is passed until they are in complete files — so the write-ahead log keeps them
//! meanwhile, and the lake recovers by itself, without a restart, once there is room.
//!
//! Encoding is CPU work, so the sink runs on its own thread.

mod config;

pub use config::healthcheck;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{SinkMessage, SinkQueue, SinkStats};
use crate::config::{HumanDuration, ParquetConfig, SinkCommon};
use crate::lake::error::LakeError;
use crate::lake::writer::{
    Lake, LakeOptions, STALE_MARGIN, default_writer_id, remove_stale_hidden,
};

/// In a replay, the most rows kept in memory, all partitions together, to recognise rows the
/// lake holds already (~20 bytes each).
const REPLAY_MAX_EXISTING_ROWS: u64 = 20_000_000;

/// Starts the sink thread.
pub fn spawn(
    common: &SinkCommon,
    config: &ParquetConfig,
    receiver: SinkQueue,
    stats: Arc<SinkStats>,
) -> Result<tokio::task::JoinHandle<bool>, String> {
    let dir = config.dir.clone();
    fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "sink {:?}: cannot create {}: {e}",
            common.name,
            dir.display()
        )
    })?;
    let roll_age = config
        .roll_age
        .unwrap_or(HumanDuration::from_millis(60_000))
        .get();
    remove_stale_hidden(&dir, roll_age + STALE_MARGIN);
    let lake = Lake::new(
        dir,
        LakeOptions {
            roll_rows: config.roll_rows.unwrap_or(1_000_000),
            roll_age: config
                .roll_age
                .unwrap_or(HumanDuration::from_millis(60_000))
                .get(),
            writer: config.writer_id.clone().unwrap_or_else(default_writer_id),
            skip_existing: common.replay.then_some(REPLAY_MAX_EXISTING_ROWS),
        },
    );
    let name = common.name.clone();
    Ok(tokio::task::spawn_blocking(move || {
        run(lake, receiver, stats, &name)
    }))
}

/// How often rows of failed files are written again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the rows of failed files again, counting them as retried.
fn retry(lake: &mut Lake, stats: &SinkStats) -> Result<(), LakeError> {
    if lake.pending_rows() == 0 {
        return Ok(());
    }
    stats
        .retries
        .fetch_add(lake.pending_rows(), Ordering::Relaxed);
    lake.write_pending()
}

/// Returns whether everything ended up in complete files.
fn run(mut lake: Lake, mut receiver: SinkQueue, stats: Arc<SinkStats>, name: &str) -> bool {
    // Writes are failing: logged once, until a checkpoint finds every row written again.
    let mut failing = false;
    let mut last_retry = std::time::Instant::now();
    while let Some(message) = receiver.blocking_next() {
        let rows = message.rows().map_or(0, |r| r.len());
        let result = match message {
            SinkMessage::Samples(samples) => lake.write_samples(&samples),
            SinkMessage::Windows(windows) => lake.write_windows(&windows),
            SinkMessage::Tick if last_retry.elapsed() >= RETRY_EVERY => {
                last_retry = std::time::Instant::now();
                retry(&mut lake, &stats).and(lake.roll_aged())
            }
            SinkMessage::Tick => lake.roll_aged(),
            // Only complete files are durable: complete the open ones, rows of failed files
            // written again among them.
            SinkMessage::Barrier(barrier) => retry(&mut lake, &stats).and(lake.finish()).map(|()| {
                if lake.is_settled() {
                    barrier.done();
                    if failing {
                        tracing::info!(
                            sink = name,
                            "the lake writes again: every row of the failed files is in complete files"
                        );
                        failing = false;
                    }
                }
            }),
        };
        stats.skipped.store(lake.rows_skipped(), Ordering::Relaxed);
        let lost_rows = lake.take_lost();
        match result {
            Ok(()) => stats.ok(rows),
            Err(e) => {
                if !failing {
                    tracing::error!(sink = name, error = %e, "cannot write the lake; the rows of the failed files are held and written again every second, and the write-ahead log keeps them until they are");
                }
                failing = true;
                stats.error(lost_rows, &e.to_string());
            }
        }
    }
    let finished = lake.write_pending().and(lake.finish());
    stats.skipped.store(lake.rows_skipped(), Ordering::Relaxed);
    if lake.rows_skipped() > 0 {
        tracing::info!(
            sink = name,
            rows = lake.rows_skipped(),
            "rows the lake held already were not written again"
        );
    }
    if let Err(e) = finished {
        tracing::error!(sink = name, error = %e, "cannot complete the lake's open files; the write-ahead log keeps their rows for the next start");
        stats.error(lake.take_lost(), &e.to_string());
        return false;
    }
    // Rows given up are still in the write-ahead log: it must stay for the next start.
    lake.is_settled()
}
