//! `millstream analyze --lake DIR`: historical statistics over the Parquet lake (polars):
//! windows of any `--every`, `--describe` (per item: first/last seen, count, share without a
//! numeric value, value range) and `--status-durations` (time per machine state), printed as
//! a table, CSV or JSON Lines (DESIGN.md §3). Progress on a terminal while scanning.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::{Failure, parse_duration};
use crate::config::HumanDuration;
use crate::lake::analyze::{self, Analysis, ItemDescription, Progress, Selection, StateDuration};
use crate::time::Utc;
use crate::window::WindowRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The lake directory (a parquet sink's `dir`).
    #[arg(long)]
    lake: PathBuf,
    /// Only this device.
    #[arg(long)]
    device: Option<String>,
    /// Only this item (NC-Link data item id).
    #[arg(long)]
    item: Option<String>,
    /// Window length, aligned to the epoch (e.g. 10s, 1m, 1h).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    every: HumanDuration,
    /// First event time (RFC 3339 or ms since the epoch).
    #[arg(long, value_parser = super::parse_time_arg)]
    from: Option<i64>,
    /// Event times before this one.
    #[arg(long, value_parser = super::parse_time_arg)]
    to: Option<i64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Per item: first and last seen, count, share without a numeric value, value range.
    #[arg(long, conflicts_with = "status_durations")]
    describe: bool,
    /// Time per machine state (STATUS item 010302) for each device.
    #[arg(long)]
    status_durations: bool,
    /// No progress line, even on a terminal.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// A progress line on stderr, rewritten as chunks finish.
struct Line {
    started: Instant,
}

impl Progress for Line {
    fn chunk_done(&mut self, done: usize, total: usize, bytes: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Kscanned {done}/{total} chunks, {:.1} MB, {:.1} MB/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs
        );
        let _ = err.flush();
    }
}

pub fn run(args: AnalyzeArgs) -> Result<(), Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(Failure::Usage(vec![
            "analyze: --from must be before --to".into(),
        ]));
    }
    let every = args.every.as_millis() as i64;
    if every <= 0 {
        return Err(Failure::Usage(vec![
            "analyze: --every must be at least 1ms".into(),
        ]));
    }
    let selection = Selection {
        device: args.device.clone(),
        item: args.item.clone(),
        from: args.from,
        to: args.to,
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let mut line = Line {
        started: Instant::now(),
    };
    let mut silent = ();
    let progress: &mut dyn Progress = if show_progress {
        &mut line
    } else {
        &mut silent
    };
    let failed = |e: analyze::AnalyzeError| Failure::Runtime(e.to_string());
    let mut out = std::io::stdout().lock();
    let written = if args.describe {
        let analysis = analyze::describe(&args.lake, &selection, progress).map_err(failed)?;
        finish_progress(show_progress, &analysis.skipped);
        print_descriptions(&mut out, &analysis, args.format)
    } else if args.status_durations {
        let analysis =
            analyze::status_durations(&args.lake, &selection, progress).map_err(failed)?;
        finish_progress(show_progress, &analysis.skipped);
        print_durations(&mut out, &analysis, args.format)
    } else {
        let analysis = analyze::windows(&args.lake, &selection, every, progress).map_err(failed)?;
        finish_progress(show_progress, &analysis.skipped);
        print_windows(&mut out, &analysis, args.format)
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // `analyze … | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(format!("cannot write the results: {e}"))),
    }
}

fn finish_progress(shown: bool, skipped: &[String]) {
    if shown {
        eprint!("\r\x1b[2K");
    }
    for why in skipped {
        eprintln!("skipped: {why}");
    }
}

/// RFC 3339 UTC with milliseconds.
fn iso(ms: i64) -> String {
    let mut text = Utc::from_ms(ms).sql();
    text.replace_range(10..11, "T");
    text.push('Z');
    text
}

fn num(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        v.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

fn json_num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Prints rows as an aligned table (right-aligned but for the first `left` columns).
fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    left: usize,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < left {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(
        out,
        "{}",
        line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

fn csv(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let quote = |c: &String| {
        if c.contains([',', '"', '\n']) {
            format!("\"{}\"", c.replace('"', "\"\""))
        } else {
            c.clone()
        }
    };
    writeln!(out, "{}", header.join(","))?;
    for row in rows {
        writeln!(
            out,
            "{}",
            row.iter().map(quote).collect::<Vec<_>>().join(",")
        )?;
    }
    Ok(())
}

/// A window's columns: its key, then its statistics in `crate::window::STATS` order.
static WINDOW_HEADER: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    ["device", "item", "start", "end", "count"]
        .into_iter()
        .chain(crate::window::STATS)
        .collect()
});

/// How one kind of result prints: its columns (the first `left` aligned left in tables), its
/// cells as text, and its JSON object.
struct Layout<T> {
    header: &'static [&'static str],
    left: usize,
    cells: fn(&T) -> Vec<String>,
    json: fn(&T) -> serde_json::Value,
}

fn print<T>(
    out: &mut impl Write,
    rows: &[T],
    format: Format,
    layout: Layout<T>,
) -> std::io::Result<()> {
    if format == Format::Json {
        for row in rows {
            writeln!(out, "{}", (layout.json)(row))?;
        }
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows.iter().map(layout.cells).collect();
    match format {
        Format::Csv => csv(out, layout.header, &cells),
        _ => table(out, layout.header, &cells, layout.left),
    }
}

fn print_windows(
    out: &mut impl Write,
    analysis: &Analysis<WindowRow>,
    format: Format,
) -> std::io::Result<()> {
    print(
        out,
        &analysis.rows,
        format,
        Layout {
            header: &WINDOW_HEADER[..],
            left: 4,
            // A statistic that is not a number (no stddev below two values) prints empty.
            cells: |w| {
                let mut cells = vec![
                    w.device.to_string(),
                    w.item.to_string(),
                    iso(w.start),
                    iso(w.end),
                    w.count.to_string(),
                ];
                cells.extend(w.stats().map(num));
                cells
            },
            json: |w| {
                let mut row = serde_json::json!({
                    "device": &*w.device, "item": &*w.item, "start": w.start, "end": w.end,
                    "count": w.count,
                });
                for (name, v) in crate::window::STATS.into_iter().zip(w.stats()) {
                    row[name] = json_num(v);
                }
                row
            },
        },
    )
}

fn print_descriptions(
    out: &mut impl Write,
    analysis: &Analysis<ItemDescription>,
    format: Format,
) -> std::io::Result<()> {
    print(
        out,
        &analysis.rows,
        format,
        Layout {
            header: &[
                "device",
                "item",
                "first_seen",
                "last_seen",
                "count",
                "null_share",
                "min",
                "max",
            ],
            left: 4,
            cells: |d| {
                vec![
                    d.device.clone(),
                    d.item.clone(),
                    iso(d.first_seen),
                    iso(d.last_seen),
                    d.count.to_string(),
                    format!("{:.4}", d.null_share),
                    opt(d.min),
                    opt(d.max),
                ]
            },
            json: |d| serde_json::to_value(d).unwrap_or_default(),
        },
    )
}

fn print_durations(
    out: &mut impl Write,
    analysis: &Analysis<StateDuration>,
    format: Format,
) -> std::io::Result<()> {
    print(
        out,
        &analysis.rows,
        format,
        Layout {
            header: &["device", "state", "ms", "share"],
            left: 2,
            cells: |d| {
                vec![
                    d.device.clone(),
                    d.state.word().to_string(),
                    d.ms.to_string(),
                    format!("{:.4}", d.share),
                ]
            },
            json: |d| serde_json::to_value(d).unwrap_or_default(),
        },
    )
}
