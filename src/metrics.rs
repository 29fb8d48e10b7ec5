//! Every counter and gauge millstream keeps, in one place, so logs, `/api/v1/status` and
//! `/metrics` always agree. Counters are relaxed atomics: they are read for reporting, never
//! used to synchronise.
//!
//! Each part's counters are read out as one list of [`Metric`]s (here for the source and the
//! engine; `WalStats::metrics` and `SinkStatus::metrics` for the log and each sink): the
//! status endpoint shows every entry under its `key`, `/metrics` under its Prometheus `name`,
//! so a counter added to a list appears in both.

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

/// Whether a metric only grows or goes up and down (Prometheus `TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A metric's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Count(u64),
    Flag(bool),
    /// Counts by the value of one label (`reason`, `size`).
    By(&'static str, Vec<(String, u64)>),
}

impl Reading {
    /// As `/api/v1/status` shows it.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Reading::Count(n) => (*n).into(),
            Reading::Flag(b) => (*b).into(),
            Reading::By(_, values) => values
                .iter()
                .map(|(label, n)| (label.clone(), serde_json::Value::from(*n)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// One counter or gauge, as both `/api/v1/status` (under `key`) and `/metrics` (as `name`)
/// show it.
#[derive(Debug, Clone)]
pub struct Metric {
    pub key: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub reading: Reading,
}

impl Metric {
    pub fn counter(key: &'static str, name: &'static str, help: &'static str, n: u64) -> Self {
        Metric {
            key,
            name,
            kind: Kind::Counter,
            help,
            reading: Reading::Count(n),
        }
    }

    pub fn gauge(key: &'static str, name: &'static str, help: &'static str, n: u64) -> Self {
        Metric {
            key,
            name,
            kind: Kind::Gauge,
            help,
            reading: Reading::Count(n),
        }
    }

    pub fn flag(key: &'static str, name: &'static str, help: &'static str, on: bool) -> Self {
        Metric {
            key,
            name,
            kind: Kind::Gauge,
            help,
            reading: Reading::Flag(on),
        }
    }
}

/// The metrics of a list as a JSON object, by key.
pub fn json_object(metrics: &[Metric]) -> serde_json::Map<String, serde_json::Value> {
    metrics
        .iter()
        .map(|m| (m.key.to_string(), m.reading.json()))
        .collect()
}

impl Metrics {
    /// The source's metrics (`/api/v1/status` shows them under `source`; the engine's
    /// `late_samples` is among them there).
    pub fn source_metrics(&self) -> Vec<Metric> {
        let s = self.source.snapshot();
        let late = self.engine.late_samples.load(Ordering::Relaxed);
        vec![
            Metric::flag(
                "connected",
                "millstream_source_connected",
                "1 when the broker connection is up.",
                s.connected,
            ),
            Metric::counter(
                "connects",
                "millstream_connects_total",
                "Successful broker connections (the first and every reconnect).",
                s.connects,
            ),
            Metric::counter(
                "connection_errors",
                "millstream_connection_errors_total",
                "Failed connection attempts and dropped connections.",
                s.connection_errors,
            ),
            Metric::counter(
                "messages",
                "millstream_messages_total",
                "MQTT messages received.",
                s.messages,
            ),
            Metric::counter(
                "bytes",
                "millstream_received_bytes_total",
                "Payload bytes received.",
                s.bytes,
            ),
            Metric::counter(
                "samples",
                "millstream_samples_total",
                "Samples decoded.",
                s.samples,
            ),
            Metric::counter(
                "late_samples",
                "millstream_late_samples_total",
                "Samples older than their key's watermark (stored raw, not windowed).",
                late,
            ),
            Metric::counter(
                "not_ok_items",
                "millstream_not_ok_items_total",
                "Query answer items with a code other than OK (skipped).",
                s.not_ok_items,
            ),
            Metric {
                key: "dead_letters",
                name: "millstream_dead_letters_total",
                kind: Kind::Counter,
                help: "Messages refused, by reason.",
                reading: Reading::By(
                    "reason",
                    s.dead_letters
                        .iter()
                        .map(|(r, n)| (r.to_string(), *n))
                        .collect(),
                ),
            },
            Metric::counter(
                "dead_letter_write_errors",
                "millstream_dead_letter_write_errors_total",
                "Dead letters that could not be written to disk.",
                s.dead_letter_write_errors,
            ),
            Metric::counter(
                "dead_letters_unacknowledged",
                "millstream_dead_letters_unacknowledged_total",
                "Messages left unacknowledged because their dead letter could not be written (the broker sends them again).",
                s.dead_letters_unacknowledged,
            ),
            Metric::gauge("devices", "millstream_devices", "Devices known.", s.devices),
            Metric::counter(
                "models",
                "millstream_models_total",
                "Device models received.",
                s.models,
            ),
            Metric::counter(
                "probe_requests",
                "millstream_probe_requests_total",
                "NC-Link probe requests sent (in a cluster, by the process that owns the device).",
                s.probe_requests,
            ),
            Metric::counter(
                "query_requests",
                "millstream_query_requests_total",
                "Query requests sent by polling.",
                s.query_requests,
            ),
            Metric::counter(
                "query_answers",
                "millstream_query_answers_total",
                "Polled queries answered.",
                s.query_answers,
            ),
            Metric::counter(
                "query_timeouts",
                "millstream_query_timeouts_total",
                "Polled queries not answered in time.",
                s.query_timeouts,
            ),
            Metric::counter(
                "publish_failures",
                "millstream_publish_failures_total",
                "Requests that could not be handed to the MQTT client (its queue was full).",
                s.publish_failures,
            ),
            Metric::counter(
                "ack_failures",
                "millstream_ack_failures_total",
                "Acknowledgements that could not be handed to the MQTT client (the broker redelivers).",
                s.ack_failures,
            ),
            Metric::gauge(
                "pending_messages",
                "millstream_pending_messages",
                "Sample messages waiting for their device's model.",
                s.pending_messages,
            ),
            Metric::gauge(
                "buffered_bytes",
                "millstream_buffered_bytes",
                "Bytes of received messages not yet processed.",
                s.buffered_bytes,
            ),
        ]
    }

    /// The dataflow's and the API's metrics (`/api/v1/status` shows them at its top level).
    pub fn engine_metrics(&self) -> Vec<Metric> {
        let e = &self.engine;
        let windows = e
            .windows_emitted
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(size, n)| {
                (
                    crate::config::HumanDuration::from_millis((*size).max(0) as u64).to_string(),
                    *n,
                )
            })
            .collect();
        vec![
            Metric::counter(
                "dataflow_samples",
                "millstream_dataflow_samples_total",
                "Samples that entered the dataflow.",
                e.dataflow_samples.load(Ordering::Relaxed),
            ),
            Metric {
                key: "windows_emitted",
                name: "millstream_windows_emitted_total",
                kind: Kind::Counter,
                help: "Windows closed and emitted, by size.",
                reading: Reading::By("size", windows),
            },
            Metric::gauge(
                "sse_clients",
                "millstream_sse_clients",
                "Server-Sent Events clients.",
                e.sse_clients.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "sse_lagged",
                "millstream_sse_lagged_total",
                "Events slow SSE clients missed.",
                e.sse_lagged.load(Ordering::Relaxed),
            ),
        ]
    }
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
            dead_letters_unacknowledged: get(&self.dead_letters_unacknowledged),
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
    pub dead_letters_unacknowledged: u64,
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
