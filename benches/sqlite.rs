//! SQLite sink throughput (criterion): batched idempotent inserts of samples (100 machines × 20
//! items) into a fresh database, as the sink does. Results: docs/benchmarks.md.
//!
//!     cargo bench --bench sqlite

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream::id::Id;
use millstream::sample::Sample;

fn samples(n: usize) -> Vec<Sample> {
    let devices: Vec<Id> = (0..100)
        .map(|d| Id::from(format!("STRESS_TEST_{d:05}")))
        .collect();
    let items: Vec<Id> = (0..20).map(|i| Id::from(format!("01035{i:05}"))).collect();
    let mut out = Vec::with_capacity(n);
    let mut tick = 0i64;
    while out.len() < n {
        for device in &devices {
            for item in &items {
                for k in 0..10 {
                    out.push(Sample::number(
                        device.clone(),
                        item.clone(),
                        1_764_086_400_000 + tick * 100 + k * 10,
                        k as f64 * 1.25,
                    ));
                }
            }
        }
        tick += 1;
    }
    out.truncate(n);
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = samples(1_000_000);
    let mut group = c.benchmark_group("sqlite");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(data.len() as u64));
    for batch in [5_000usize, 50_000, 200_000] {
        group.bench_function(format!("insert_samples_batches_of_{batch}/samples"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}/b.db", dir.path().display());
                    total += rt.block_on(async {
                        let pool = millstream::sinks::sqlite::open(&url).await.unwrap();
                        let start = Instant::now();
                        for chunk in data.chunks(batch) {
                            millstream::sinks::sqlite::write(&pool, chunk, &[])
                                .await
                                .unwrap();
                        }
                        let elapsed = start.elapsed();
                        pool.close().await;
                        elapsed
                    });
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
