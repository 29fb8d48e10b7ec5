//! `millstream run -c FILE`: the pipeline of a file against real services, until Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use super::{Failure, interrupted, runtime};
use crate::cluster::Cluster;
use crate::config;
use crate::engine::{Engine, EngineSettings};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (see dataflows/).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Dataflow worker threads (default: one per core; in a cluster, the same in every process).
    #[arg(long)]
    workers: Option<usize>,
    /// Run as one process of a cluster: the number of processes (checked against --hosts).
    #[arg(short = 'n', long, requires = "hosts")]
    processes: Option<usize>,
    /// This process's index in the cluster, 0 to N-1 (process 0 serves the HTTP API).
    #[arg(short = 'p', long, requires = "hosts")]
    process: Option<usize>,
    /// Cluster hosts file: one host:port per line where each process listens for the others,
    /// in process order (timely's format). See docs/scale-out.md.
    #[arg(long = "hosts", requires = "process")]
    hosts: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let config = config::load(&args.config)
        .map_err(|errors| Failure::Usage(errors.0.iter().map(|e| e.to_string()).collect()))?;
    let mut settings = EngineSettings::default();
    if let Some(workers) = args.workers {
        settings.workers = workers;
    }
    if let Some(hosts) = &args.hosts {
        let cluster = Cluster::from_hosts_file(hosts, args.processes, args.process.unwrap_or(0))
            .map_err(|e| Failure::Usage(vec![e]))?;
        settings.cluster = Some(cluster);
    }
    let runtime = runtime(None)?;
    let outcome = runtime.block_on(async move {
        let engine = Engine::start(config, settings.clone()).await?;
        match &settings.cluster {
            Some(c) if !c.serves_api() => eprintln!(
                "millstream is running as process {} of {}: http://{}/api/v1/health ; \
                 process 0 serves the API; Ctrl-C to stop",
                c.shard.process, c.shard.processes, engine.http_addr
            ),
            _ => eprintln!(
                "millstream is running: http://{}/ ; Ctrl-C to stop",
                engine.http_addr
            ),
        }
        tokio::select! {
            _ = report_until_interrupted(&engine) => {}
            _ = engine.failed() => {
                // Timely is fail-stop: the computation cannot go on without a lost peer. No
                // orderly stop (its workers would never finish): the engine is left as it
                // is and the process exits; a restart replays the write-ahead log and the
                // broker's session.
                std::mem::forget(engine);
                return Err(Failure::Lost(
                    "the dataflow failed (a cluster process was lost?); exiting: restart every \
                     process of the cluster, the write-ahead log and the broker's persistent \
                     sessions bring back what was not stored"
                        .into(),
                ));
            }
        }
        eprintln!("stopping: finishing windows and sink writes…");
        engine.shutdown().await?;
        eprintln!("stopped");
        Ok(())
    });
    if matches!(outcome, Err(Failure::Lost(_))) {
        // Tasks of the abandoned engine never end: do not wait for them.
        runtime.shutdown_timeout(Duration::from_millis(100));
    }
    outcome
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
