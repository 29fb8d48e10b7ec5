//! Sinks: where samples and windows are stored. Every sink is a branch of the dataflow with its
//! own bounded queue, its own disk spool and its own writer: a slow sink never slows the
//! dataflow — when its queue is full, batches spool to disk and are written, in order, once the
//! sink catches up. A stopping sink reads its spool for a few seconds more; a longer backlog
//! stays on disk and is written first next time.
//!
//! Layout:
//! - this file: what a sink receives ([`SinkMessage`]), its queue and counters ([`SinkHandle`],
//!   [`SinkStats`]), starting the configured sinks, and their health checks.
//! - one folder per store, each with the same rooms: `mod.rs` (spawn: configuration to a
//!   running writer task), `config.rs` (what the configuration becomes for the store, and the
//!   health check `millstream check` runs), `writer.rs` (the one write and which of its errors
//!   may pass): [`mysql`] and [`sqlite`] through sqlx (idempotent batched inserts), [`influx`]
//!   (1.x and 2.x/3.x/Cloud, line protocol over HTTP), [`parquet`] (a thin adapter: the lake's
//!   format is `crate::lake`'s).
//! - [`sql`]: what the SQL sinks share (placeholders, text width).
//! - [`writer`]: the batching, retry and rejection loop of the network sinks.
//! - [`spool`]: where batches go when a sink's queue is full, so the dataflow never waits.
//!
//! A new store is a new folder of that shape, a variant of `crate::config::StoreConfig`, and
//! one arm in [`Sinks::start`] and [`healthcheck`].

pub mod influx;
pub mod mysql;
pub mod parquet;
pub mod spool;
pub mod sql;
pub mod sqlite;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::codec::Rows;
use crate::config::{SinkConfig, SinkKind, StoreConfig, StreamKind};
use crate::metrics::Metric;
use crate::sample::Sample;
use crate::window::WindowRow;

/// What a sink is sent. Batches are shared between sinks.
#[derive(Debug, Clone)]
pub enum SinkMessage {
    Samples(Arc<[Sample]>),
    Windows(Arc<[WindowRow]>),
    /// Periodic: lets a sink roll files by age or flush by linger time while no data comes.
    Tick,
    /// The write-ahead log's checkpoint: make everything received before it durable, then
    /// mark it done.
    Barrier(Barrier),
}

impl SinkMessage {
    /// The rows it carries, as the spool records them (`None`: not data).
    pub fn rows(&self) -> Option<Rows> {
        match self {
            SinkMessage::Samples(s) => Some(Rows::Samples(s.clone())),
            SinkMessage::Windows(w) => Some(Rows::Windows(w.clone())),
            SinkMessage::Tick | SinkMessage::Barrier(_) => None,
        }
    }
}

impl From<Rows> for SinkMessage {
    fn from(rows: Rows) -> SinkMessage {
        match rows {
            Rows::Samples(s) => SinkMessage::Samples(s),
            Rows::Windows(w) => SinkMessage::Windows(w),
        }
    }
}

/// A checkpoint's request to one sink: done once everything the sink received before it is
/// durable in the store. It travels in order with the data — through the queue, or the spool
/// when the sink is behind — and the sink marks it done only once it has written everything
/// it took before it (the SQL and Influx writers: their batch, retries included, and the rows
/// they refused in the rejected files; the lake: its open files completed, with no row of a
/// failed file still to be written again).
#[derive(Debug, Clone, Default)]
pub struct Barrier(Arc<AtomicBool>);

impl Barrier {
    pub fn done(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A sink's counters, shown by `/api/v1/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub healthy: AtomicBool,
    /// Rows written (samples plus windows).
    pub written: AtomicU64,
    /// Rows that could not be written.
    pub failed: AtomicU64,
    /// Rows given up (not retried).
    pub dropped: AtomicU64,
    /// Rows not written again because the store held them already (the lake, in a replay).
    pub skipped: AtomicU64,
    pub retries: AtomicU64,
    /// Rows this sink received were lost to a local failure beyond what it holds in memory
    /// (its spool's or rejected files' disk refused them past the hold's bound): no checkpoint
    /// barrier is passed any more, so the write-ahead log keeps them for the next start.
    pub lost: AtomicBool,
    /// Messages waiting in the queue (gauge).
    pub queued: AtomicU64,
    /// Bytes waiting in the spool (gauge).
    pub spooled_bytes: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl SinkStats {
    pub fn ok(&self, rows: u64) {
        self.written.fetch_add(rows, Ordering::Relaxed);
        self.healthy.store(true, Ordering::Relaxed);
    }

    pub fn error(&self, rows: u64, error: &str) {
        self.failed.fetch_add(rows, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
        *self.last_error.lock().expect("stats lock") = Some(error.to_string());
    }
}

/// A point-in-time view of a sink (DESIGN.md §8 `/api/v1/status`).
#[derive(Debug, Clone)]
pub struct SinkStatus {
    pub name: String,
    pub kind: &'static str,
    pub healthy: bool,
    pub queued: usize,
    pub spooled_bytes: u64,
    pub written: u64,
    pub failed: u64,
    pub retries: u64,
    pub dropped: u64,
    pub skipped: u64,
    pub last_error: Option<String>,
}

impl SinkStatus {
    /// The sink's metrics (`/metrics` labels them with `sink`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::flag(
                "healthy",
                "millstream_sink_healthy",
                "1 while the sink's last write succeeded.",
                self.healthy,
            ),
            Metric::gauge(
                "queued",
                "millstream_sink_queued",
                "Batches waiting in the sink's queue.",
                self.queued as u64,
            ),
            Metric::gauge(
                "spooled_bytes",
                "millstream_sink_spooled_bytes",
                "Bytes spooled to disk, per sink.",
                self.spooled_bytes,
            ),
            Metric::counter(
                "written",
                "millstream_sink_written_total",
                "Rows written, per sink.",
                self.written,
            ),
            Metric::counter(
                "failed",
                "millstream_sink_failed_total",
                "Rows that failed to write, per sink.",
                self.failed,
            ),
            Metric::counter(
                "retries",
                "millstream_sink_retries_total",
                "Write attempts retried after a transient failure, per sink.",
                self.retries,
            ),
            Metric::counter(
                "dropped",
                "millstream_sink_dropped_total",
                "Rows given up, per sink.",
                self.dropped,
            ),
            Metric::counter(
                "skipped",
                "millstream_sink_skipped_total",
                "Rows not written again because the store held them already (the lake, in a replay).",
                self.skipped,
            ),
        ]
    }

    /// As `/api/v1/status` lists it: name, kind, last error and every metric.
    pub fn json(&self) -> serde_json::Value {
        let mut object = crate::metrics::json_object(&self.metrics());
        object.insert("name".into(), self.name.clone().into());
        object.insert("kind".into(), self.kind.into());
        object.insert("last_error".into(), self.last_error.clone().into());
        object.into()
    }
}

/// The sending side of a running sink.
#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub kind: SinkKind,
    pub streams: Vec<StreamKind>,
    sender: mpsc::Sender<SinkMessage>,
    spool: spool::SharedSpool,
    pub stats: Arc<SinkStats>,
    /// Wait for room in a full queue instead of spooling (a replay: no live source to keep
    /// up with, and spooling would only add work).
    backpressure: bool,
}

impl SinkHandle {
    pub fn wants(&self, stream: StreamKind) -> bool {
        self.streams.contains(&stream)
    }

    /// Sends from a dataflow worker thread; never waits: a full queue spills to the spool
    /// (and once spooling, everything spools until the sink has caught up, to keep order).
    pub fn send(&self, message: SinkMessage) {
        let mut spool = self.spool.lock().expect("spool lock");
        let message = if spool.is_empty() {
            // Counted before sending: the sink may take it (and count it down) at once.
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            match self.sender.try_send(message) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(message))
                    if self.backpressure && !matches!(message, SinkMessage::Barrier(_)) =>
                {
                    // Not holding the spool while waiting: the sink locks it to read on.
                    drop(spool);
                    // Dataflow worker threads only (never inside the async runtime).
                    if self.sender.blocking_send(message).is_err() {
                        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(sink = %self.name, "sink stopped; data for it is lost");
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Full(message)) => {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    message
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(sink = %self.name, "sink stopped; data for it is lost");
                    return;
                }
            }
        } else {
            message
        };
        // A barrier too: it waits in its place behind what it must see written.
        match spool.push(&message) {
            Ok(dropped) => {
                if dropped > 0 {
                    self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            Err(e) => {
                let rows = message.rows().map_or(0, |r| r.len());
                if !self.stats.lost.swap(true, Ordering::Relaxed) {
                    tracing::error!(sink = %self.name, error = %e, "cannot spool; the write-ahead log keeps what is lost for the next start");
                }
                self.stats.error(rows, &format!("cannot spool: {e}"));
                self.stats.dropped.fetch_add(rows, Ordering::Relaxed);
            }
        }
        self.stats
            .spooled_bytes
            .store(spool.bytes(), Ordering::Relaxed);
    }

    /// Sends a tick unless the queue is full (a busy sink needs no reminder).
    pub fn tick(&self) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.sender.try_send(SinkMessage::Tick).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The counters alone, for readers that must not keep the queue open.
    pub fn monitor(&self) -> SinkMonitor {
        SinkMonitor {
            name: self.name.clone(),
            kind: self.kind,
            stats: self.stats.clone(),
        }
    }
}

/// A sink's name, kind and counters, without its queue.
#[derive(Debug, Clone)]
pub struct SinkMonitor {
    pub name: String,
    pub kind: SinkKind,
    pub stats: Arc<SinkStats>,
}

impl SinkMonitor {
    pub fn status(&self) -> SinkStatus {
        let s = &self.stats;
        SinkStatus {
            name: self.name.clone(),
            kind: self.kind.as_str(),
            healthy: s.healthy.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed) as usize,
            spooled_bytes: s.spooled_bytes.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            last_error: s.last_error.lock().expect("stats lock").clone(),
        }
    }
}

/// The receiving side of a sink: its queue first (older), then its spool.
pub struct SinkQueue {
    receiver: mpsc::Receiver<SinkMessage>,
    spool: spool::SharedSpool,
    stats: Arc<SinkStats>,
    /// Set when the producers are gone: until then the spool is still read at shutdown.
    drain_until: Option<std::time::Instant>,
}

/// How long a stopping sink goes on reading its spool. Batches may spill there just before a
/// stop (a queue briefly full while the last windows are flushed); written now, a healthy
/// store is complete after a clean stop. A longer backlog stays on disk for the next start.
pub const SPOOL_DRAIN_AT_STOP: std::time::Duration = std::time::Duration::from_secs(5);

impl SinkQueue {
    fn take_spooled(&mut self) -> Option<SinkMessage> {
        let mut spool = self.spool.lock().expect("spool lock");
        let message = match spool.pop() {
            Ok(m) => m,
            Err(e) => {
                self.stats.error(0, &format!("cannot read the spool: {e}"));
                None
            }
        };
        self.stats
            .spooled_bytes
            .store(spool.bytes(), Ordering::Relaxed);
        message
    }

    fn got(&self, message: Option<SinkMessage>) -> Option<SinkMessage> {
        if message.is_some() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        }
        message
    }

    /// The next message: the queue first (older), then the spool; `None` once the producers
    /// are gone, the queue is empty, and the spool is read to its end or
    /// [`SPOOL_DRAIN_AT_STOP`] has passed. A longer backlog stays on disk (synced) for the next
    /// start, so that stopping takes seconds, not the hours an outage may have piled up.
    pub async fn next(&mut self) -> Option<SinkMessage> {
        match self.receiver.try_recv() {
            Ok(m) => return self.got(Some(m)),
            Err(mpsc::error::TryRecvError::Disconnected) => return self.closed(),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if let Some(m) = self.take_spooled() {
            return Some(m);
        }
        match self.receiver.recv().await {
            Some(m) => self.got(Some(m)),
            None => self.closed(),
        }
    }

    /// Stopping: the spool's backlog stays for the next start, synced so that the write-ahead
    /// log may let go of it.
    fn closed(&mut self) -> Option<SinkMessage> {
        let deadline = *self
            .drain_until
            .get_or_insert_with(|| std::time::Instant::now() + SPOOL_DRAIN_AT_STOP);
        if std::time::Instant::now() < deadline
            && let Some(message) = self.take_spooled()
        {
            return Some(message);
        }
        let mut spool = self.spool.lock().expect("spool lock");
        if !spool.is_empty() {
            tracing::info!(
                bytes = spool.bytes(),
                "a backlog stays spooled for the next start"
            );
            if let Err(e) = spool.sync() {
                self.stats.lost.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot sync the spool at shutdown; the write-ahead log keeps its rows for the next start");
            }
        }
        None
    }

    /// The producers are gone: the engine is shutting down.
    pub fn is_closing(&self) -> bool {
        self.receiver.is_closed()
    }

    /// At shutdown, with the store unreachable: the held rows and everything still queued go
    /// to the spool, to be written first at the next start.
    pub fn spool_remaining(&mut self, held: writer::Batch) {
        let mut messages = Vec::new();
        if !held.samples.is_empty() {
            messages.push(SinkMessage::Samples(held.samples.into()));
        }
        if !held.windows.is_empty() {
            messages.push(SinkMessage::Windows(held.windows.into()));
        }
        while let Ok(m) = self.receiver.try_recv() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            if !matches!(m, SinkMessage::Tick) {
                messages.push(m);
            }
        }
        let mut spool = self.spool.lock().expect("spool lock");
        for message in &messages {
            match spool.push(message) {
                Ok(dropped) => {
                    self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
                Err(e) => {
                    let rows = message.rows().map_or(0, |r| r.len());
                    self.stats.lost.store(true, Ordering::Relaxed);
                    tracing::error!(rows, error = %e, "cannot spool at shutdown; the write-ahead log keeps these rows for the next start");
                    self.stats.dropped.fetch_add(rows, Ordering::Relaxed);
                }
            }
        }
        if let Err(e) = spool.sync() {
            self.stats.lost.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot sync the spool at shutdown; the write-ahead log keeps its rows for the next start");
        }
        self.stats
            .spooled_bytes
            .store(spool.bytes(), Ordering::Relaxed);
    }

    /// [`SinkQueue::next`] for sinks running on their own thread.
    pub fn blocking_next(&mut self) -> Option<SinkMessage> {
        match self.receiver.try_recv() {
            Ok(m) => return self.got(Some(m)),
            Err(mpsc::error::TryRecvError::Disconnected) => return self.closed(),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if let Some(m) = self.take_spooled() {
            return Some(m);
        }
        match self.receiver.blocking_recv() {
            Some(m) => self.got(Some(m)),
            None => self.closed(),
        }
    }
}

/// Running sinks: handles to send to, and the tasks to wait for.
pub struct Sinks {
    pub handles: Vec<SinkHandle>,
    tasks: Vec<tokio::task::JoinHandle<bool>>,
}

impl Sinks {
    /// Starts every configured sink, each with its spool under `state_dir/spool/<name>`. Fails
    /// (before anything runs) if one cannot start.
    pub async fn start(
        configs: &[SinkConfig],
        state_dir: &std::path::Path,
    ) -> Result<Sinks, String> {
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for config in configs {
            let (sender, receiver) = mpsc::channel(config.common.queue.max(1));
            let stats = Arc::new(SinkStats::default());
            stats.healthy.store(true, Ordering::Relaxed);
            let dir = state_dir.join("spool").join(&config.common.name);
            let spool = spool::Spool::open(&dir, config.common.spool_limit.0).map_err(|e| {
                format!(
                    "sink {:?}: cannot open its spool {}: {e}",
                    config.common.name,
                    dir.display()
                )
            })?;
            if !spool.is_empty() {
                tracing::info!(sink = %config.common.name, bytes = spool.bytes(), "writing the backlog spooled by a previous run first");
            }
            stats.spooled_bytes.store(spool.bytes(), Ordering::Relaxed);
            let spool = Arc::new(std::sync::Mutex::new(spool));
            let queue = SinkQueue {
                receiver,
                spool: spool.clone(),
                stats: stats.clone(),
                drain_until: None,
            };
            let common = &config.common;
            let task = match &config.store {
                StoreConfig::Parquet(c) => parquet::spawn(common, c, queue, stats.clone())?,
                StoreConfig::Sqlite(c) => {
                    sqlite::spawn(common, c, queue, stats.clone(), state_dir).await?
                }
                StoreConfig::Mysql(c) => mysql::spawn(common, c, queue, stats.clone(), state_dir)?,
                StoreConfig::Influx(c) => {
                    influx::spawn(common, c, queue, stats.clone(), state_dir)?
                }
            };
            handles.push(SinkHandle {
                name: common.name.clone(),
                kind: config.kind(),
                streams: common.streams.clone(),
                sender,
                spool,
                stats,
                backpressure: common.replay,
            });
            tasks.push(task);
        }
        Ok(Sinks { handles, tasks })
    }

    /// Closes every queue and waits for the sinks to write what they hold. `true` when every
    /// row they received is durable (in its store, a complete file, or the synced spool).
    pub async fn finish(self) -> bool {
        drop(self.handles);
        let mut durable = true;
        for task in self.tasks {
            durable &= task.await.unwrap_or(false);
        }
        durable
    }
}

/// Whether the sink's store can be reached and written (`millstream check`), within
/// `timeout` for a store across the network.
pub async fn healthcheck(config: &SinkConfig, timeout: std::time::Duration) -> Result<(), String> {
    match &config.store {
        StoreConfig::Mysql(c) => mysql::healthcheck(c, timeout).await,
        StoreConfig::Influx(c) => influx::healthcheck(c, timeout).await,
        StoreConfig::Sqlite(c) => sqlite::healthcheck(c),
        StoreConfig::Parquet(c) => parquet::healthcheck(c),
    }
}

/// Whether files can be created in `dir` (or, if it does not exist yet, in its nearest existing
/// ancestor, where millstream would create it). Creates nothing that stays.
pub(crate) fn writable(dir: &std::path::Path) -> Result<(), String> {
    use std::path::Path;
    let existing = dir
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.is_dir())
        .unwrap_or(Path::new("."));
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let probe = existing.join(format!(".millstream-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::id::Id;

    /// The receiving side of a [`test_handle`].
    pub(crate) fn test_queue(
        receiver: mpsc::Receiver<SinkMessage>,
        spool: spool::SharedSpool,
        stats: Arc<SinkStats>,
    ) -> SinkQueue {
        SinkQueue {
            receiver,
            spool,
            stats,
            drain_until: None,
        }
    }

    /// A sink handle on a queue of `capacity` batches with its spool in `dir`.
    pub(crate) fn test_handle(
        dir: &std::path::Path,
        capacity: usize,
        backpressure: bool,
    ) -> (
        SinkHandle,
        mpsc::Receiver<SinkMessage>,
        spool::SharedSpool,
        Arc<SinkStats>,
    ) {
        let (sender, receiver) = mpsc::channel(capacity);
        let stats = Arc::new(SinkStats::default());
        let spool = Arc::new(std::sync::Mutex::new(
            spool::Spool::open(dir, 1 << 30).unwrap(),
        ));
        let handle = SinkHandle {
            name: "t".into(),
            kind: SinkKind::Sqlite,
            streams: vec![StreamKind::Samples],
            sender,
            spool: spool.clone(),
            stats: stats.clone(),
            backpressure,
        };
        (handle, receiver, spool, stats)
    }

    #[tokio::test]
    async fn a_full_queue_spills_to_the_spool_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) = test_handle(dir.path(), 2, false);
        let mut queue = SinkQueue {
            receiver,
            spool,
            stats: stats.clone(),
            drain_until: None,
        };
        let d: Id = Id::from("D");
        let batch = |ts: i64| {
            SinkMessage::Samples(vec![Sample::number(d.clone(), d.clone(), ts, 0.0)].into())
        };
        // Nobody reads: two batches fit the queue, the rest spool (never blocking the sender).
        for ts in 0..10 {
            handle.send(batch(ts));
        }
        assert_eq!(stats.queued.load(Ordering::Relaxed), 2);
        assert!(stats.spooled_bytes.load(Ordering::Relaxed) > 0);
        // Read a few, send more: they queue behind the spool.
        let mut order = Vec::new();
        for _ in 0..4 {
            if let Some(SinkMessage::Samples(s)) = queue.next().await {
                order.push(s[0].ts);
            }
        }
        for ts in 10..13 {
            handle.send(batch(ts));
        }
        drop(handle);
        while let Some(m) = queue.next().await {
            if let SinkMessage::Samples(s) = m {
                order.push(s[0].ts);
            }
        }
        // A stop reads the spool to its end (within SPOOL_DRAIN_AT_STOP): everything, in order.
        assert_eq!(order, (0..13).collect::<Vec<_>>());
        assert!(queue.spool.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_backlog_longer_than_the_stop_allows_stays_spooled_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) = test_handle(dir.path(), 1, false);
        let d: Id = Id::from("D");
        for ts in 0..5 {
            handle.send(SinkMessage::Samples(
                vec![Sample::number(d.clone(), d.clone(), ts, 0.0)].into(),
            ));
        }
        drop(handle);
        let mut queue = SinkQueue {
            receiver,
            spool: spool.clone(),
            stats,
            // The stop's reading time is already spent.
            drain_until: Some(std::time::Instant::now()),
        };
        let mut got = Vec::new();
        while let Some(SinkMessage::Samples(s)) = queue.next().await {
            got.push(s[0].ts);
        }
        assert_eq!(got, vec![0], "only the queued batch");
        drop(queue);
        drop(spool);
        let mut reopened = spool::Spool::open(dir.path(), 1 << 30).unwrap();
        let mut rest = Vec::new();
        while let Some(SinkMessage::Samples(s)) = reopened.pop().unwrap() {
            rest.push(s[0].ts);
        }
        assert_eq!(rest, vec![1, 2, 3, 4], "the backlog, for the next start");
    }

    #[test]
    fn with_backpressure_a_full_queue_makes_the_senders_wait_and_nothing_spools() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) = test_handle(dir.path(), 1, true);
        // Two dataflow worker threads send 50 batches each into a queue of one, while the
        // sink reads through its queue (which takes the spool's lock): nobody may deadlock.
        let senders: Vec<_> = (0..2)
            .map(|worker| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    let d: Id = Id::from(format!("D{worker}"));
                    for ts in 0..50 {
                        handle.send(SinkMessage::Samples(
                            vec![Sample::number(d.clone(), d.clone(), ts, 0.0)].into(),
                        ));
                    }
                })
            })
            .collect();
        drop(handle);
        let mut queue = SinkQueue {
            receiver,
            spool: spool.clone(),
            stats: stats.clone(),
            drain_until: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got: Vec<(String, i64)> = runtime.block_on(async {
            let mut got = Vec::new();
            while let Some(m) =
                tokio::time::timeout(std::time::Duration::from_secs(10), queue.next())
                    .await
                    .expect("a sender or the sink is stuck")
            {
                if let SinkMessage::Samples(s) = m {
                    got.push((s[0].device.to_string(), s[0].ts));
                }
            }
            got
        });
        senders.into_iter().for_each(|t| t.join().unwrap());
        for worker in ["D0", "D1"] {
            let order: Vec<i64> = got
                .iter()
                .filter(|(d, _)| d == worker)
                .map(|(_, ts)| *ts)
                .collect();
            assert_eq!(order, (0..50).collect::<Vec<_>>(), "{worker}");
        }
        assert!(spool.lock().unwrap().is_empty());
        assert_eq!(stats.spooled_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_barrier_waits_in_order_behind_the_queue_and_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, receiver, spool, stats) = test_handle(dir.path(), 1, false);
        let mut queue = test_queue(receiver, spool, stats);
        let d: Id = Id::from("D");
        let batch = |ts: i64| {
            SinkMessage::Samples(vec![Sample::number(d.clone(), d.clone(), ts, 0.0)].into())
        };
        // One batch in the queue, two spooled, then the barrier (spooled in its place), then more.
        for ts in 0..3 {
            handle.send(batch(ts));
        }
        let barrier = Barrier::default();
        handle.send(SinkMessage::Barrier(barrier.clone()));
        handle.send(batch(3));
        let mut order = Vec::new();
        for _ in 0..5 {
            match queue.next().await.unwrap() {
                SinkMessage::Samples(s) => order.push(s[0].ts.to_string()),
                SinkMessage::Barrier(b) => {
                    assert!(!b.is_done(), "nothing marks it done but the sink");
                    order.push("barrier".into());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(order, ["0", "1", "2", "barrier", "3"]);
        // A barrier with nothing before it goes through the queue.
        let quick = Barrier::default();
        handle.send(SinkMessage::Barrier(quick));
        assert!(matches!(queue.next().await, Some(SinkMessage::Barrier(_))));
    }
}
