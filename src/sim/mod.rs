//! `millstream sim`: a fleet of simulated CNC machines speaking NC-Link over MQTT, wire-compatible
//! with the lab's StressTest-INC-Cloud simulator (DESIGN.md §2, §3).
//!
//! Machines are named `STRESS_TEST_%05d` from `base` to `base + count - 1`, use the item ids and
//! names of the lab's model (`data/nc-link/simulator-model.json`: the lab model plus a second,
//! faster sample channel with the axes' positions, speeds and currents), and produce signals
//! from [`machine::Machine`]: deterministic for a seed.
//!
//! Layout:
//! - [`machine`]: the machine's timeline and signals.
//! - [`signals`]: NC-Link item → signal, and values on the wire.
//! - [`device`]: one device's MQTT behaviour.
//! - this file: options, the shared state of a run, statistics, start and stop.

pub mod device;
pub mod machine;
pub mod signals;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::BrokerUrl;
use crate::nclink::encode::QueryAnswer;
use crate::nclink::model::{DeviceModel, SampleChannel};
use crate::sample::now_ms;
use signals::SignalMap;

/// The simulator's device model (the lab model plus an axis sample channel).
pub const MODEL_JSON: &str = include_str!("../../data/nc-link/simulator-model.json");

/// The device id of simulated machine `n`.
pub fn device_id(n: u64) -> String {
    format!("STRESS_TEST_{n:05}")
}

/// How to run a simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub broker: BrokerUrl,
    /// Number of machines.
    pub count: u64,
    /// Number of the first machine.
    pub base: u64,
    pub seed: u64,
    /// Overrides every channel's sample interval (ms).
    pub sample_interval_ms: Option<i64>,
    /// Overrides every channel's upload interval (ms).
    pub upload_interval_ms: Option<i64>,
    /// QoS of Sample messages.
    pub qos: QoS,
}

impl SimOptions {
    pub fn new(broker: BrokerUrl, count: u64) -> SimOptions {
        SimOptions {
            broker,
            count,
            base: 0,
            seed: 0,
            sample_interval_ms: None,
            upload_interval_ms: None,
            qos: QoS::AtLeastOnce,
        }
    }
}

/// What the simulator did, counted as it goes.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Devices currently connected.
    pub connected: AtomicU64,
    pub connection_errors: AtomicU64,
    /// Messages handed to the MQTT client.
    pub messages: AtomicU64,
    /// Sample values in published Sample messages.
    pub samples: AtomicU64,
    pub probes: AtomicU64,
    pub queries: AtomicU64,
    pub sets: AtomicU64,
    pub publish_errors: AtomicU64,
    /// Sample ticks skipped because a device fell far behind.
    pub skipped_ticks: AtomicU64,
}

/// Reported to a test harness as it happens.
#[derive(Debug, Clone)]
pub enum SimReport {
    /// A device answered a Query: exactly what it put on the wire.
    QueryAnswered {
        device: String,
        request_id: Option<String>,
        answers: Vec<(String, QueryAnswer)>,
    },
}

/// State shared by every device of a run.
pub(crate) struct SimShared {
    pub options: SimOptions,
    /// The run's time origin.
    pub start: Instant,
    /// Wall-clock ms at `start` (a whole second, so sample times are round).
    pub epoch_ms: i64,
    pub stats: Arc<SimStats>,
    /// The model as sent in probe answers (intervals overridden).
    pub model: Value,
    pub channels: Vec<SampleChannel>,
    pub signals: Arc<SignalMap>,
    pub settable: HashSet<String>,
    pub report: Option<mpsc::UnboundedSender<SimReport>>,
}

impl SimShared {
    pub fn elapsed_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }
}

/// A running simulation.
pub struct SimHandle {
    pub stats: Arc<SimStats>,
    /// Wall-clock ms of the run's time origin.
    pub epoch_ms: i64,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// Disconnects every device and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The simulator's model with every channel's intervals overridden as asked.
pub fn model_with_intervals(sample_ms: Option<i64>, upload_ms: Option<i64>) -> Value {
    let mut model: Value = serde_json::from_str(MODEL_JSON).expect("the embedded model is JSON");
    fn visit(v: &mut Value, sample_ms: Option<i64>, upload_ms: Option<i64>) {
        match v {
            Value::Object(obj) => {
                if obj.get("type").and_then(Value::as_str) == Some("SAMPLE_CHANNEL") {
                    if let Some(s) = sample_ms {
                        obj.insert("sampleInterval".into(), s.into());
                    }
                    if let Some(u) = upload_ms {
                        obj.insert("uploadInterval".into(), u.into());
                    }
                }
                obj.values_mut()
                    .for_each(|v| visit(v, sample_ms, upload_ms));
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| visit(v, sample_ms, upload_ms)),
            _ => {}
        }
    }
    visit(&mut model, sample_ms, upload_ms);
    model
}

/// Starts `options.count` machines. `report` receives what devices answer, for tests.
pub fn start(
    options: SimOptions,
    report: Option<mpsc::UnboundedSender<SimReport>>,
) -> Result<SimHandle, String> {
    if options.sample_interval_ms.is_some_and(|ms| ms <= 0)
        || options.upload_interval_ms.is_some_and(|ms| ms <= 0)
    {
        return Err("intervals must be positive".into());
    }
    let model = model_with_intervals(options.sample_interval_ms, options.upload_interval_ms);
    let parsed =
        DeviceModel::from_own_tree(model.clone()).map_err(|e| format!("simulator model: {e}"))?;
    let settable = parsed
        .items
        .iter()
        .filter(|i| i.settable)
        .map(|i| i.id.to_string())
        .collect();
    let wall = now_ms();
    let epoch_ms = wall - wall.rem_euclid(1_000);
    let start = Instant::now() - Duration::from_millis((wall - epoch_ms) as u64);
    let stats = Arc::new(SimStats::default());
    let shared = Arc::new(SimShared {
        signals: Arc::new(SignalMap::from_model(&model)),
        channels: parsed.channels.clone(),
        options: options.clone(),
        start,
        epoch_ms,
        stats: stats.clone(),
        model,
        settable,
        report,
    });
    let (stop, stop_rx) = watch::channel(false);
    let tasks = (0..options.count)
        .map(|i| {
            let device = device::DeviceSim {
                id: device_id(options.base + i),
                index: options.base + i,
                shared: shared.clone(),
            };
            tokio::spawn(device.run(stop_rx.clone()))
        })
        .collect();
    Ok(SimHandle {
        stats,
        epoch_ms,
        stop,
        tasks,
    })
}
