//! Golden test: the committed recording, decoded like live traffic and fed through the dataflow
//! with `dataflows/demo.toml`'s windows, gives exactly the committed windows
//! (`data/recordings/*.windows.jsonl`). Regenerate after an intended change with
//! `MILLSTREAM_BLESS=1 cargo test golden` and review the diff.

use std::sync::Arc;

use millstream::dataflow;
use millstream::metrics::Metrics;
use millstream::recording::RecordingReader;
use millstream::source::SourceEvent;
use millstream::source::platform::{Action, Platform, PlatformOptions};
use millstream::window::WindowRow;

use crate::support::Collect;

const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/recordings/sim-3-machines-seed1.jsonl.zst"
);
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/recordings/sim-3-machines-seed1.windows.jsonl"
);

fn windows_of_recording(workers: usize, batch_per_message: bool) -> Vec<WindowRow> {
    let config = millstream::config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/dataflows/demo.toml").as_ref(),
    )
    .unwrap();
    let mut options = millstream::engine::dataflow_options(&config, workers);
    // Replayed at full speed: the wall clock must not close windows.
    options.idle_timeout_ms = None;
    let collect = Arc::new(Collect::default());
    let (input, flow) = dataflow::start(options, collect.clone()).unwrap();
    let mut platform = Platform::new(PlatformOptions::default(), Arc::new(Metrics::default()));
    let mut pending = Vec::new();
    for message in RecordingReader::open(RECORDING.as_ref()).unwrap() {
        let message = message.unwrap();
        for action in platform.on_message(&message.topic, message.payload, message.ts) {
            if let Action::Emit(SourceEvent::Samples(batch)) = action {
                pending.extend(batch.samples);
                if batch_per_message {
                    input.blocking_send(std::mem::take(&mut pending)).unwrap();
                }
            }
        }
    }
    input.blocking_send(pending).unwrap();
    input.close();
    flow.join().unwrap();
    let mut windows = collect.windows.lock().unwrap().clone();
    windows.sort_by(|a, b| {
        (&a.device, &a.item, a.size_ms, a.start).cmp(&(&b.device, &b.item, b.size_ms, b.start))
    });
    windows
}

#[test]
fn the_recording_gives_the_committed_windows() {
    let windows = windows_of_recording(2, true);
    let lines: String = windows
        .iter()
        .map(|w| serde_json::to_string(w).unwrap() + "\n")
        .collect();
    if std::env::var_os("MILLSTREAM_BLESS").is_some() {
        std::fs::write(EXPECTED, &lines).unwrap();
    }
    let expected = std::fs::read_to_string(EXPECTED)
        .expect("expected windows (bless with MILLSTREAM_BLESS=1)");
    assert_eq!(
        lines.lines().count(),
        expected.lines().count(),
        "number of windows"
    );
    for (got, want) in lines.lines().zip(expected.lines()) {
        assert_eq!(got, want);
    }
    // The same with one worker and everything in one batch.
    assert_eq!(windows_of_recording(1, false), windows);
}
