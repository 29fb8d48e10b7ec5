//! The engine: source → dataflow → sinks, the live views, and the HTTP API, started together
//! and stopped in order so nothing received is lost: the source stops and hands over what it
//! holds, the dataflow input closes and every open window is flushed, the sinks write what they
//! hold (Parquet files are completed), and only then does `shutdown` return.
//!
//! Layout:
//! - this file: start and shutdown, and the state the API reads ([`AppState`]).
//! - [`ingest`]: the source, batching into the dataflow, source commands.
//! - [`observer`]: where dataflow outputs go.
//! - [`events`]: live events for SSE.

pub mod events;
pub mod ingest;
mod observer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::config::{Config, Secret};
use crate::dataflow::{self, Dataflow, DataflowOptions};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::sinks::{SinkMonitor, Sinks};
use crate::source::SourceOptions;
use crate::views::LiveViews;
use crate::window::WindowSpec;
use crate::window_store::WindowStore;
pub use events::{Bus, LiveEvent};
pub use ingest::SourceControl;

/// What the HTTP API reads.
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub views: Arc<LiveViews>,
    pub registry: Arc<Registry>,
    pub windows: Arc<WindowStore>,
    pub bus: Bus,
    pub source: SourceControl,
    pub sinks: Vec<SinkMonitor>,
    /// Required for POST endpoints when set.
    pub token: Option<Secret>,
    /// Window sizes computed, in ms.
    pub window_sizes: Vec<i64>,
    pub started: Instant,
}

/// How to run the engine beyond the pipeline file.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Dataflow workers (default: cores).
    pub workers: usize,
    /// Listen here instead of `http.listen` (the demo picks a free port).
    pub listen: Option<SocketAddr>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listen: None,
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
    }
}

/// A running engine.
pub struct Engine {
    pub state: Arc<AppState>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    ingest: tokio::task::JoinHandle<()>,
    dataflow: Dataflow,
    sinks: Sinks,
    ticker: tokio::task::JoinHandle<()>,
    http_stop: oneshot::Sender<()>,
    http: tokio::task::JoinHandle<()>,
}

impl Engine {
    pub async fn start(config: Config, settings: EngineSettings) -> Result<Engine, String> {
        let metrics = Arc::new(Metrics::default());
        let views = Arc::new(LiveViews::default());
        let registry = Arc::new(Registry::default());
        let windows = Arc::new(WindowStore::default());
        let bus = Bus::default();

        let sinks = Sinks::start(&config.sinks, &config.state_dir).await?;
        let options = dataflow_options(&config, settings.workers);
        let mut window_sizes: Vec<i64> = options.windows.families.iter().map(|f| f.size).collect();
        window_sizes.sort();
        window_sizes.dedup();
        let observer = Arc::new(observer::EngineObserver {
            sinks: sinks.handles.clone(),
            views: views.clone(),
            windows: windows.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
        });
        let (input, dataflow) = dataflow::start(options, observer)?;

        let mut source_options = SourceOptions::new(config.source.clone(), &config.state_dir);
        source_options.dead_letters = config.dead_letters.clone();
        let (stop, stop_rx) = watch::channel(false);
        let ingest = ingest::Ingest {
            options: source_options,
            metrics: metrics.clone(),
            input,
            registry: registry.clone(),
            bus: bus.clone(),
        };
        let (source, ingest) = ingest.start(stop_rx)?;

        let tick_handles = sinks.handles.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                tick_handles.iter().for_each(|h| h.tick());
            }
        });

        let state = Arc::new(AppState {
            metrics,
            views,
            registry,
            windows,
            bus,
            source,
            sinks: sinks.handles.iter().map(|h| h.monitor()).collect(),
            token: config.http.token.clone(),
            window_sizes,
            started: Instant::now(),
        });
        let listen = settings.listen.unwrap_or(config.http.listen);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let app = crate::http::app(state.clone());
        let http = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(%http_addr, "HTTP API listening");
        Ok(Engine {
            state,
            http_addr,
            stop,
            ingest,
            dataflow,
            sinks,
            ticker,
            http_stop,
            http,
        })
    }

    /// Stops everything in order; returns when every sink has written what it held.
    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.http_stop.send(());
        // Open SSE streams would keep the server waiting: give it a moment, then move on.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.http).await;
        let _ = self.stop.send(true);
        let _ = self.ingest.await;
        let dataflow = self.dataflow;
        let joined = tokio::task::spawn_blocking(move || dataflow.join())
            .await
            .map_err(|e| format!("dataflow: {e}"))?;
        self.ticker.abort();
        let _ = self.ticker.await;
        self.sinks.finish().await;
        joined
    }
}
