//! Live events for Server-Sent Events subscribers: samples as they are ingested and windows as
//! they close, serialized once and fanned out through a bounded broadcast channel (a slow
//! subscriber loses the oldest events, it never grows memory). An event holds at most
//! [`MAX_EVENT_BYTES`]: a message's samples are split over as many events as that takes, and
//! texts are cut to [`MAX_EVENT_TEXT`] bytes, so the channel's memory is bounded whatever a
//! device sends.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::id::Id;
use crate::sample::Sample;
use crate::window::WindowRow;

/// Events kept for subscribers that fall behind.
pub const BUS_CAPACITY: usize = 4_096;
/// Most bytes of one event's data (about 200 samples).
pub const MAX_EVENT_BYTES: usize = 16 << 10;
/// Most bytes of a sample's text in an event (the stores keep it whole).
pub const MAX_EVENT_TEXT: usize = 1_024;

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
        let rows = samples.iter().map(|s| {
            let row = SampleData {
                item: &s.item,
                ts: s.ts,
                value: s.value.filter(|v| v.is_finite()),
                text: s
                    .text
                    .as_deref()
                    .map(|t| crate::nclink::limits::cut(t, MAX_EVENT_TEXT)),
            };
            serde_json::to_string(&row).expect("serializable")
        });
        self.send_rows("sample", device, "samples", rows);
    }

    /// Sends `rows` (JSON objects) as `{"device":…,"<field>":[…]}` events of at most
    /// [`MAX_EVENT_BYTES`] each.
    fn send_rows(
        &self,
        kind: &'static str,
        device: &Id,
        field: &str,
        rows: impl Iterator<Item = String>,
    ) {
        let head = serde_json::json!({ "device": &**device }).to_string();
        let head = format!("{},\"{field}\":[", &head[..head.len() - 1]);
        let mut data = String::new();
        let send = |data: &mut String| {
            data.push_str("]}");
            let _ = self.sender.send(Arc::new(LiveEvent {
                kind,
                device: device.clone(),
                data: std::mem::take(data),
            }));
        };
        for row in rows {
            if !data.is_empty() && data.len() + row.len() + 3 > MAX_EVENT_BYTES {
                send(&mut data);
            }
            if data.is_empty() {
                data.push_str(&head);
            } else {
                data.push(',');
            }
            data.push_str(&row);
        }
        if !data.is_empty() {
            send(&mut data);
        }
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
            let rows = rows.into_iter().map(|row| {
                serde_json::to_string(&crate::window::WindowJson::from(row)).expect("serializable")
            });
            self.send_rows("window", device, "windows", rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_events_are_bounded_and_lose_nothing_but_long_texts() {
        let bus = Bus::default();
        let mut events = bus.subscribe();
        let d: Id = Id::from("M\"1");
        let i: Id = Id::from("0103502202");
        let mut samples: Vec<Sample> = (0..2_000)
            .map(|k| Sample::number(d.clone(), i.clone(), k, k as f64))
            .collect();
        samples.push(Sample::text(
            d.clone(),
            i.clone(),
            5_000,
            "x".repeat(1 << 20),
        ));
        bus.samples(&d, &samples);
        let mut seen = 0;
        while let Ok(event) = events.try_recv() {
            assert!(event.data.len() <= MAX_EVENT_BYTES, "{}", event.data.len());
            let v: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(v["device"], "M\"1");
            for row in v["samples"].as_array().unwrap() {
                if let Some(text) = row["text"].as_str() {
                    assert_eq!(text.len(), MAX_EVENT_TEXT);
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 2_001);
    }
}
