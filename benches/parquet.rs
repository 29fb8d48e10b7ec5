//! Parquet sink throughput (criterion): samples of 100 machines × 20 items at 100 Hz written to
//! a lake (buffering, encoding, zstd, file completion) on one core, and the bytes per sample on
//! disk. Results: docs/benchmarks.md.
//!
//!     cargo bench --bench parquet

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream::id::Id;
use millstream::lake::writer::{Lake, LakeOptions};
use millstream::sample::Sample;

/// One second of the fleet per batch group: 100 machines × 20 items × 100 samples.
fn fleet(seconds: i64) -> Vec<std::sync::Arc<[Sample]>> {
    let devices: Vec<Id> = (0..100)
        .map(|d| Id::from(format!("STRESS_TEST_{d:05}")))
        .collect();
    let items: Vec<Id> = (0..20).map(|i| Id::from(format!("01035{i:05}"))).collect();
    let mut batches = Vec::new();
    for upload in 0..seconds * 10 {
        for (d, device) in devices.iter().enumerate() {
            let mut batch = Vec::with_capacity(200);
            for (i, item) in items.iter().enumerate() {
                for k in 0..10 {
                    let ts = 1_764_086_400_000 + upload * 100 + k * 10;
                    // Realistic values: smooth signals with 3 decimals.
                    let v = (((ts / 10) as f64 * 0.001 + (d * 20 + i) as f64).sin() * 250_000.0)
                        .round()
                        / 1_000.0;
                    batch.push(Sample::number(device.clone(), item.clone(), ts, v));
                }
            }
            batches.push(std::sync::Arc::<[Sample]>::from(batch));
        }
    }
    batches
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let batches = fleet(10);
    let samples: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let mut group = c.benchmark_group("parquet");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(samples));
    let mut bytes_per_sample = 0.0;
    group.bench_function("lake_write/samples", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let mut lake = Lake::new(
                    dir.path().to_path_buf(),
                    LakeOptions {
                        roll_rows: 1_000_000,
                        roll_age: Duration::from_secs(3_600),
                        writer: "bench".into(),
                        skip_existing: None,
                    },
                );
                let start = Instant::now();
                for batch in &batches {
                    lake.write_samples(batch).unwrap();
                }
                lake.finish().unwrap();
                total += start.elapsed();
                bytes_per_sample = disk_bytes(dir.path()) as f64 / samples as f64;
            }
            total
        })
    });
    group.finish();
    println!(
        "parquet: {bytes_per_sample:.2} bytes per sample on disk ({samples} samples, zstd level 3)"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
