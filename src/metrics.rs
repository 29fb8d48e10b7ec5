//! Every counter and gauge millstream keeps, in one place, so logs, `/api/v1/status` and
//! `/metrics` always agree. Counters are relaxed atomics: they are read for reporting, never
//! used to synchronise.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use crate::nclink::Reason;

/// All of millstream's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub source: SourceMetrics,
    pub engine: EngineMetrics,
}

/// The dataflow and what surrounds it.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Samples that entered the dataflow.
    pub dataflow_samples: AtomicU64,
    /// Samples refused by windows as late (still stored by the raw sinks).
    pub late_samples: AtomicU64,
    /// Windows emitted, by size in ms.
    pub windows_emitted: std::sync::Mutex<BTreeMap<i64, u64>>,
    /// Lowest watermark over recently active keys, per worker (ms; `i64::MIN` when none).
    pub watermarks: std::sync::Mutex<BTreeMap<usize, i64>>,
    /// Server-Sent Events clients connected (gauge).
    pub sse_clients: AtomicU64,
    /// Events a slow SSE client missed (its bounded buffer overflowed).
    pub sse_lagged: AtomicU64,
}

impl EngineMetrics {
    pub fn windows_emitted(&self, rows: &[crate::window::WindowRow]) {
        let mut emitted = self.windows_emitted.lock().expect("metrics lock");
        for row in rows {
            *emitted.entry(row.size_ms).or_default() += 1;
        }
    }

    /// The lowest watermark over active keys of every worker.
    pub fn watermark(&self) -> Option<i64> {
        self.watermarks
            .lock()
            .expect("metrics lock")
            .values()
            .copied()
            .filter(|w| *w != i64::MIN)
            .min()
    }
}

/// The MQTT source and NC-Link platform.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// Whether the broker connection is up.
    pub connected: AtomicBool,
    /// Which connection may report `connected`: the newest one. A source being replaced (a
    /// switch to another broker) must not report its own shutdown as the engine's state.
    pub connection_owner: AtomicU64,
    /// Successful connections (the first and every reconnect).
    pub connects: AtomicU64,
    /// Failed connection attempts and dropped connections.
    pub connection_errors: AtomicU64,
    /// MQTT messages received.
    pub messages: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// Samples decoded and passed on.
    pub samples: AtomicU64,
    /// Query answer items with a code other than OK (skipped).
    pub not_ok_items: AtomicU64,
    /// Messages refused, by [`Reason`] (indexed by `Reason::index`).
    pub dead_letters: [AtomicU64; Reason::ALL.len()],
    /// Dead letters that could not be written to disk (they are still counted above).
    pub dead_letter_write_errors: AtomicU64,
    /// Messages left unacknowledged because their dead letter could not be written: the
    /// broker sends them again after a reconnect (the ingest makes one).
    pub dead_letters_unacknowledged: AtomicU64,
    /// Devices known.
    pub devices: AtomicU64,
    /// Device models received.
    pub models: AtomicU64,
    /// `Probe/Query/Request`s sent.
    pub probe_requests: AtomicU64,
    /// `Query/Request`s sent by polling.
    pub query_requests: AtomicU64,
    /// Polled queries answered.
    pub query_answers: AtomicU64,
    /// Polled queries not answered within the timeout.
    pub query_timeouts: AtomicU64,
    /// Requests that could not be handed to the MQTT client (its queue was full).
    pub publish_failures: AtomicU64,
    /// Acknowledgements that could not be handed to the MQTT client; the broker redelivers.
    pub ack_failures: AtomicU64,
    /// Sample messages waiting for their device's model (gauge).
    pub pending_messages: AtomicU64,
    /// Bytes of received messages not yet processed (gauge).
    pub buffered_bytes: AtomicU64,
}

impl SourceMetrics {
    pub fn dead_letter(&self, reason: Reason) {
        self.dead_letters[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SourceSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connects: get(&self.connects),
            connection_errors: get(&self.connection_errors),
            messages: get(&self.messages),
            bytes: get(&self.bytes),
            samples: get(&self.samples),
            not_ok_items: get(&self.not_ok_items),
            dead_letters: Reason::ALL
                .iter()
                .map(|r| (r.as_str(), get(&self.dead_letters[r.index()])))
                .collect(),
            dead_letter_write_errors: get(&self.dead_letter_write_errors),
            devices: get(&self.devices),
            models: get(&self.models),
            probe_requests: get(&self.probe_requests),
            query_requests: get(&self.query_requests),
            query_answers: get(&self.query_answers),
            query_timeouts: get(&self.query_timeouts),
            publish_failures: get(&self.publish_failures),
            ack_failures: get(&self.ack_failures),
            pending_messages: get(&self.pending_messages),
            buffered_bytes: get(&self.buffered_bytes),
        }
    }
}

/// A point-in-time copy of [`SourceMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSnapshot {
    pub connected: bool,
    pub connects: u64,
    pub connection_errors: u64,
    pub messages: u64,
    pub bytes: u64,
    pub samples: u64,
    pub not_ok_items: u64,
    pub dead_letters: BTreeMap<&'static str, u64>,
    pub dead_letter_write_errors: u64,
    pub devices: u64,
    pub models: u64,
    pub probe_requests: u64,
    pub query_requests: u64,
    pub query_answers: u64,
    pub query_timeouts: u64,
    pub publish_failures: u64,
    pub ack_failures: u64,
    pub pending_messages: u64,
    pub buffered_bytes: u64,
}

/// Increments a counter by one.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
