//! `millstream run -c FILE`: the pipeline of a file against real services, until Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use super::{Failure, interrupted, runtime};
use crate::config;
use crate::engine::{Engine, EngineSettings};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (see dataflows/).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Dataflow worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let config = config::load(&args.config)
        .map_err(|errors| Failure::Usage(errors.0.iter().map(|e| e.to_string()).collect()))?;
    let mut settings = EngineSettings::default();
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    runtime(None)?.block_on(async move {
        let engine = Engine::start(config, settings)
            .await
            .map_err(Failure::Runtime)?;
        eprintln!(
            "millstream is running: http://{}/ ; Ctrl-C to stop",
            engine.http_addr
        );
        report_until_interrupted(&engine).await;
        eprintln!("stopping: finishing windows and sink writes…");
        engine.shutdown().await.map_err(Failure::Runtime)?;
        eprintln!("stopped");
        Ok(())
    })
}

/// Logs throughput every 30 s until Ctrl-C or SIGTERM.
pub(super) async fn report_until_interrupted(engine: &Engine) {
    let metrics = engine.state.metrics.clone();
    let mut report = tokio::time::interval(Duration::from_secs(30));
    report.tick().await;
    let mut last = (0u64, 0u64);
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = report.tick() => {
                let s = metrics.source.snapshot();
                tracing::info!(
                    messages_per_s = (s.messages - last.0) / 30,
                    samples_per_s = (s.samples - last.1) / 30,
                    devices = s.devices,
                    late = metrics.engine.late_samples.load(Ordering::Relaxed),
                    dead_letters = metrics.source.dead_letters_total(),
                    connected = s.connected,
                    "running"
                );
                last = (s.messages, s.samples);
            }
        }
    }
}
