//! Sinks: where samples and windows are stored. Every sink is a branch of the dataflow with its
//! own bounded queue and its own writer, so a slow sink slows only its own branch (once its
//! queue is full, the dataflow waits for it; spooling to disk comes with the network sinks).
//!
//! Layout:
//! - this file: what a sink receives ([`SinkMessage`]), its queue and counters ([`SinkHandle`],
//!   [`SinkStats`]), and starting the configured sinks.
//! - [`parquet`]: the Parquet lake (Hive layout, hidden until complete).
//! - [`sqlite`]: SQLite through sqlx, idempotent batched inserts.

pub mod parquet;
pub mod sqlite;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{SinkConfig, SinkKind, StreamKind};
use crate::sample::Sample;
use crate::window::WindowRow;

/// What a sink is sent. Batches are shared between sinks.
#[derive(Debug, Clone)]
pub enum SinkMessage {
    Samples(Arc<[Sample]>),
    Windows(Arc<[WindowRow]>),
    /// Periodic: lets a sink roll files by age or flush by linger time while no data comes.
    Tick,
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
    pub retries: AtomicU64,
    /// Messages waiting in the queue (gauge).
    pub queued: AtomicU64,
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
#[derive(Debug, Clone, Serialize)]
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
    pub last_error: Option<String>,
}

/// The sending side of a running sink.
#[derive(Clone)]
pub struct SinkHandle {
    pub name: String,
    pub kind: SinkKind,
    pub streams: Vec<StreamKind>,
    sender: mpsc::Sender<SinkMessage>,
    pub stats: Arc<SinkStats>,
}

impl SinkHandle {
    pub fn wants(&self, stream: StreamKind) -> bool {
        self.streams.contains(&stream)
    }

    /// Sends from a dataflow worker thread; waits while the queue is full.
    pub fn blocking_send(&self, message: SinkMessage) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if self.sender.blocking_send(message).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(sink = %self.name, "sink stopped; data for it is lost");
        }
    }

    /// Sends a tick unless the queue is full (a busy sink needs no reminder).
    pub fn tick(&self) {
        if self.sender.try_send(SinkMessage::Tick).is_ok() {
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
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
            spooled_bytes: 0,
            written: s.written.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            last_error: s.last_error.lock().expect("stats lock").clone(),
        }
    }
}

/// Takes the next message off a sink's queue, keeping the `queued` gauge right.
pub async fn next(
    receiver: &mut mpsc::Receiver<SinkMessage>,
    stats: &SinkStats,
) -> Option<SinkMessage> {
    let message = receiver.recv().await;
    if message.is_some() {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
    }
    message
}

/// [`next`] for sinks running on their own thread.
pub fn blocking_next(
    receiver: &mut mpsc::Receiver<SinkMessage>,
    stats: &SinkStats,
) -> Option<SinkMessage> {
    let message = receiver.blocking_recv();
    if message.is_some() {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
    }
    message
}

/// Running sinks: handles to send to, and the tasks to wait for.
pub struct Sinks {
    pub handles: Vec<SinkHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sinks {
    /// Starts every configured sink. Fails (before anything runs) if one cannot start.
    pub async fn start(configs: &[SinkConfig]) -> Result<Sinks, String> {
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for config in configs {
            let (sender, receiver) = mpsc::channel(config.queue.max(1));
            let stats = Arc::new(SinkStats::default());
            stats.healthy.store(true, Ordering::Relaxed);
            let task = match config.kind {
                SinkKind::Parquet => parquet::spawn(config, receiver, stats.clone())?,
                SinkKind::Sqlite => sqlite::spawn(config, receiver, stats.clone()).await?,
                SinkKind::Mysql | SinkKind::Influx => {
                    return Err(format!(
                        "sink {:?}: kind {:?} is not available yet (see the MySQL/InfluxDB issue)",
                        config.name,
                        config.kind.as_str()
                    ));
                }
            };
            handles.push(SinkHandle {
                name: config.name.clone(),
                kind: config.kind,
                streams: config.streams.clone(),
                sender,
                stats,
            });
            tasks.push(task);
        }
        Ok(Sinks { handles, tasks })
    }

    /// Closes every queue and waits for the sinks to write what they hold.
    pub async fn finish(self) {
        drop(self.handles);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
