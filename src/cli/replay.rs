//! `millstream replay INPUT -c FILE [--speed max|1x|Nx]`: a recording (or `lake:DIR`) pushed
//! through the pipeline of a file, as its live run did. A progress line with rate and ETA on a
//! terminal, a summary at the end. The write-ahead log is off: the recording is the durable
//! copy, and replaying it again into the same stores adds no rows (sink writes are idempotent).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;

use super::{Failure, interrupted, runtime};
use crate::config;
use crate::engine::{Engine, EngineSettings};
use crate::http::AppState;
use crate::replay::{ReplayInput, ReplayProgress, ReplaySource, Speed};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording (JSON Lines; zstd-compressed when the name ends in .zst), or `lake:DIR` for
    /// the raw samples of a Parquet lake.
    input: String,
    /// Pipeline file (see dataflows/): its windows and sinks are used, its broker is not.
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// `max` (as fast as possible), `1x` (as recorded) or a factor such as `10x`.
    #[arg(long, default_value = "max")]
    speed: Speed,
    /// With `lake:DIR`: the first event time replayed (RFC 3339 or ms since the epoch).
    #[arg(long, value_parser = super::parse_time_arg)]
    from: Option<i64>,
    /// With `lake:DIR`: replay event times before this one.
    #[arg(long, value_parser = super::parse_time_arg)]
    to: Option<i64>,
    /// Dataflow worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Serve the HTTP API and dashboard here while replaying (default: a free loopback port).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// No progress line, even on a terminal.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: ReplayArgs) -> Result<(), Failure> {
    let input = ReplayInput::parse(&args.input, args.from, args.to);
    if matches!(input, ReplayInput::Recording(_)) && (args.from.is_some() || args.to.is_some()) {
        return Err(Failure::Usage(vec![
            "replay: --from and --to select event times of a lake (`replay lake:DIR`); a recording is replayed whole".into(),
        ]));
    }
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(Failure::Usage(vec![
            "replay: --from must be before --to".into(),
        ]));
    }
    let mut config = config::load(&args.config)
        .map_err(|errors| Failure::Usage(errors.0.iter().map(|e| e.to_string()).collect()))?;
    // The input is the durable copy: a crashed replay is replayed again, not recovered.
    config.wal.enabled = false;
    let progress = Arc::new(ReplayProgress::default());
    if let Some(listen) = args.http {
        crate::config::check_exposure(listen, config.http.token.as_ref(), config.http.allow_open)
            .map_err(|e| Failure::Usage(vec![format!("replay --http {listen}: {e}")]))?;
    }
    let mut settings = EngineSettings {
        listen: Some(
            args.http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        ),
        replay: Some(ReplaySource {
            input: input.clone(),
            speed: args.speed,
            progress: progress.clone(),
        }),
        ..EngineSettings::default()
    };
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let sinks: Vec<String> = config.sinks.iter().map(|s| s.name().to_string()).collect();
    runtime(None)?.block_on(async move {
        let started = Instant::now();
        let mut engine = Engine::start(config, settings).await?;
        eprintln!(
            "replaying {} at speed {} into {} (HTTP API on http://{}/)",
            args.input,
            args.speed,
            if sinks.is_empty() {
                "no sinks".to_string()
            } else {
                sinks.join(", ")
            },
            engine.http_addr
        );
        let state = engine.state.clone();
        let reporter = show_progress.then(|| {
            let (state, progress) = (state.clone(), progress.clone());
            tokio::spawn(async move { report_progress(&state, &progress, started).await })
        });
        let interrupted = tokio::select! {
            _ = engine.input_ended() => false,
            _ = interrupted() => true,
        };
        if let Some(reporter) = reporter {
            reporter.abort();
            let _ = reporter.await;
            eprint!("\r\x1b[2K");
        }
        if interrupted {
            eprintln!("interrupted: finishing windows and sink writes of what was replayed…");
        }
        engine.shutdown().await?;
        print_summary(&state, &progress, started.elapsed(), interrupted);
        if interrupted {
            return Err(Failure::Runtime(
                "the replay was interrupted before the end of its input".into(),
            ));
        }
        Ok(())
    })
}

/// Rewrites one progress line on the terminal every 200 ms.
async fn report_progress(state: &AppState, progress: &ReplayProgress, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs_f64().max(1e-3);
        let samples = state.metrics.source.samples.load(Ordering::Relaxed);
        let rate = samples as f64 / elapsed;
        let line = match progress.fraction() {
            Some(done) => {
                let eta = if done > 0.0 {
                    format!("{:.0} s", elapsed * (1.0 - done) / done)
                } else {
                    "?".into()
                };
                format!(
                    "{:5.1}%  {samples} samples  {}  ETA {eta}",
                    done * 100.0,
                    per_second(rate)
                )
            }
            None => format!("{samples} samples  {}", per_second(rate)),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

fn per_second(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M samples/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} K samples/s", rate / 1e3)
    } else {
        format!("{rate:.0} samples/s")
    }
}

fn print_summary(
    state: &AppState,
    progress: &ReplayProgress,
    elapsed: Duration,
    interrupted: bool,
) {
    let metrics = &state.metrics;
    let samples = metrics.source.samples.load(Ordering::Relaxed);
    let windows: u64 = metrics
        .engine
        .windows_emitted
        .lock()
        .expect("metrics lock")
        .values()
        .sum();
    let secs = elapsed.as_secs_f64().max(1e-3);
    eprintln!(
        "replay {}: {} messages, {samples} samples, {windows} windows, {} dead letters, {} late samples, {} input problems, {:.1} s, {}",
        if interrupted { "interrupted" } else { "done" },
        progress.messages.load(Ordering::Relaxed),
        metrics.source.dead_letters_total(),
        metrics.engine.late_samples.load(Ordering::Relaxed),
        progress.problems.load(Ordering::Relaxed),
        secs,
        per_second(samples as f64 / secs)
    );
    for problem in progress.kept_problems() {
        eprintln!("  input problem: {problem}");
    }
    for sink in &state.sinks {
        let s = sink.status();
        let skipped = sink.stats.skipped.load(Ordering::Relaxed);
        eprintln!(
            "  sink {} ({}): {} written{}, {} failed, {} dropped, {} bytes spooled{}",
            s.name,
            s.kind,
            s.written,
            if skipped > 0 {
                format!(" ({skipped} of them held already, not written again)")
            } else {
                String::new()
            },
            s.failed,
            s.dropped,
            s.spooled_bytes,
            s.last_error
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
}
