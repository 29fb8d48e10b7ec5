//! Simulator output rate on one core (criterion): evaluating a machine and encoding its Sample
//! messages, without the network. Results: docs/benchmarks.md.
//!
//!     cargo bench --bench simulator

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream::nclink::encode::{self, WireValue};
use millstream::nclink::model::DeviceModel;
use millstream::sim::machine::Machine;
use millstream::sim::model_with_intervals;
use millstream::sim::signals::{Signal, SignalMap, sample_rows};

fn bench(c: &mut Criterion) {
    // Every channel sampled every 1 ms and uploaded every 200 ms: 200 ticks per message.
    let tree = model_with_intervals(Some(1), Some(200));
    let map = SignalMap::from_model(&tree);
    let model = DeviceModel::from_own_tree(tree).unwrap();
    let channels: Vec<(String, Vec<Signal>)> = model
        .channels
        .iter()
        .map(|ch| {
            (
                ch.id.clone(),
                ch.ids
                    .iter()
                    .map(|id| map.get(id).unwrap().clone())
                    .collect(),
            )
        })
        .collect();
    let samples_per_round: u64 = channels.iter().map(|(_, s)| s.len() as u64 * 200).sum();

    let mut group = c.benchmark_group("simulator");
    group.throughput(Throughput::Elements(samples_per_round));
    group.bench_function("one_machine_200ms_at_1ms/samples", |b| {
        let mut machine = Machine::new(0, 0);
        let mut t = 0;
        let mut buf = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            for (id, signals) in &channels {
                let mut rows: Vec<Vec<WireValue>> = vec![Vec::with_capacity(200); signals.len()];
                sample_rows(&mut machine, signals, t, t + 199, 1, &mut rows);
                buf.clear();
                encode::sample_message(&mut buf, id, 1_764_086_400_000 + t, &rows);
                black_box(&buf);
            }
            t += 200;
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
