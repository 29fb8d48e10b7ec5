//! The committed recording (`data/recordings/`) still decodes completely: it is the input of
//! later golden tests, so a decoder change that loses any of it must fail here first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use millstream::metrics::Metrics;
use millstream::nclink::topic::MessageKind;
use millstream::recording::RecordingReader;
use millstream::source::SourceEvent;
use millstream::source::platform::{Action, Platform, PlatformOptions};

#[test]
fn the_committed_recording_decodes_without_loss() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/recordings/sim-3-machines-seed1.jsonl.zst"
    );
    let metrics = Arc::new(Metrics::default());
    let mut platform = Platform::new(PlatformOptions::default(), metrics.clone());
    let mut devices = BTreeSet::new();
    let mut models = 0;
    let mut samples: BTreeMap<MessageKind, usize> = BTreeMap::new();
    let mut messages = 0;
    for message in RecordingReader::open(path.as_ref()).unwrap() {
        let message = message.unwrap();
        messages += 1;
        for action in platform.on_message(&message.topic, message.payload, message.ts) {
            match action {
                Action::Emit(SourceEvent::DeviceDiscovered { device, .. }) => {
                    devices.insert(device.to_string());
                }
                Action::Emit(SourceEvent::Model { .. }) => models += 1,
                Action::Emit(SourceEvent::Samples(batch)) => {
                    *samples.entry(batch.kind).or_default() += batch.samples.len()
                }
                Action::DeadLetter { error, topic, .. } => panic!("{topic}: {error}"),
                _ => {}
            }
        }
    }
    assert_eq!(messages, 181);
    assert_eq!(devices.len(), 3);
    assert_eq!(models, 3);
    assert_eq!(samples.values().sum::<usize>(), 10_950);
    assert!(samples[&MessageKind::QueryResponse] > 100, "{samples:?}");
    assert_eq!(
        metrics
            .source
            .pending_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
