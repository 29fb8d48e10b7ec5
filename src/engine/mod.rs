//! The engine: source → dataflow → sinks, the live views, and the HTTP API, started together
//! and stopped in order so nothing received is lost: the source stops and hands over what it
//! holds, the dataflow input closes and every open window is flushed, the sinks write what they
//! hold (Parquet files are completed), and only then does `shutdown` return.
//!
//! Layout:
//! - this file: start and shutdown.
//! - [`ingest`]: the source, batching into the dataflow, source commands.
//! - [`observer`]: where dataflow outputs go.
//! - [`checkpoint`]: when write-ahead log segments may be deleted.
//! - [`error`]: which step of the start failed.

pub mod checkpoint;
pub mod error;
pub mod ingest;
mod observer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::dataflow::{self, Dataflow, DataflowError, DataflowOptions};
use crate::http::AppState;
use crate::live::registry::Registry;
use crate::live::views::LiveViews;
use crate::live::window_store::WindowStore;
use crate::metrics::Metrics;
use crate::sinks::Sinks;
use crate::source::SourceOptions;
use crate::source::control::SourceControl;
use crate::window::WindowSpec;
pub use error::StartError;

/// How to run the engine beyond the pipeline file.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Dataflow workers (default: cores).
    pub workers: usize,
    /// Listen here instead of `http.listen` (the demo picks a free port).
    pub listen: Option<SocketAddr>,
    /// Replay this instead of connecting to the broker; the engine's input ends with it.
    pub replay: Option<crate::replay::ReplaySource>,
    /// Run as one process of a cluster (DESIGN.md §10).
    pub cluster: Option<crate::cluster::Cluster>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listen: None,
            replay: None,
            cluster: None,
        }
    }
}

/// The dataflow settings of a pipeline: its windows, lateness and idle timeout.
pub fn dataflow_options(config: &Config, workers: usize) -> DataflowOptions {
    let tumbling: Vec<i64> = config
        .windows
        .tumbling
        .iter()
        .map(|d| d.as_millis() as i64)
        .collect();
    let sliding: Vec<(i64, i64)> = config
        .windows
        .sliding
        .iter()
        .map(|s| (s.size.as_millis() as i64, s.every.as_millis() as i64))
        .collect();
    let lateness = config.windows.allowed_lateness.as_millis() as i64;
    DataflowOptions {
        workers: workers.max(1),
        windows: WindowSpec::new(&tumbling, &sliding),
        allowed_lateness_ms: lateness,
        idle_timeout_ms: Some(
            config
                .windows
                .idle_timeout
                .map_or(lateness, |d| d.as_millis() as i64),
        ),
        input_capacity: 64,
        cluster: None,
        holds: Default::default(),
    }
}

/// How this engine runs: alone, or as one process of a cluster (DESIGN.md §10). Every
/// difference between the two is a method here, named for what it changes.
#[derive(Debug, Clone)]
pub enum RunMode {
    Alone,
    Cluster(crate::cluster::Cluster),
}

impl RunMode {
    fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        match self {
            RunMode::Alone => None,
            RunMode::Cluster(c) => Some(c),
        }
    }

    /// Batches enter the dataflow at their receive time (each process's input must agree on
    /// the cluster's time), and checkpoints count their horizon in epochs.
    fn by_arrival(&self) -> bool {
        matches!(self, RunMode::Cluster(_))
    }

    /// Process 0 sees only its share of raw samples: SSE `sample` events come from the
    /// cluster-wide latest values instead of from ingest.
    fn samples_from_latest(&self) -> bool {
        matches!(self, RunMode::Cluster(_))
    }

    /// Whether this process serves the whole API (the others only health and metrics).
    fn serves_api(&self) -> bool {
        self.cluster().is_none_or(|c| c.serves_api())
    }
}

/// What the engine keeps up to date for readers (`crate::live`), and its counters.
#[derive(Clone, Default)]
struct Shared {
    metrics: Arc<Metrics>,
    views: Arc<LiveViews>,
    registry: Arc<Registry>,
    windows: Arc<WindowStore>,
    bus: crate::live::Bus,
}

/// The dataflow started: its input, the running workers, and what the rest needs to know.
struct StartedDataflow {
    input: dataflow::DataflowInput,
    dataflow: Dataflow,
    /// Window sizes computed, in ms, shortest first.
    window_sizes: Vec<i64>,
    /// How long after a batch entered the dataflow its windows are sure to have closed.
    horizon: Duration,
    /// Keeps the cluster's time from moving until the log is replayed (cluster mode).
    startup: Option<Arc<dataflow::Hold>>,
}

/// The write-ahead log opened and what a previous run left in it replayed.
struct RecoveredLog {
    wal: Option<crate::wal::Wal>,
    cuts: Vec<checkpoint::Cut>,
    /// Message ids of the replayed batches, to recognise redeliveries.
    replayed: Arc<std::sync::Mutex<std::collections::HashSet<crate::source::ack::MessageId>>>,
}

/// The HTTP server running.
struct Serving {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// A running engine.
pub struct Engine {
    pub state: Arc<AppState>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    ingest: Option<tokio::task::JoinHandle<()>>,
    dataflow: Dataflow,
    sinks: Sinks,
    ticker: tokio::task::JoinHandle<()>,
    checkpoints: Option<tokio::task::JoinHandle<()>>,
    wal: Option<crate::wal::Wal>,
    http_stop: oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
    /// The lakes' uploads to HDFS; they end with `stop`.
    uploads: Vec<tokio::task::JoinHandle<()>>,
}

impl Engine {
    /// Starts, in order: the sinks, the dataflow, the replay of the write-ahead log, the
    /// ingest (source or replay), checkpoints, and the HTTP API.
    pub async fn start(mut config: Config, settings: EngineSettings) -> Result<Engine, StartError> {
        let mode = settings
            .cluster
            .clone()
            .map_or(RunMode::Alone, RunMode::Cluster);
        let shared = Shared::default();
        if settings.replay.is_some() {
            config.sinks.iter_mut().for_each(|s| s.common.replay = true);
        }
        let sinks = Sinks::start(&config.sinks, &config.state_dir)
            .await
            .map_err(StartError::Sinks)?;
        let (stop, stop_rx) = watch::channel(false);
        let uploads = start_uploads(&config, &stop_rx)?;
        let flow = start_dataflow(&config, &settings, &mode, &shared, &sinks).await?;
        let log = recover_log(&config, &flow.input, flow.startup.clone()).await?;
        drop(flow.startup);
        let progress = flow.input.progress();
        let (source, ingest) = start_ingest(
            &config,
            &mode,
            &shared,
            flow.input,
            log.wal.clone(),
            log.replayed,
            settings.replay.clone(),
            stop_rx,
        )?;
        let checkpoints = log.wal.clone().map(|wal| {
            tokio::spawn(
                checkpoint::Checkpoints {
                    wal,
                    source: source.clone(),
                    progress,
                    sinks: sinks.handles.clone(),
                    interval: config.wal.checkpoint.get(),
                    horizon: flow.horizon,
                    horizon_in_epochs: mode.by_arrival(),
                    cuts: log.cuts,
                }
                .run(),
            )
        });
        let ticker = tick_sinks(&sinks);
        let state = Arc::new(AppState {
            metrics: shared.metrics,
            views: shared.views,
            registry: shared.registry,
            windows: shared.windows,
            bus: shared.bus,
            source,
            sinks: sinks.handles.iter().map(|h| h.monitor()).collect(),
            guard: crate::http::Guard::from(&config.http),
            sse_clients: config.http.sse_clients,
            window_sizes: flow.window_sizes,
            started: Instant::now(),
            wal: log.wal.as_ref().map(|w| w.stats.clone()),
            lake: config
                .sinks
                .iter()
                .find_map(|s| s.lake_dir().map(|d| d.to_path_buf())),
        });
        let http = serve_http(&config, &settings, &mode, state.clone()).await?;
        Ok(Engine {
            state,
            http_addr: http.addr,
            stop,
            ingest: Some(ingest),
            dataflow: flow.dataflow,
            sinks,
            ticker,
            checkpoints,
            wal: log.wal,
            http_stop: http.stop,
            http: http.task,
            uploads,
        })
    }

    /// Resolves if the dataflow fails: in cluster mode, when a peer process is lost. The
    /// process should then exit with an error; its supervisor restarts the cluster.
    pub async fn failed(&self) {
        self.dataflow.failed().wait().await
    }

    /// Resolves when the input has ended and was handed to the dataflow: at the end of a
    /// replay (a broker's input ends only with `shutdown`).
    pub async fn input_ended(&mut self) {
        if let Some(ingest) = self.ingest.as_mut() {
            let _ = ingest.await;
            self.ingest = None;
        }
    }

    /// Stops everything in order; returns when every sink has written what it held.
    pub async fn shutdown(self) -> Result<(), DataflowError> {
        let _ = self.http_stop.send(());
        // Open SSE streams would keep the server waiting: give it a moment, then move on.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.http).await;
        let _ = self.stop.send(true);
        if let Some(checkpoints) = self.checkpoints {
            // It holds sink handles: stop it so the sinks can close.
            checkpoints.abort();
            let _ = checkpoints.await;
        }
        if let Some(ingest) = self.ingest {
            let _ = ingest.await;
        }
        let dataflow = self.dataflow;
        let joined = tokio::task::spawn_blocking(move || dataflow.join())
            .await
            .map_err(|e| DataflowError::Worker(e.to_string()))?;
        self.ticker.abort();
        let _ = self.ticker.await;
        let durable = self.sinks.finish().await;
        for upload in self.uploads {
            let _ = upload.await;
        }
        if let Some(wal) = self.wal {
            if durable && joined.is_ok() {
                // Everything is in the stores: nothing to replay at the next start.
                wal.clear();
            } else {
                tracing::warn!("the write-ahead log is kept: it is replayed at the next start");
            }
        }
        joined
    }
}

/// Starts the dataflow with the pipeline's windows; its outputs go to the sinks, the live
/// views and the event bus. Joining a cluster blocks until every peer is connected.
async fn start_dataflow(
    config: &Config,
    settings: &EngineSettings,
    mode: &RunMode,
    shared: &Shared,
    sinks: &Sinks,
) -> Result<StartedDataflow, StartError> {
    let mut options = dataflow_options(config, settings.workers);
    if settings
        .replay
        .as_ref()
        .is_some_and(|r| r.speed == crate::replay::Speed::Max)
    {
        // Recorded time runs far ahead of the wall clock: closing quiet keys' windows by
        // the wall clock would depend on how fast this machine is. The end of the input
        // closes every window instead.
        options.idle_timeout_ms = None;
    }
    let mut window_sizes: Vec<i64> = options.windows.families.iter().map(|f| f.size).collect();
    window_sizes.sort();
    window_sizes.dedup();
    options.cluster = mode.cluster().cloned();
    let observer = Arc::new(observer::EngineObserver {
        sinks: sinks.handles.clone(),
        views: shared.views.clone(),
        windows: shared.windows.clone(),
        bus: shared.bus.clone(),
        metrics: shared.metrics.clone(),
        samples_from_latest: mode.samples_from_latest(),
    });
    let horizon = Duration::from_millis(
        window_sizes.last().copied().unwrap_or(0).max(0) as u64
            + options.allowed_lateness_ms.max(0) as u64
            + options.idle_timeout_ms.unwrap_or(0).max(0) as u64
            + 1_000,
    );
    if let Some(c) = mode.cluster() {
        tracing::info!(
            process = c.shard.process,
            processes = c.shard.processes,
            peers = ?c.addresses,
            "joining the cluster (waiting for every process to connect)"
        );
    }
    // A cluster process keeps the cluster's time from moving until its write-ahead log is
    // replayed, so that every process's replay is absorbed in event-time order with the
    // others' (`dataflow::hold`).
    let startup = mode.cluster().map(|_| options.holds.hold(0));
    let (input, dataflow) = tokio::task::spawn_blocking(move || dataflow::start(options, observer))
        .await
        .map_err(|e| DataflowError::Start(e.to_string()))??;
    if mode.cluster().is_some() {
        tracing::info!("every process of the cluster is connected");
    }
    Ok(StartedDataflow {
        input,
        dataflow,
        window_sizes,
        horizon,
        startup,
    })
}

/// Opens the write-ahead log (when enabled) and replays what a previous run left in it.
async fn recover_log(
    config: &Config,
    input: &dataflow::DataflowInput,
    startup: Option<Arc<dataflow::Hold>>,
) -> Result<RecoveredLog, StartError> {
    let replayed = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    if !config.wal.enabled {
        return Ok(RecoveredLog {
            wal: None,
            cuts: Vec::new(),
            replayed,
        });
    }
    let (wal, recovered) =
        crate::wal::Wal::open(&config.state_dir.join("wal")).map_err(StartError::Log)?;
    let cuts = recover(&wal, recovered, input, &replayed, startup)
        .await
        .map_err(StartError::Log)?;
    Ok(RecoveredLog {
        wal: Some(wal),
        cuts,
        replayed,
    })
}

/// Starts the ingest: the MQTT source (or the replay in its place) into the dataflow.
#[allow(clippy::too_many_arguments)]
fn start_ingest(
    config: &Config,
    mode: &RunMode,
    shared: &Shared,
    input: dataflow::DataflowInput,
    wal: Option<crate::wal::Wal>,
    replayed: Arc<std::sync::Mutex<std::collections::HashSet<crate::source::ack::MessageId>>>,
    replay: Option<crate::replay::ReplaySource>,
    stop: watch::Receiver<bool>,
) -> Result<(SourceControl, tokio::task::JoinHandle<()>), StartError> {
    let mut source_options = SourceOptions::new(config.source.clone(), &config.state_dir);
    source_options.dead_letters = config.dead_letters.clone();
    source_options.replayed = replayed;
    if let Some(c) = mode.cluster() {
        source_options.shard = c.shard;
        source_options.holds = Some(input.holds().clone());
    }
    ingest::Ingest {
        options: source_options,
        metrics: shared.metrics.clone(),
        input,
        registry: shared.registry.clone(),
        bus: shared.bus.clone(),
        wal,
        acks: Vec::new(),
        holds: Vec::new(),
        by_arrival: mode.by_arrival(),
        first_received: None,
        sse_samples: !mode.samples_from_latest(),
        log_only: Default::default(),
        configured: config.source.clone(),
    }
    .start(replay, stop)
    .map_err(StartError::Ingest)
}

/// Starts the uploads of the lakes that ask for one (they end when `stop` turns true).
fn start_uploads(
    config: &Config,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
    let mut uploads = Vec::new();
    for sink in &config.sinks {
        if let crate::config::StoreConfig::Parquet(lake) = &sink.store
            && let Some(uploader) = crate::lake::upload::Uploader::for_sink(lake)
                .map_err(|e| StartError::Upload(format!("sink {:?}: {e}", sink.name())))?
        {
            uploads.push(uploader.spawn(crate::lake::upload::UPLOAD_EVERY, stop.clone()));
        }
    }
    Ok(uploads)
}

/// Ticks every sink once a second, so they roll files and flush by time while no data comes.
fn tick_sinks(sinks: &Sinks) -> tokio::task::JoinHandle<()> {
    let handles = sinks.handles.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            handles.iter().for_each(|h| h.tick());
        }
    })
}

/// Listens (refusing an exposed address without a token) and serves the API: all of it, or
/// on a cluster process other than 0 only health and metrics.
async fn serve_http(
    config: &Config,
    settings: &EngineSettings,
    mode: &RunMode,
    state: Arc<AppState>,
) -> Result<Serving, StartError> {
    let listen = settings.listen.unwrap_or(config.http.listen);
    crate::config::check_exposure(listen, config.http.token.as_ref(), config.http.allow_open)
        .map_err(StartError::Http)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| StartError::Http(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = match mode.cluster() {
        Some(c) if !mode.serves_api() => crate::http::peer_app(state, c.shard.process),
        _ => crate::http::app(state),
    };
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(http_addr = %addr, "HTTP API listening");
    Ok(Serving { addr, stop, task })
}

/// Damaged segments kept in `wal/corrupt/` for inspection, newest first; older ones go.
const CORRUPT_KEPT: usize = 8;

/// Counts the damage a replayed segment had and keeps a copy of it in `wal/corrupt/` (the
/// segment itself stays until a checkpoint lets it go, like any other).
fn keep_damaged(
    path: &std::path::Path,
    damage: &[crate::frame::Damage],
    stats: &crate::wal::WalStats,
) {
    use std::sync::atomic::Ordering::Relaxed;
    for d in damage {
        match d {
            crate::frame::Damage::TornTail { .. } => stats.torn_records.fetch_add(1, Relaxed),
            crate::frame::Damage::Corrupt { .. } => stats.corrupt_records.fetch_add(1, Relaxed),
        };
    }
    let corrupt = damage
        .iter()
        .any(|d| matches!(d, crate::frame::Damage::Corrupt { .. }));
    if !corrupt {
        // A torn tail is where a crash stopped the writer: nothing to inspect.
        return;
    }
    let Some(dir) = path.parent().map(|d| d.join("corrupt")) else {
        return;
    };
    let name = format!(
        "{}-{}",
        crate::sample::now_ms(),
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
    );
    let kept = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::copy(path, dir.join(&name)))
        .map(|_| ());
    match kept {
        Ok(()) => {
            tracing::error!(copy = %dir.join(&name).display(), "a damaged write-ahead log segment is kept for inspection")
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot keep a copy of a damaged write-ahead log segment")
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut copies: Vec<std::path::PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        copies.sort();
        let excess = copies.len().saturating_sub(CORRUPT_KEPT);
        for old in &copies[..excess] {
            let _ = std::fs::remove_file(old);
        }
    }
}

/// At most this many replayed message ids are remembered to recognise redeliveries.
const MAX_REPLAYED_IDS: usize = 65_536;

/// Replays the segments a previous run left in the write-ahead log through the dataflow,
/// before the source connects; they stay on disk until a checkpoint finds them written.
async fn recover(
    wal: &crate::wal::Wal,
    recovered: crate::wal::Recovered,
    input: &dataflow::DataflowInput,
    replayed: &Arc<std::sync::Mutex<std::collections::HashSet<crate::source::ack::MessageId>>>,
    hold: Option<Arc<dataflow::Hold>>,
) -> Result<Vec<checkpoint::Cut>, String> {
    if recovered.segments.is_empty() {
        return Ok(Vec::new());
    }
    let feed = input.clone();
    let stats = wal.stats.clone();
    let paths = recovered.segments.clone();
    let ids = replayed.clone();
    let started = Instant::now();
    let samples = tokio::task::spawn_blocking(move || {
        let mut total = 0;
        for (_, path) in &paths {
            match crate::wal::segment::read(path, |batch, messages| {
                // Messages not acknowledged before the crash come again: skip their samples.
                // Only the newest can be unacknowledged: keep the last ones.
                let mut set = ids.lock().expect("replayed lock");
                if set.len() >= MAX_REPLAYED_IDS {
                    set.clear();
                }
                set.extend(messages);
                drop(set);
                let arrival = dataflow::Arrival {
                    received_at: None,
                    holds: hold.iter().cloned().collect(),
                };
                let _ = feed.blocking_send_arrived(batch, arrival);
            }) {
                Ok(report) => {
                    total += report.samples;
                    if !report.damage.is_empty() {
                        keep_damaged(path, &report.damage, &stats);
                    }
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a write-ahead log segment")
                }
            }
        }
        total
    })
    .await
    .map_err(|e| format!("write-ahead log replay: {e}"))?;

    wal.stats
        .recovered_samples
        .fetch_add(samples, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        samples,
        segments = recovered.segments.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "replayed the write-ahead log of the previous run"
    );
    let marker = input
        .mark()
        .await
        .map_err(|_| "the dataflow stopped during replay".to_string())?;
    Ok(vec![checkpoint::Cut {
        segments: recovered.segments.iter().map(|(n, _)| *n).collect(),
        marker,
        passed_at: None,
    }])
}
