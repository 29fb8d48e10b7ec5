//! Live events for Server-Sent Events subscribers: samples as they are ingested and windows as
//! they close, serialized once and fanned out through a bounded broadcast channel (a slow
//! subscriber loses the oldest events, it never grows memory).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::id::Id;
use crate::sample::Sample;
use crate::window::WindowRow;

/// Events kept for subscribers that fall behind.
pub const BUS_CAPACITY: usize = 4_096;

/// One event: its SSE name (`sample` or `window`), the device it concerns, and its JSON data.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub device: Id,
    pub data: String,
}

/// The broadcast of live events.
#[derive(Debug, Clone)]
pub struct Bus {
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            sender: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

#[derive(Serialize)]
struct SampleData<'a> {
    item: &'a str,
    ts: i64,
    value: Option<f64>,
    text: Option<&'a str>,
}

impl Bus {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    pub fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Samples of one device: `{"device":…,"samples":[{"item","ts","value","text"}]}`.
    pub fn samples(&self, device: &Id, samples: &[Sample]) {
        if !self.listening() || samples.is_empty() {
            return;
        }
        let rows: Vec<SampleData<'_>> = samples
            .iter()
            .map(|s| SampleData {
                item: &s.item,
                ts: s.ts,
                value: s.value.filter(|v| v.is_finite()),
                text: s.text.as_deref(),
            })
            .collect();
        let data = serde_json::json!({ "device": &**device, "samples": rows }).to_string();
        let _ = self.sender.send(Arc::new(LiveEvent {
            kind: "sample",
            device: device.clone(),
            data,
        }));
    }

    /// Closed windows, one event per device: `{"device":…,"windows":[row…]}`.
    pub fn windows(&self, rows: &[WindowRow]) {
        if !self.listening() {
            return;
        }
        let mut by_device: std::collections::BTreeMap<&Id, Vec<&WindowRow>> = Default::default();
        for row in rows {
            by_device.entry(&row.device).or_default().push(row);
        }
        for (device, rows) in by_device {
            let rows: Vec<crate::http::WindowJson> = rows
                .into_iter()
                .map(crate::http::WindowJson::from)
                .collect();
            let data = serde_json::json!({ "device": &**device, "windows": rows }).to_string();
            let _ = self.sender.send(Arc::new(LiveEvent {
                kind: "window",
                device: device.clone(),
                data,
            }));
        }
    }
}
