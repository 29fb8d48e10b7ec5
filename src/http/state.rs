//! What the HTTP API reads: the engine builds one [`AppState`] at start and hands it to the
//! router; handlers only read it (commands to the source go through [`SourceControl`]). Each
//! handler takes only the part it reads ([`Devices`], [`RecentWindows`], [`EventStreams`], …);
//! `/api/v1/status` and `/metrics` take the whole state, being about all of it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;

use crate::live::Bus;
use crate::live::registry::Registry;
use crate::live::views::LiveViews;
use crate::live::window_store::WindowStore;
use crate::metrics::Metrics;
use crate::sinks::SinkMonitor;
use crate::source::control::SourceControl;

/// What the HTTP API reads.
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub views: Arc<LiveViews>,
    pub registry: Arc<Registry>,
    pub windows: Arc<WindowStore>,
    pub bus: Bus,
    pub source: SourceControl,
    pub sinks: Vec<SinkMonitor>,
    /// Who may talk to the API (hosts, pages, token).
    pub guard: super::Guard,
    /// Most Server-Sent Events clients at once.
    pub sse_clients: usize,
    /// Window sizes computed, in ms.
    pub window_sizes: Vec<i64>,
    pub started: Instant,
    /// The write-ahead log's counters (`None`: the log is off).
    pub wal: Option<Arc<crate::wal::WalStats>>,
    /// The Parquet lake history is read from (the first parquet sink's directory).
    pub lake: Option<std::path::PathBuf>,
}

// What each handler reads, taken from the state by axum (`State<Sub>` where
// `Sub: FromRef<Arc<AppState>>`): a handler's signature shows what it may touch.

impl FromRef<Arc<AppState>> for SourceControl {
    fn from_ref(state: &Arc<AppState>) -> Self {
        state.source.clone()
    }
}

/// The devices the API knows: seen on the broker (the registry) or with values (the views).
#[derive(Clone)]
pub struct Devices {
    pub registry: Arc<Registry>,
    pub views: Arc<LiveViews>,
}

impl Devices {
    pub fn known(&self, device: &str) -> bool {
        self.registry.get(device).is_some() || self.views.latest(device).is_some()
    }
}

impl FromRef<Arc<AppState>> for Devices {
    fn from_ref(state: &Arc<AppState>) -> Self {
        Devices {
            registry: state.registry.clone(),
            views: state.views.clone(),
        }
    }
}

/// The recent windows and which sizes are computed.
#[derive(Clone)]
pub struct RecentWindows {
    pub store: Arc<WindowStore>,
    /// Window sizes computed, in ms.
    pub sizes: Arc<[i64]>,
}

impl FromRef<Arc<AppState>> for RecentWindows {
    fn from_ref(state: &Arc<AppState>) -> Self {
        RecentWindows {
            store: state.windows.clone(),
            sizes: state.window_sizes.as_slice().into(),
        }
    }
}

/// Where history is read from: the first parquet sink's lake, if any.
#[derive(Clone)]
pub struct LakeDir(pub Option<std::path::PathBuf>);

impl FromRef<Arc<AppState>> for LakeDir {
    fn from_ref(state: &Arc<AppState>) -> Self {
        LakeDir(state.lake.clone())
    }
}

/// What a Server-Sent Events stream needs: the bus, the limit on streams and the counters
/// of clients and missed events.
#[derive(Clone)]
pub struct EventStreams {
    pub bus: Bus,
    pub max_clients: usize,
    pub metrics: Arc<Metrics>,
}

impl FromRef<Arc<AppState>> for EventStreams {
    fn from_ref(state: &Arc<AppState>) -> Self {
        EventStreams {
            bus: state.bus.clone(),
            max_clients: state.sse_clients,
            metrics: state.metrics.clone(),
        }
    }
}
