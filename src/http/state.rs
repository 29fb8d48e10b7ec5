//! What the HTTP API reads: the engine builds one [`AppState`] at start and hands it to the
//! router; handlers only read it (commands to the source go through [`SourceControl`]).

use std::sync::Arc;
use std::time::Instant;

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
