//! Replay and historical analysis at scale (not criterion: two long runs of the real binary).
//!
//! 1. Replay: a generated recording of ≥ 5,000,000 samples (20 machines, every channel sampled
//!    every 1 ms, uploaded every 200 ms) through `millstream replay --speed max` with the demo's
//!    windows (1s, 10s, 1m tumbling, 1m/10s sliding) and a Parquet lake. Prints samples/s.
//! 2. Analyze: a lake of ≥ 50,000,000 samples over one day (3 machines, every item at 10 Hz),
//!    written by replaying a generated recording; then `millstream analyze --every 1m` over that
//!    day next to DuckDB (`scripts/duckdb-windows.py`) on the same files.
//!
//!     cargo bench --bench lake
//!
//! `LAKE_REPLAY_SAMPLES` and `LAKE_ANALYZE_DEVICES` (samples ≈ devices × 17.3 M) change the
//! sizes; `LAKE_SKIP_ANALYZE=1` runs the replay only. Generated inputs are kept under
//! `target/bench-data/` between runs. Results: docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use millstream::nclink::encode::{self, WireValue};
use millstream::nclink::model::DeviceModel;
use millstream::nclink::topic::{MessageKind, device_topic, sample_topic};
use millstream::recording::RecordingWriter;
use millstream::sim::device_id;
use millstream::sim::machine::Machine;
use millstream::sim::model_with_intervals;
use millstream::sim::signals::{Signal, SignalMap, sample_rows};

const DAY_START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes a recording of `devices` machines from `start` until `samples` samples or `until`
/// (ms), each channel sampled every `sample_ms` and uploaded every `upload_ms`. Returns the
/// samples written.
fn generate(
    path: &Path,
    devices: u64,
    sample_ms: i64,
    upload_ms: i64,
    samples: u64,
    until: i64,
) -> u64 {
    let tree = model_with_intervals(Some(sample_ms), Some(upload_ms));
    let map = SignalMap::from_model(&tree);
    let model = DeviceModel::from_own_tree(tree.clone()).unwrap();
    let channels: Vec<(String, Vec<Signal>)> = model
        .channels
        .iter()
        .map(|ch| {
            let signals = ch
                .ids
                .iter()
                .map(|id| map.get(id).unwrap().clone())
                .collect();
            (ch.id.clone(), signals)
        })
        .collect();
    let mut out = RecordingWriter::create(path).unwrap();
    let ids: Vec<String> = (0..devices).map(device_id).collect();
    for id in &ids {
        out.write(DAY_START, "Register/Request", &encode::register_request(id))
            .unwrap();
        out.write(
            DAY_START,
            &device_topic(MessageKind::ProbeQueryResponse, id),
            &encode::probe_response(None, &tree),
        )
        .unwrap();
    }
    let mut machines: Vec<Machine> = (0..devices).map(|n| Machine::new(1, n)).collect();
    let mut written = 0u64;
    let mut t = 0i64;
    let mut buf = Vec::with_capacity(1 << 20);
    while written < samples && DAY_START + t < until {
        for (machine, id) in machines.iter_mut().zip(&ids) {
            for (channel, signals) in &channels {
                let per_row = (upload_ms / sample_ms) as usize;
                let mut rows: Vec<Vec<WireValue>> =
                    vec![Vec::with_capacity(per_row); signals.len()];
                sample_rows(machine, signals, t, t + upload_ms - 1, sample_ms, &mut rows);
                written += rows.iter().map(|r| r.len() as u64).sum::<u64>();
                buf.clear();
                encode::sample_message(&mut buf, channel, DAY_START + t, &rows);
                out.write(DAY_START + t + upload_ms, &sample_topic(id, channel), &buf)
                    .unwrap();
            }
        }
        t += upload_ms;
    }
    out.finish().unwrap();
    written
}

fn pipeline(dir: &Path, windows: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{d}/state\"\n[source]\nurl = \"mqtt://127.0.0.1:1\"\n{windows}\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [[sinks]]\nname = \"lake\"\nkind = \"parquet\"\ndir = \"{d}/lake\"\nqueue = 64\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `replay`; returns the seconds it took and its summary line.
fn replay(recording: &Path, config: &Path) -> (f64, String) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args(["replay", "--quiet", "-c"])
        .arg(config)
        .arg(recording)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("replay done"))
        .unwrap_or_default()
        .to_string();
    (secs, summary)
}

fn data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let data = data_dir();

    // 1. Replay into windows and the lake.
    let target = env("LAKE_REPLAY_SAMPLES", 5_000_000);
    let recording = data.join(format!("replay-{target}.jsonl.zst"));
    if !recording.exists() {
        let started = Instant::now();
        let n = generate(&recording, 20, 1, 200, target, i64::MAX);
        eprintln!(
            "generated {n} samples in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let dir = tempfile::tempdir_in(&data).unwrap();
    let config = pipeline(
        dir.path(),
        "[windows]\ntumbling = [\"1s\", \"10s\", \"1m\"]\nsliding = [{ size = \"1m\", every = \"10s\" }]\nallowed_lateness = \"2s\"",
    );
    let (secs, summary) = replay(&recording, &config);
    println!(
        "replay {} ({} bytes) at --speed max, windows + Parquet: {secs:.2} s\n  {summary}",
        recording.display(),
        std::fs::metadata(&recording).unwrap().len()
    );
    drop(dir);

    // 2. Analyze a day of 50 M samples.
    if std::env::var("LAKE_SKIP_ANALYZE").is_ok() {
        return;
    }
    let devices = env("LAKE_ANALYZE_DEVICES", 3);
    let recording = data.join(format!("day-{devices}.jsonl.zst"));
    if !recording.exists() {
        let started = Instant::now();
        let n = generate(
            &recording,
            devices,
            100,
            1_000,
            u64::MAX,
            DAY_START + 86_400_000,
        );
        eprintln!(
            "generated {n} samples in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let lake_dir = data.join(format!("day-{devices}-lake"));
    if !lake_dir.join("lake").exists() {
        std::fs::create_dir_all(&lake_dir).unwrap();
        let config = pipeline(&lake_dir, "[windows]\ntumbling = []");
        let (secs, summary) = replay(&recording, &config);
        eprintln!("wrote the lake in {secs:.1} s: {summary}");
    }
    let lake = lake_dir.join("lake");
    let (from, to) = (DAY_START.to_string(), (DAY_START + 86_400_000).to_string());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args([
            "analyze", "--quiet", "--every", "1m", "--format", "csv", "--from", &from, "--to", &to,
            "--lake",
        ])
        .arg(&lake)
        .output()
        .unwrap();
    let ours = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let windows = out.stdout.iter().filter(|&&b| b == b'\n').count() - 1;
    let started = Instant::now();
    let duck = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/duckdb-windows.py"
        ))
        .arg(&lake)
        .args(["--every-ms", "60000", "--from", &from, "--to", &to])
        .output()
        .unwrap();
    let theirs = started.elapsed().as_secs_f64();
    assert!(
        duck.status.success(),
        "{}",
        String::from_utf8_lossy(&duck.stderr)
    );
    let size: u64 = walk(&lake)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "analyze --every 1m over one day ({} lake bytes): millstream {ours:.2} s for {windows} windows; \
         DuckDB process {theirs:.2} s ({})",
        size,
        String::from_utf8_lossy(&duck.stderr).trim()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
