//! `GET /metrics`: every counter in Prometheus text format (names in DESIGN.md §8).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::config::HumanDuration;
use crate::engine::AppState;
use crate::sample::now_ms;

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = String::new();
    let s = state.metrics.source.snapshot();
    let e = &state.metrics.engine;
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v as f64)];
    metric(
        "millstream_messages_total",
        "counter",
        "MQTT messages received.",
        &plain(s.messages),
    );
    metric(
        "millstream_samples_total",
        "counter",
        "Samples decoded.",
        &plain(s.samples),
    );
    metric(
        "millstream_probe_requests_total",
        "counter",
        "NC-Link probe requests sent (in a cluster, by the process that owns the device).",
        &plain(s.probe_requests),
    );
    metric(
        "millstream_late_samples_total",
        "counter",
        "Samples older than their key's watermark (stored raw, not windowed).",
        &plain(e.late_samples.load(Ordering::Relaxed)),
    );
    let dead: Vec<(String, f64)> = s
        .dead_letters
        .iter()
        .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n as f64))
        .collect();
    metric(
        "millstream_dead_letters_total",
        "counter",
        "Messages refused, by reason.",
        &dead,
    );
    let windows: Vec<(String, f64)> = e
        .windows_emitted
        .lock()
        .expect("metrics lock")
        .iter()
        .map(|(size, n)| {
            (
                format!("{{size=\"{}\"}}", HumanDuration::from_millis(*size as u64)),
                *n as f64,
            )
        })
        .collect();
    metric(
        "millstream_windows_emitted_total",
        "counter",
        "Windows closed and emitted, by size.",
        &windows,
    );
    let sinks: Vec<_> = state.sinks.iter().map(|m| m.status()).collect();
    let per_sink = |f: &dyn Fn(&crate::sinks::SinkStatus) -> f64| -> Vec<(String, f64)> {
        sinks
            .iter()
            .map(|s| (format!("{{sink=\"{}\"}}", s.name), f(s)))
            .collect()
    };
    metric(
        "millstream_sink_written_total",
        "counter",
        "Rows written, per sink.",
        &per_sink(&|s| s.written as f64),
    );
    metric(
        "millstream_sink_failed_total",
        "counter",
        "Rows that failed to write, per sink.",
        &per_sink(&|s| s.failed as f64),
    );
    metric(
        "millstream_sink_queued",
        "gauge",
        "Batches waiting in the sink's queue.",
        &per_sink(&|s| s.queued as f64),
    );
    metric(
        "millstream_sink_spooled_bytes",
        "gauge",
        "Bytes spooled to disk, per sink.",
        &per_sink(&|s| s.spooled_bytes as f64),
    );
    metric(
        "millstream_sink_dropped_total",
        "counter",
        "Rows given up, per sink.",
        &per_sink(&|s| s.dropped as f64),
    );
    metric(
        "millstream_sink_retries_total",
        "counter",
        "Write attempts retried after a transient failure, per sink.",
        &per_sink(&|s| s.retries as f64),
    );
    metric(
        "millstream_sink_healthy",
        "gauge",
        "1 while the sink's last write succeeded.",
        &per_sink(&|s| f64::from(u8::from(s.healthy))),
    );
    if let Some(wal) = &state.wal {
        let w = wal.status();
        metric(
            "millstream_wal_bytes",
            "gauge",
            "Bytes in write-ahead log segments on disk.",
            &plain(w.bytes),
        );
        metric(
            "millstream_wal_segments",
            "gauge",
            "Write-ahead log segments on disk.",
            &plain(w.segments),
        );
        metric(
            "millstream_wal_syncs_total",
            "counter",
            "Group commits of the write-ahead log (fdatasync calls).",
            &plain(w.syncs),
        );
        metric(
            "millstream_wal_appended_samples_total",
            "counter",
            "Samples written to the write-ahead log.",
            &plain(w.appended_samples),
        );
        metric(
            "millstream_wal_recovered_samples_total",
            "counter",
            "Samples replayed from the write-ahead log at start-up.",
            &plain(w.recovered_samples),
        );
        metric(
            "millstream_wal_write_errors_total",
            "counter",
            "Failed write-ahead log writes or syncs (messages left unacknowledged).",
            &plain(w.write_errors),
        );
        metric(
            "millstream_wal_torn_records_total",
            "counter",
            "Write-ahead log records found cut short by a crash at replay.",
            &plain(w.torn_records),
        );
        metric(
            "millstream_wal_corrupt_records_total",
            "counter",
            "Write-ahead log records found corrupt (skipped) at replay.",
            &plain(w.corrupt_records),
        );
    }
    let lag = e
        .watermark()
        .map_or(0.0, |w| ((now_ms() - w).max(0)) as f64 / 1_000.0);
    metric(
        "millstream_watermark_lag_seconds",
        "gauge",
        "Wall clock minus the lowest watermark of active keys.",
        &[(String::new(), lag)],
    );
    metric(
        "millstream_source_connected",
        "gauge",
        "1 when the broker connection is up.",
        &plain(u64::from(s.connected)),
    );
    metric(
        "millstream_devices",
        "gauge",
        "Devices known.",
        &plain(s.devices),
    );
    metric(
        "millstream_query_timeouts_total",
        "counter",
        "Polled queries not answered in time.",
        &plain(s.query_timeouts),
    );
    metric(
        "millstream_sse_clients",
        "gauge",
        "Server-Sent Events clients.",
        &plain(e.sse_clients.load(Ordering::Relaxed)),
    );
    metric(
        "millstream_sse_lagged_total",
        "counter",
        "Events slow SSE clients missed.",
        &plain(e.sse_lagged.load(Ordering::Relaxed)),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
