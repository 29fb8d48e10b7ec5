//! Simulator ↔ source on the machine's Mosquitto: the source discovers the simulated machines,
//! gets their models through Probe, decodes their Sample data (timestamps and values exactly
//! those of the simulated machine), and its polled Query answers match what the machines said.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use millstream::config::{HumanDuration, PollConfig};
use millstream::nclink::encode::{QueryAnswer, WireValue};
use millstream::nclink::topic::MessageKind;
use millstream::sample::Sample;
use millstream::sim::machine::Machine;
use millstream::sim::{self, SimOptions, SimReport, device_id};
use millstream::source::SourceEvent;
use tokio::sync::mpsc;

use crate::support::{broker_url, device_base, require_broker, start_source};

const POLLED: [&str; 5] = ["0103502202", "010302", "010307", "01035409", "01035430"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn source_discovers_probes_samples_and_polls_three_machines() {
    let url = broker_url();
    require_broker(&url);
    let state = tempfile::tempdir().unwrap();
    let base = device_base(0);
    let ours: HashSet<String> = (base..base + 3).map(device_id).collect();

    let (handle, mut events, metrics) = start_source(url.clone(), state.path(), |o| {
        o.config.poll = Some(PollConfig {
            interval: HumanDuration::from_millis(500),
            items: POLLED.iter().map(|s| s.to_string()).collect(),
            timeout: None,
            // Only this test's machines: others on the shared broker belong to other tests.
            devices: (base..base + 3).map(device_id).collect(),
        });
    });
    // Let the source subscribe before the machines announce themselves.
    crate::support::wait_until(Duration::from_secs(10), "source connected", || {
        handle.is_connected()
    })
    .await;

    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let mut options = SimOptions::new(url, 3);
    options.base = base;
    options.seed = 42;
    options.sample_interval_ms = Some(50);
    options.upload_interval_ms = Some(500);
    let sim = sim::start(options, Some(report_tx)).unwrap();

    let mut discovered = HashSet::new();
    let mut models = HashMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut channels_seen = HashSet::new();
    let mut answers_by_id: HashMap<String, Vec<Sample>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            SourceEvent::DeviceDiscovered { device, .. } if ours.contains(&*device) => {
                discovered.insert(device.to_string());
            }
            SourceEvent::Model { device, model } if ours.contains(&*device) => {
                models.insert(device.to_string(), model);
            }
            SourceEvent::Samples(batch) if ours.contains(&*batch.device) => match batch.kind {
                MessageKind::Sample => {
                    channels_seen
                        .insert((batch.device.to_string(), batch.channel.clone().unwrap()));
                    samples.extend(batch.samples);
                }
                MessageKind::QueryResponse => {
                    answers_by_id.insert(
                        batch.request_id.clone().expect("our polls carry @id"),
                        batch.samples,
                    );
                }
                other => panic!("unexpected batch kind {other:?}"),
            },
            _ => {}
        }
    }

    assert_eq!(discovered, ours, "all three machines discovered");
    assert_eq!(
        models.len(),
        3,
        "every machine's model arrived through Probe"
    );
    for model in models.values() {
        assert_eq!(model.item("0103502202").unwrap().name, "实际速度");
        assert_eq!(model.channels.len(), 2);
        assert!(
            model
                .channels
                .iter()
                .all(|c| c.sample_interval_ms == 50 && c.upload_interval_ms == 500)
        );
    }
    for device in &ours {
        for channel in ["sample_channel0", "sample_channel1"] {
            assert!(
                channels_seen.contains(&(device.clone(), channel.to_string())),
                "{device} {channel}"
            );
        }
    }

    // Every decoded Sample value is exactly the simulated machine's value at its timestamp.
    let mut machines: HashMap<String, Machine> = (base..base + 3)
        .map(|n| (device_id(n), Machine::new(42, n)))
        .collect();
    let positions = ["0103502201", "0103512201", "0103522201"];
    let mut checked = 0;
    for s in &samples {
        assert_eq!(
            (s.ts - sim.epoch_ms) % 50,
            0,
            "sample times on the 50 ms grid"
        );
        let snapshot = machines
            .get_mut(&*s.device)
            .unwrap()
            .at(s.ts - sim.epoch_ms);
        if let Some(axis) = positions.iter().position(|p| *p == &*s.item) {
            assert_eq!(
                s.value,
                Some(snapshot.act_pos[axis]),
                "{} {} at {}",
                s.device,
                s.item,
                s.ts
            );
            checked += 1;
        }
        if &*s.item == "010302" {
            assert_eq!(s.value, Some(snapshot.state.code()));
        }
        if &*s.item == "01035409" {
            assert_eq!(s.text.as_deref(), Some(snapshot.program));
        }
    }
    assert!(checked > 3 * 3 * 50, "positions checked: {checked}");

    // Polled Query answers: what the source decoded is what each machine put on the wire.
    let mut matched = 0;
    while let Ok(SimReport::QueryAnswered {
        device,
        request_id,
        answers,
    }) = reports.try_recv()
    {
        if !ours.contains(&device) {
            continue;
        }
        let Some(decoded) = answers_by_id.get(request_id.as_deref().unwrap()) else {
            continue;
        };
        let expected: Vec<(String, Option<f64>, Option<String>)> = answers
            .iter()
            .flat_map(|(id, answer)| {
                let QueryAnswer::Ok(values) = answer else {
                    panic!("{id} answered NG")
                };
                let indexed = values.len() > 1;
                values.iter().enumerate().map(move |(i, v)| {
                    let item = if indexed {
                        format!("{id}[{i}]")
                    } else {
                        id.clone()
                    };
                    match v {
                        WireValue::Number(n) => (item, Some(*n), None),
                        WireValue::Text(t) | WireValue::Json(t) => (item, None, Some(t.clone())),
                    }
                })
            })
            .collect();
        let got: Vec<(String, Option<f64>, Option<String>)> = decoded
            .iter()
            .map(|s| {
                (
                    s.item.to_string(),
                    s.value,
                    s.text.as_deref().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(got, expected, "answer {request_id:?} of {device}");
        assert!(got.iter().any(|(item, _, text)| item == "010302"
            && ["running", "free", "holding"].contains(&text.as_deref().unwrap())));
        assert_eq!(
            got.iter()
                .filter(|(item, _, _)| item.starts_with("01035430["))
                .count(),
            8
        );
        matched += 1;
    }
    assert!(matched >= 3 * 5, "polled answers matched: {matched}");
    // Other platforms on the shared broker (the other tests' engines) probe these machines
    // too; their answers are `unsolicited` here. Nothing else may be refused.
    let unsolicited = metrics.source.dead_letters[millstream::nclink::Reason::Unsolicited.index()]
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        metrics.source.dead_letters_total() - unsolicited,
        0,
        "{:?}",
        metrics.source.snapshot()
    );

    sim.shutdown().await;
    handle.shutdown().await;
    let _ = Arc::strong_count(&metrics);
}
