//! The write loop of the network sinks (MySQL, InfluxDB): batching, retries, rejection.
//!
//! A sink's loop takes rows from its queue (then its spool), gathers them into a batch of up
//! to `batch_rows` rows or `linger` of age, and hands the batch to the store's
//! [`BatchWriter`]. What happens on failure depends on the kind of failure:
//!
//! - **Transient** (unreachable, timeout, 5xx, 429/503, deadlock): the same batch is retried
//!   with capped, jittered exponential backoff (or the server's `Retry-After`). Meanwhile the
//!   loop reads nothing, its queue fills, and the dataflow's further batches spool to disk —
//!   so the dataflow and the other sinks keep their speed, and the backlog drains in order when
//!   the store is back.
//! - **Permanent** (a 4xx, a rejected statement, bad credentials): retrying the same batch
//!   cannot succeed, so it is not retried; its rows are counted as failed and written with the
//!   server's message to `state_dir/rejected/<sink>/rejected-<ms>.jsonl`, where nothing is lost.
//!
//! At shutdown a store that still fails after [`SHUTDOWN_GRACE`] does not hold the process:
//! the batch and what is still queued go to the spool and are written first at the next start
//! (possibly twice: the stores are idempotent).

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{SinkMessage, SinkQueue, SinkStats};
use crate::backoff::Backoff;
use crate::config::redact_secrets;
use crate::sample::Sample;
use crate::window::WindowRow;

/// How long a failing store may delay shutdown before its backlog is left in the spool.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// First retry delay; it doubles up to [`MAX_RETRY_DELAY`] (jittered).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Rows gathered for one write.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub samples: Vec<Sample>,
    pub windows: Vec<WindowRow>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.samples.len() + self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    fn clear(&mut self) {
        self.samples.clear();
        self.windows.clear();
    }
}

/// Why a write failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// Worth retrying the same batch later (`retry_after`: when the server asked for it).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The store refused this batch; retrying it cannot succeed.
    Permanent(String),
}

impl WriteError {
    pub fn transient(message: impl Into<String>) -> WriteError {
        WriteError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            WriteError::Transient { message, .. } | WriteError::Permanent(message) => message,
        }
    }
}

/// A store's side of a sink: writes one batch, all of it or nothing that matters (a retried
/// batch may be written again: writers must be idempotent).
pub trait BatchWriter: Send + 'static {
    fn write(&mut self, batch: &Batch) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// How a sink batches.
#[derive(Debug, Clone)]
pub struct WriteSettings {
    pub name: String,
    /// Rows per write.
    pub batch_rows: usize,
    /// Longest a row waits for its batch to fill.
    pub linger: Duration,
    /// Where refused batches are kept: `state_dir/rejected/<sink>/`.
    pub rejected_dir: PathBuf,
}

/// Runs a sink until its queue closes; returns once everything is written or spooled (and
/// synced), so always `true`: nothing the sink received is only in memory.
pub async fn run<W: BatchWriter>(
    mut queue: SinkQueue,
    mut writer: W,
    stats: Arc<SinkStats>,
    settings: WriteSettings,
) -> bool {
    let mut batch = Batch::default();
    let mut oldest: Option<tokio::time::Instant> = None;
    let mut backoff = Backoff::new(FIRST_RETRY_DELAY, MAX_RETRY_DELAY);
    loop {
        let message = match oldest {
            // `next` is cancel-safe: a timeout loses no message.
            Some(since) => {
                match tokio::time::timeout_at(since + settings.linger, queue.next()).await {
                    Ok(message) => message,
                    Err(_) => Some(SinkMessage::Tick),
                }
            }
            None => queue.next().await,
        };
        let closing = message.is_none();
        let mut barrier = None;
        match message {
            Some(SinkMessage::Samples(rows)) => batch.samples.extend_from_slice(&rows),
            Some(SinkMessage::Windows(rows)) => batch.windows.extend_from_slice(&rows),
            Some(SinkMessage::Barrier(b)) => barrier = Some(b),
            Some(SinkMessage::Tick) | None => {}
        }
        if !batch.is_empty() && oldest.is_none() {
            oldest = Some(tokio::time::Instant::now());
        }
        let due = batch.rows() >= settings.batch_rows
            || oldest.is_some_and(|t| t.elapsed() >= settings.linger)
            || closing
            || barrier.is_some();
        if due && !batch.is_empty() {
            let written =
                write_with_retries(&mut writer, &batch, &stats, &settings, &mut backoff, &queue)
                    .await;
            if !written {
                // Shutting down with the store still failing: leave the rest for the next start.
                queue.spool_remaining(std::mem::take(&mut batch));
                break;
            }
            batch.clear();
            oldest = None;
        }
        if let Some(barrier) = barrier {
            barrier.done();
        }
        if closing {
            break;
        }
    }
    true
}

/// Writes a batch, retrying transient failures; a refused batch is set aside. `false` when the
/// sink is shutting down and the store kept failing past [`SHUTDOWN_GRACE`].
async fn write_with_retries<W: BatchWriter>(
    writer: &mut W,
    batch: &Batch,
    stats: &SinkStats,
    settings: &WriteSettings,
    backoff: &mut Backoff,
    queue: &SinkQueue,
) -> bool {
    let rows = batch.rows() as u64;
    let mut closing_since: Option<Instant> = None;
    loop {
        match writer.write(batch).await {
            Ok(()) => {
                stats.ok(rows);
                backoff.reset();
                return true;
            }
            Err(WriteError::Permanent(message)) => {
                let message = redact_secrets(&message);
                tracing::error!(sink = %settings.name, rows, error = %message,
                    "the store refused a batch; it is kept in the sink's rejected file, not retried");
                stats.error(rows, &message);
                reject(batch, &message, settings);
                backoff.reset();
                return true;
            }
            Err(WriteError::Transient {
                message,
                retry_after,
            }) => {
                let message = redact_secrets(&message);
                let delay = retry_after
                    .map(|d| d.min(MAX_RETRY_DELAY))
                    .unwrap_or_else(|| backoff.next_delay());
                let first = stats.retries.load(Ordering::Relaxed) == 0
                    || stats.healthy.load(Ordering::Relaxed);
                stats.retries.fetch_add(1, Ordering::Relaxed);
                stats.healthy.store(false, Ordering::Relaxed);
                *stats.last_error.lock().expect("stats lock") = Some(message.clone());
                if first {
                    tracing::warn!(sink = %settings.name, error = %message,
                        "cannot write; retrying with backoff while new data spools to disk");
                } else {
                    tracing::debug!(sink = %settings.name, error = %message, ?delay, "retrying");
                }
                if queue.is_closing() {
                    let since = *closing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= SHUTDOWN_GRACE {
                        tracing::warn!(sink = %settings.name, rows,
                            "still failing at shutdown; the backlog stays in the spool for the next start");
                        return false;
                    }
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Appends a refused batch, with the store's message, to the sink's rejected file.
fn reject(batch: &Batch, message: &str, settings: &WriteSettings) {
    let result = (|| -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&settings.rejected_dir)?;
        let path = settings
            .rejected_dir
            .join(format!("rejected-{}.jsonl", crate::sample::now_ms()));
        let mut file = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        );
        let record = json!({
            "ts": crate::sample::now_ms(),
            "sink": settings.name,
            "error": message,
            "samples": batch.samples,
            "windows": batch.windows.iter().map(window_json).collect::<Vec<_>>(),
        });
        serde_json::to_writer(&mut file, &record)?;
        file.write_all(b"\n")?;
        file.flush()?;
        Ok(path)
    })();
    match result {
        Ok(path) => {
            tracing::info!(sink = %settings.name, path = %path.display(), "refused batch kept")
        }
        Err(e) => {
            tracing::error!(sink = %settings.name, error = %e, rows = batch.rows(),
                "cannot keep the refused batch; its rows are lost")
        }
    }
}

fn window_json(w: &WindowRow) -> serde_json::Value {
    json!({
        "device": &*w.device, "item": &*w.item, "size_ms": w.size_ms, "start": w.start,
        "end": w.end, "count": w.count, "min": w.min, "max": w.max, "mean": w.mean,
        "stddev": w.stddev, "p50": w.p50, "p95": w.p95, "p99": w.p99,
        "first": w.first, "last": w.last,
    })
}
