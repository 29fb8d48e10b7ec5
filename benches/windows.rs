//! Window operator throughput (criterion): the default windows (1 s, 10 s, 1 m tumbling and
//! 1 m / 10 s sliding, every aggregate) over 100 machines × 20 items sampled at 100 Hz, through
//! the whole timely dataflow (input channel, exchange, windows, live views), with 1 and 2
//! workers; and the per-key window state alone. Results: docs/benchmarks.md.
//!
//! Each dataflow benchmark also prints, from the process's CPU time (`/proc/self/stat`) during
//! its timed runs (criterion's warm-up runs included: the same work), how many cores were busy and the CPU time per sample: on a machine with as
//! many cores as workers, the feeding thread and the raw sink's thread share the cores with
//! the workers, and these two figures tell that apart from work the workers repeat.
//!
//!     cargo bench --bench windows

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream::dataflow::{self, DataflowOptions, Observer};
use millstream::id::Id;
use millstream::live::views::{ItemKey, LatestValue};
use millstream::nclink::status::MachineState;
use millstream::sample::Sample;
use millstream::window::{KeyWindows, WindowRow, WindowSpec};

fn spec() -> WindowSpec {
    WindowSpec::new(&[1_000, 10_000, 60_000], &[(60_000, 10_000)])
}

/// `seconds` of 100 machines × 20 items at 100 Hz, in batches of one message per machine and
/// channel upload (100 ms).
fn fleet(seconds: i64) -> Vec<Vec<Sample>> {
    let devices: Vec<Id> = (0..100)
        .map(|d| Id::from(format!("STRESS_TEST_{d:05}")))
        .collect();
    let items: Vec<Id> = (0..20).map(|i| Id::from(format!("01035{i:05}"))).collect();
    let mut batches = Vec::new();
    for upload in 0..seconds * 10 {
        for (d, device) in devices.iter().enumerate() {
            let mut batch = Vec::with_capacity(20 * 10);
            for (i, item) in items.iter().enumerate() {
                for k in 0..10 {
                    let ts = 1_764_086_400_000 + upload * 100 + k * 10;
                    let v = ((ts / 10 + (d * 20 + i) as i64) % 1_000) as f64 * 0.37;
                    batch.push(Sample::number(device.clone(), item.clone(), ts, v));
                }
            }
            batches.push(batch);
        }
    }
    batches
}

struct Count {
    windows: AtomicU64,
    /// The queue of a raw-sample sink that only counts rows (closed when this is dropped).
    raw_sink: std::sync::mpsc::SyncSender<Arc<[Sample]>>,
}

impl Observer for Count {
    /// Like the engine: the raw batch goes to a sink's queue (whose thread drops it).
    fn on_samples(&self, samples: &Arc<[Sample]>) {
        self.raw_sink.send(samples.clone()).unwrap();
    }
    fn on_windows(&self, windows: &[WindowRow]) {
        self.windows
            .fetch_add(windows.len() as u64, Ordering::Relaxed);
    }
    fn on_late(&self, _: u64) {}
    fn on_latest(&self, _: &[(ItemKey, LatestValue, isize)]) {}
    fn on_fleet(&self, _: &[(MachineState, i64, isize)]) {}
    fn on_samples_per_device(&self, _: &[(Id, i64, isize)]) {}
}

/// Whole messages joined into batches of at most `max` samples.
fn coalesce(batches: &[Vec<Sample>], max: usize) -> Vec<Vec<Sample>> {
    let mut out: Vec<Vec<Sample>> = vec![Vec::new()];
    for batch in batches {
        if out.last().expect("one").len() + batch.len() > max {
            out.push(Vec::new());
        }
        out.last_mut().expect("one").extend_from_slice(batch);
    }
    out
}

/// Wall and CPU time of the timed runs of one benchmark.
#[derive(Default)]
struct Usage {
    wall: Duration,
    cpu: Duration,
    samples: u64,
}

impl Usage {
    fn report(&self, name: &str) {
        if self.samples == 0 || self.wall.is_zero() {
            return;
        }
        eprintln!(
            "{name}: {:.2} cores busy, {:.0} ns of CPU per sample",
            self.cpu.as_secs_f64() / self.wall.as_secs_f64(),
            self.cpu.as_nanos() as f64 / self.samples as f64,
        );
    }
}

/// CPU time (user + system) of this process so far; `/proc/self/stat` counts it in ticks
/// (1/100 s), fine over the seconds a benchmark runs.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start with the state, field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a command name in parentheses")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Feeds `batches` through a fresh dataflow to its end; the time taken.
fn run(batches: &[Vec<Sample>], workers: usize, usage: &mut Usage) -> Duration {
    // Fresh samples each run, shared as the ingest task hands them over; a raw sink's thread
    // receives every batch and drops it, as in the engine (part of the timed work).
    let input_batches: Vec<Arc<[Sample]>> =
        batches.iter().map(|b| Arc::from(b.as_slice())).collect();
    let (raw_sink, queue) = std::sync::mpsc::sync_channel::<Arc<[Sample]>>(256);
    let observer = Arc::new(Count {
        windows: AtomicU64::new(0),
        raw_sink,
    });
    let options = DataflowOptions {
        workers,
        windows: spec(),
        allowed_lateness_ms: 2_000,
        idle_timeout_ms: None,
        input_capacity: 256,
        cluster: None,
        holds: Default::default(),
    };
    let cpu = process_cpu();
    let start = Instant::now();
    let sink = std::thread::spawn(move || queue.iter().map(|b| b.len()).sum::<usize>());
    let (input, flow) = dataflow::start(options, observer.clone()).unwrap();
    for batch in input_batches {
        input.blocking_send(batch).unwrap();
    }
    input.close();
    flow.join().unwrap();
    let windows = observer.windows.load(Ordering::Relaxed);
    drop(observer);
    let rows = sink.join().unwrap();
    let elapsed = start.elapsed();
    usage.cpu += process_cpu().saturating_sub(cpu);
    usage.wall += elapsed;
    usage.samples += rows as u64;
    assert!(windows > 0);
    assert_eq!(rows, batches.iter().map(Vec::len).sum::<usize>());
    elapsed
}

fn bench(c: &mut Criterion) {
    let batches = fleet(10);
    let samples: u64 = batches.iter().map(|b| b.len() as u64).sum();

    let mut group = c.benchmark_group("windows");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(samples));
    // One message per batch (a lightly loaded engine), and messages coalesced as the ingest
    // task does when they queue up (up to 16,384 samples; any load near the limit).
    let coalesced = coalesce(&batches, 16_384);
    for (name, input) in [
        ("message_batches", &batches),
        ("ingest_batches", &coalesced),
    ] {
        for workers in [1, 2] {
            let id = format!("dataflow_{workers}_worker/{name}");
            let mut usage = Usage::default();
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += run(input, workers, &mut usage);
                    }
                    total
                })
            });
            usage.report(&format!("windows/{id}"));
        }
    }
    group.finish();

    let mut group = c.benchmark_group("key_windows");
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("one_key_100hz/samples", |b| {
        let spec = spec();
        b.iter(|| {
            let mut key = KeyWindows::new(&spec);
            let mut out = Vec::new();
            for k in 0..100_000i64 {
                key.insert(&spec, 2_000, k * 10, (k % 1_000) as f64 * 0.37, 0, &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
