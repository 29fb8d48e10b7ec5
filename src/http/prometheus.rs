//! `GET /metrics`: every metric in Prometheus text format (names in DESIGN.md §8), from the
//! same lists `/api/v1/status` shows ([`crate::metrics::Metric`]).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::AppState;
use crate::metrics::{Kind, Metric, Reading};
use crate::sample::now_ms;

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its header, then a line per labelled value. `base` labels every line
/// (`sink="…"`), empty for none.
fn family(out: &mut String, name: &str, kind: Kind, help: &str, lines: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
    for (labels, value) in lines {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The lines of one metric, with `base` (e.g. `sink="mysql"`) among the labels.
fn lines(metric: &Metric, base: &str) -> Vec<(String, f64)> {
    let braces = |inner: String| {
        if inner.is_empty() {
            String::new()
        } else {
            format!("{{{inner}}}")
        }
    };
    match &metric.reading {
        Reading::Count(n) => vec![(braces(base.to_string()), *n as f64)],
        Reading::Flag(b) => vec![(braces(base.to_string()), f64::from(u8::from(*b)))],
        Reading::By(name, values) => values
            .iter()
            .map(|(value, n)| {
                let own = format!("{name}=\"{}\"", label(value));
                let all = if base.is_empty() {
                    own
                } else {
                    format!("{base},{own}")
                };
                (braces(all), *n as f64)
            })
            .collect(),
    }
}

/// The whole `/metrics` page.
pub(super) fn render(state: &AppState) -> String {
    let mut out = String::new();
    let mut singles = state.metrics.source_metrics();
    singles.extend(state.metrics.engine_metrics());
    if let Some(wal) = &state.wal {
        singles.extend(wal.metrics());
    }
    for m in &singles {
        family(&mut out, m.name, m.kind, m.help, &lines(m, ""));
    }
    // A family per sink metric, one line per sink.
    let sinks: Vec<(String, Vec<Metric>)> = state
        .sinks
        .iter()
        .map(|s| {
            let status = s.status();
            (
                format!("sink=\"{}\"", label(&status.name)),
                status.metrics(),
            )
        })
        .collect();
    if let Some((_, first)) = sinks.first() {
        for (i, m) in first.iter().enumerate() {
            let all: Vec<(String, f64)> = sinks
                .iter()
                .flat_map(|(base, metrics)| lines(&metrics[i], base))
                .collect();
            family(&mut out, m.name, m.kind, m.help, &all);
        }
    }
    let lag = state.metrics.engine.watermark().map_or(0.0, |w| {
        (now_ms().saturating_sub(w).max(0)) as f64 / 1_000.0
    });
    family(
        &mut out,
        "millstream_watermark_lag_seconds",
        Kind::Gauge,
        "Wall clock minus the lowest watermark of active keys.",
        &[(String::new(), lag)],
    );
    out
}
