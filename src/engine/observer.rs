//! Where the dataflow's outputs go: raw samples and closed windows to the sinks that want them
//! (one shared batch per sink), windows also to the in-memory store, the SSE bus and the
//! counters; live-view changes to the views. In cluster mode process 0 sees only its share of
//! the raw samples but every latest-value change: its SSE `sample` events come from those.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::StreamKind;
use crate::dataflow::Observer;
use crate::id::Id;
use crate::live::bus::Bus;
use crate::live::views::{ItemKey, LatestValue, LiveViews};
use crate::live::window_store::WindowStore;
use crate::metrics::Metrics;
use crate::nclink::status::MachineState;
use crate::sample::Sample;
use crate::sinks::{SinkHandle, SinkMessage};
use crate::window::WindowRow;

pub(super) struct EngineObserver {
    pub sinks: Vec<SinkHandle>,
    pub views: Arc<LiveViews>,
    pub windows: Arc<WindowStore>,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    /// SSE `sample` events from latest-value changes (cluster mode) instead of from ingest.
    pub samples_from_latest: bool,
}

impl Observer for EngineObserver {
    fn on_samples(&self, samples: &Arc<[Sample]>) {
        self.metrics
            .engine
            .dataflow_samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        // The input's own batch: sinks share it, no sample is copied.
        for sink in self.sinks.iter().filter(|s| s.wants(StreamKind::Samples)) {
            sink.send(SinkMessage::Samples(samples.clone()));
        }
    }

    fn on_windows(&self, windows: &[WindowRow]) {
        if windows.is_empty() {
            return;
        }
        self.metrics.engine.windows_emitted(windows);
        self.windows.add(windows);
        self.bus.windows(windows);
        let mut shared: Option<Arc<[WindowRow]>> = None;
        for sink in self.sinks.iter().filter(|s| s.wants(StreamKind::Windows)) {
            let batch = shared.get_or_insert_with(|| Arc::from(windows)).clone();
            sink.send(SinkMessage::Windows(batch));
        }
    }

    fn on_late(&self, count: u64) {
        self.metrics
            .engine
            .late_samples
            .fetch_add(count, Ordering::Relaxed);
    }

    fn on_latest(&self, changes: &[(ItemKey, LatestValue, isize)]) {
        self.views.apply_latest(changes);
        if self.samples_from_latest && self.bus.listening() {
            // One event per device, as ingest would send one per message.
            let mut samples: Vec<Sample> = changes
                .iter()
                .filter(|c| c.2 > 0)
                .map(|((device, item), value, _)| Sample {
                    device: device.clone(),
                    item: item.clone(),
                    ts: value.ts,
                    value: value.value(),
                    text: value.text.clone(),
                })
                .collect();
            samples.sort_by(|a, b| a.device.cmp(&b.device));
            for device in samples.chunk_by(|a, b| a.device == b.device) {
                self.bus.samples(&device[0].device, device);
            }
        }
    }

    fn on_fleet(&self, changes: &[(MachineState, i64, isize)]) {
        self.views.apply_fleet(changes);
    }

    fn on_samples_per_device(&self, changes: &[(Id, i64, isize)]) {
        self.views.apply_samples(changes);
    }

    fn on_watermark(&self, worker: usize, watermark: Option<i64>) {
        self.metrics
            .engine
            .watermarks
            .lock()
            .expect("metrics lock")
            .insert(worker, watermark.unwrap_or(i64::MIN));
    }
}
