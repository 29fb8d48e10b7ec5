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
//!   cannot succeed, so it is not retried as it is: it is cut in halves and each half written
//!   on its own, down to single rows, so that only the rows the store refuses are set aside.
//!   Those are counted as failed and written with the server's message to
//!   `state_dir/rejected/<sink>/rejected-<ms>.jsonl` (rotating: at most [`REJECTED_FILES`] files
//!   of [`REJECTED_FILE_BYTES`]), where nothing is lost.
//!
//! Rows a store is known not to take (an id longer than its column, a time outside its range:
//! [`BatchWriter::refuse_sample`]) are set aside the same way before they join a batch, so one
//! bad row never costs a refused batch and a bisection.
//!
//! At shutdown a store that still fails after [`SHUTDOWN_GRACE`] does not hold the process:
//! the batch and what is still queued go to the spool and are written first at the next start
//! (possibly twice: the stores are idempotent).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{SinkMessage, SinkQueue, SinkStats};
use crate::backoff::Backoff;
use crate::config::redact_secrets;
use crate::nclink::limits::shown;
use crate::rotating::RotatingFiles;
use crate::sample::Sample;
use crate::window::WindowRow;

/// How long a failing store may delay shutdown before its backlog is left in the spool.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Rejected-row files kept per sink; the oldest goes beyond.
pub const REJECTED_FILES: usize = 16;
/// A rejected-row file rolls at this size.
pub const REJECTED_FILE_BYTES: u64 = 64 << 20;
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

    /// The batch in two halves of (nearly) equal rows.
    fn halves(&self) -> [Batch; 2] {
        let half = self.rows() / 2;
        let (samples, windows) = if half <= self.samples.len() {
            let (a, b) = self.samples.split_at(half);
            ([a.to_vec(), b.to_vec()], [Vec::new(), self.windows.clone()])
        } else {
            let (a, b) = self.windows.split_at(half - self.samples.len());
            ([self.samples.clone(), Vec::new()], [a.to_vec(), b.to_vec()])
        };
        let [s0, s1] = samples;
        let [w0, w1] = windows;
        [
            Batch {
                samples: s0,
                windows: w0,
            },
            Batch {
                samples: s1,
                windows: w1,
            },
        ]
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

    /// Why the store cannot take this sample, if it cannot (checked before batching).
    fn refuse_sample(&self, _sample: &Sample) -> Option<String> {
        None
    }

    /// Why the store cannot take this window, if it cannot.
    fn refuse_window(&self, _window: &WindowRow) -> Option<String> {
        None
    }
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

impl WriteSettings {
    /// The settings of sink `common`: its `batch_rows` and `linger` or the store's defaults,
    /// its rejected rows under `state_dir/rejected/<name>/`.
    pub fn new(
        common: &crate::config::SinkCommon,
        batch_rows: Option<usize>,
        linger: Option<crate::config::HumanDuration>,
        defaults: (usize, Duration),
        state_dir: &std::path::Path,
    ) -> WriteSettings {
        WriteSettings {
            name: common.name.clone(),
            batch_rows: batch_rows.unwrap_or(defaults.0).max(1),
            linger: linger.map_or(defaults.1, |d| d.get()),
            rejected_dir: state_dir.join("rejected").join(&common.name),
        }
    }
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
    let mut rejected = Rejected::new(&settings);
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
            Some(SinkMessage::Samples(rows)) => {
                for row in rows.iter() {
                    match writer.refuse_sample(row) {
                        None => batch.samples.push(row.clone()),
                        Some(why) => rejected.row(&stats, why, Some(row), None),
                    }
                }
            }
            Some(SinkMessage::Windows(rows)) => {
                for row in rows.iter() {
                    match writer.refuse_window(row) {
                        None => batch.windows.push(row.clone()),
                        Some(why) => rejected.row(&stats, why, None, Some(row)),
                    }
                }
            }
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
            let written = write_refusing_rows(
                &mut writer,
                &batch,
                &stats,
                &settings,
                &mut backoff,
                &queue,
                &mut rejected,
            )
            .await;
            if !written {
                // Shutting down with the store still failing: leave the rest for the next start.
                queue.spool_remaining(std::mem::take(&mut batch));
                break;
            }
            batch.clear();
            oldest = None;
        }
        // Refused rows the disk did not take yet, and rows lost to a local failure, are only
        // in the write-ahead log now: keep it.
        rejected.retry();
        if let Some(barrier) = barrier
            && rejected.settled()
            && !stats.lost.load(Ordering::Relaxed)
        {
            barrier.done();
        }
        if closing {
            break;
        }
    }
    if !rejected.settled() {
        tracing::error!(sink = %settings.name, "rows the store refused could not be written to the rejected files; the write-ahead log keeps them for the next start");
        stats.lost.store(true, Ordering::Relaxed);
    }
    !stats.lost.load(Ordering::Relaxed)
}

/// What writing a batch came to.
enum Outcome {
    Written,
    /// Refused for good, with the store's message.
    Refused(String),
    /// Shutting down with the store still failing.
    GaveUp,
}

/// Writes a batch; when the store refuses it, writes its halves, down to single rows, and
/// sets aside only the rows refused alone. `false` when the sink is shutting down and the
/// store kept failing past [`SHUTDOWN_GRACE`] (the whole batch is then spooled again: what
/// was written of it is written twice, harmlessly).
async fn write_refusing_rows<W: BatchWriter>(
    writer: &mut W,
    batch: &Batch,
    stats: &SinkStats,
    settings: &WriteSettings,
    backoff: &mut Backoff,
    queue: &SinkQueue,
    rejected: &mut Rejected,
) -> bool {
    let message = match write_with_retries(writer, batch, stats, settings, backoff, queue).await {
        Outcome::Written => return true,
        Outcome::GaveUp => return false,
        Outcome::Refused(message) => message,
    };
    if batch.rows() == 1 {
        rejected.batch(stats, batch, &message);
        return true;
    }
    tracing::warn!(sink = %settings.name, rows = batch.rows(), error = %message,
        "the store refused a batch; writing it in parts to set aside only the rows it refuses");
    let mut parts: Vec<Batch> = batch.halves().into_iter().rev().collect();
    while let Some(part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        match write_with_retries(writer, &part, stats, settings, backoff, queue).await {
            Outcome::Written => {}
            Outcome::GaveUp => return false,
            Outcome::Refused(message) if part.rows() == 1 => rejected.batch(stats, &part, &message),
            Outcome::Refused(_) => parts.extend(part.halves().into_iter().rev()),
        }
    }
    true
}

/// Writes a batch, retrying transient failures.
async fn write_with_retries<W: BatchWriter>(
    writer: &mut W,
    batch: &Batch,
    stats: &SinkStats,
    settings: &WriteSettings,
    backoff: &mut Backoff,
    queue: &SinkQueue,
) -> Outcome {
    let rows = batch.rows() as u64;
    let mut closing_since: Option<Instant> = None;
    loop {
        match writer.write(batch).await {
            Ok(()) => {
                stats.ok(rows);
                backoff.reset();
                return Outcome::Written;
            }
            Err(WriteError::Permanent(message)) => {
                backoff.reset();
                return Outcome::Refused(redact_secrets(&message));
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
                        return Outcome::GaveUp;
                    }
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Where a sink keeps the rows its store refuses: `state_dir/rejected/<sink>/`, rotating.
struct Rejected {
    name: String,
    files: RotatingFiles,
    /// Lines the disk refused (full, an I/O error), oldest first: written before any newer
    /// one, and until they are, no checkpoint barrier is passed (the write-ahead log keeps
    /// their rows).
    pending: std::collections::VecDeque<(i64, Vec<u8>)>,
    pending_bytes: usize,
}

/// Most bytes of rejected lines kept in memory while the disk refuses them; beyond it they
/// are only in the write-ahead log, for the next start.
const REJECTED_PENDING_BYTES: usize = 16 << 20;

impl Rejected {
    fn new(settings: &WriteSettings) -> Rejected {
        Rejected {
            name: settings.name.clone(),
            files: RotatingFiles::new(
                &settings.rejected_dir,
                "rejected-",
                ".jsonl",
                REJECTED_FILE_BYTES,
                REJECTED_FILES,
            ),
            pending: Default::default(),
            pending_bytes: 0,
        }
    }

    /// A row refused before it was batched.
    fn row(
        &mut self,
        stats: &SinkStats,
        why: String,
        sample: Option<&Sample>,
        window: Option<&WindowRow>,
    ) {
        let batch = Batch {
            samples: sample.into_iter().cloned().collect(),
            windows: window.into_iter().cloned().collect(),
        };
        self.batch(stats, &batch, &why);
    }

    /// Rows the store refused (counted as failed), kept with its message.
    fn batch(&mut self, stats: &SinkStats, batch: &Batch, message: &str) {
        let rows = batch.rows();
        stats.error(rows as u64, message);
        let now = crate::sample::now_ms();
        let record = json!({
            "ts": now,
            "sink": self.name,
            "error": message,
            "samples": batch.samples,
            "windows": batch.windows.iter().map(window_json).collect::<Vec<_>>(),
        });
        let mut line = serde_json::to_vec(&record).expect("serializable");
        line.push(b'\n');
        self.retry();
        if self.pending.is_empty() {
            match self.write(now, &line) {
                Ok(()) => {
                    tracing::warn!(sink = %self.name, rows, error = %shown(message),
                        dir = %self.files.dir().display(), "rows the store refused are kept in the rejected files");
                    return;
                }
                Err(e) => tracing::error!(sink = %self.name, error = %e,
                    "cannot write the rejected files; refused rows are held in memory until the disk takes them"),
            }
        }
        if self.pending_bytes + line.len() > REJECTED_PENDING_BYTES {
            stats.lost.store(true, Ordering::Relaxed);
            tracing::error!(sink = %self.name, rows,
                "cannot keep the rows the store refused; the write-ahead log keeps them for the next start");
            return;
        }
        self.pending_bytes += line.len();
        self.pending.push_back((now, line));
    }

    fn write(&mut self, ts: i64, line: &[u8]) -> std::io::Result<()> {
        self.files
            .append(ts, line)
            .and_then(|()| self.files.flush())
    }

    /// Writes the lines the disk refused before, oldest first, while it takes them.
    fn retry(&mut self) {
        while let Some((ts, line)) = self.pending.pop_front() {
            if self.write(ts, &line).is_err() {
                self.pending.push_front((ts, line));
                return;
            }
            self.pending_bytes -= line.len();
            if self.pending.is_empty() {
                tracing::info!(sink = %self.name, dir = %self.files.dir().display(),
                    "the rejected files take the held rows again");
            }
        }
    }

    /// Whether every refused row is in the rejected files.
    fn settled(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A refused window as the rejected file keeps it (a non-finite statistic is `null`).
fn window_json(w: &WindowRow) -> serde_json::Value {
    let mut row = json!({
        "device": &*w.device, "item": &*w.item, "size_ms": w.size_ms, "start": w.start,
        "end": w.end, "count": w.count,
    });
    for (name, v) in crate::window::STATS.into_iter().zip(w.stats()) {
        row[name] = serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use std::sync::Mutex;

    /// A store that refuses any batch holding a sample of value 13, and rows the caller marks.
    struct Picky {
        written: Arc<Mutex<Vec<i64>>>,
        attempts: Arc<Mutex<usize>>,
    }

    impl BatchWriter for Picky {
        async fn write(&mut self, batch: &Batch) -> Result<(), WriteError> {
            *self.attempts.lock().unwrap() += 1;
            if batch.samples.iter().any(|s| s.value == Some(13.0)) {
                return Err(WriteError::Permanent("value 13 refused".into()));
            }
            self.written
                .lock()
                .unwrap()
                .extend(batch.samples.iter().map(|s| s.ts));
            Ok(())
        }

        fn refuse_sample(&self, s: &Sample) -> Option<String> {
            (s.item.len() > 8).then(|| "item too long".into())
        }
    }

    #[tokio::test]
    async fn a_refused_batch_is_bisected_and_only_bad_rows_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) =
            crate::sinks::tests::test_handle(dir.path(), 4, false);
        let queue = crate::sinks::tests::test_queue(receiver, spool, stats.clone());
        let d: Id = Id::from("D");
        let (good, long) = (Id::from("i"), Id::from("much-too-long"));
        let rows: Vec<Sample> = (0..1_000)
            .map(|ts| {
                let value = if ts == 100 || ts == 700 { 13.0 } else { 1.0 };
                let item = if ts == 500 {
                    long.clone()
                } else {
                    good.clone()
                };
                Sample::number(d.clone(), item, ts, value)
            })
            .collect();
        handle.send(SinkMessage::Samples(rows.into()));
        drop(handle);
        let written = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let writer = Picky {
            written: written.clone(),
            attempts: attempts.clone(),
        };
        let settings = WriteSettings {
            name: "picky".into(),
            batch_rows: 10_000,
            linger: Duration::from_millis(10),
            rejected_dir: dir.path().join("rejected"),
        };
        assert!(run(queue, writer, stats.clone(), settings).await);
        let mut written = written.lock().unwrap().clone();
        written.sort();
        let want: Vec<i64> = (0..1_000)
            .filter(|t| ![100, 500, 700].contains(t))
            .collect();
        assert_eq!(written, want, "every good row is written");
        assert_eq!(stats.failed.load(Ordering::Relaxed), 3);
        assert_eq!(stats.written.load(Ordering::Relaxed), 997);
        // Two bad rows of 999 are isolated in about 2 × 2 × log2(999) writes, not 999.
        assert!(
            *attempts.lock().unwrap() < 60,
            "{}",
            attempts.lock().unwrap()
        );
        let files =
            crate::rotating::list(&dir.path().join("rejected"), "rejected-", ".jsonl").unwrap();
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let set_aside: Vec<i64> = records
            .iter()
            .flat_map(|r| r["samples"].as_array().unwrap().clone())
            .map(|s| s["ts"].as_i64().unwrap())
            .collect();
        assert_eq!(set_aside.len(), 3);
        assert!(records.iter().any(|r| r["error"] == "item too long"));
        assert!(records.iter().any(|r| r["error"] == "value 13 refused"));
    }

    #[tokio::test]
    async fn refused_rows_the_disk_will_not_take_hold_the_checkpoint_until_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) =
            crate::sinks::tests::test_handle(&dir.path().join("spool"), 16, false);
        let queue = crate::sinks::tests::test_queue(receiver, spool, stats.clone());
        // The rejected files' directory cannot be made (a file holds its parent's name: a
        // real ENOTDIR, as a full disk gives ENOSPC).
        let parent = dir.path().join("rejected");
        std::fs::write(&parent, b"").unwrap();
        let settings = WriteSettings {
            name: "picky".into(),
            batch_rows: 10_000,
            linger: Duration::from_millis(10),
            rejected_dir: parent.join("picky"),
        };
        let writer = Picky {
            written: Default::default(),
            attempts: Default::default(),
        };
        let task = tokio::spawn(run(queue, writer, stats.clone(), settings));
        let (d, long) = (Id::from("D"), Id::from("much-too-long"));
        handle.send(SinkMessage::Samples(
            vec![Sample::number(d.clone(), long.clone(), 1, 1.0)].into(),
        ));
        let barrier = crate::sinks::Barrier::default();
        handle.send(SinkMessage::Barrier(barrier.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!barrier.is_done(), "a refused row only in memory");
        // Room again: the next barrier finds it written and passes.
        std::fs::remove_file(&parent).unwrap();
        let later = crate::sinks::Barrier::default();
        handle.send(SinkMessage::Barrier(later.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(later.is_done());
        drop(handle);
        assert!(task.await.unwrap(), "nothing lost");
        assert!(!stats.lost.load(Ordering::Relaxed));
        let files = crate::rotating::list(&parent.join("picky"), "rejected-", ".jsonl").unwrap();
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("much-too-long"));
    }
}
