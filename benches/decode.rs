//! Decode throughput (criterion): NC-Link Query/Response (10 items) and Sample (3 rows × 200
//! values) messages, topic to samples, as the source does it. Results: docs/benchmarks.md.
//!
//!     cargo bench --bench decode

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use millstream::id::Id;
use millstream::metrics::Metrics;
use millstream::nclink::decode::{
    ChannelLayout, Message, TimeRange, decode, query_response_samples,
};
use millstream::nclink::encode::{self, QueryAnswer, WireValue};
use millstream::nclink::intern::Interner;
use millstream::nclink::topic::MessageKind;
use millstream::nclink::topic::parse_topic;
use millstream::source::platform::{Platform, PlatformOptions};

const ITEMS: [&str; 10] = [
    "0103502201",
    "0103512201",
    "0103522201",
    "0103502202",
    "0103512202",
    "0103522202",
    "0103502101",
    "0103512101",
    "0103522101",
    "010303",
];

fn query_response() -> Vec<u8> {
    let answers: Vec<(&str, QueryAnswer)> = ITEMS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                *id,
                QueryAnswer::Ok(vec![WireValue::Number(123.456 + i as f64 * 7.891)]),
            )
        })
        .collect();
    let mut payload = Vec::new();
    encode::query_response(
        &mut payload,
        Some("millstream-18eb609e852af52e-12345"),
        &answers,
    );
    payload
}

fn sample_message() -> Vec<u8> {
    let rows: Vec<Vec<WireValue>> = (0..3)
        .map(|r| {
            (0..200)
                .map(|k| WireValue::Number(((r * 1000 + k) as f64 * 0.731).sin() * 250.0))
                .map(|v| match v {
                    WireValue::Number(x) => WireValue::Number((x * 1000.0).round() / 1000.0),
                    other => other,
                })
                .collect()
        })
        .collect();
    let mut payload = Vec::new();
    encode::sample_message(&mut payload, "sample_channel1", 1_764_086_400_000, &rows);
    payload
}

fn bench(c: &mut Criterion) {
    let device: Id = Id::from("STRESS_TEST_00000");
    let query = query_response();
    let sample = sample_message();
    let ids: Vec<Id> = ITEMS[..3].iter().map(|s| Id::from(*s)).collect();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("query_response_10_items/message", |b| {
        let mut interner = Interner::default();
        let mut out = Vec::with_capacity(16);
        b.iter(|| {
            out.clear();
            let topic = parse_topic(black_box("Query/Response/STRESS_TEST_00000")).unwrap();
            assert_eq!(topic.kind, MessageKind::QueryResponse);
            query_response_samples(black_box(&query), &device, 1, None, &mut interner, &mut out)
                .unwrap();
            black_box(&out);
        })
    });
    group.bench_function("sample_3x200/message", |b| {
        let mut out = Vec::with_capacity(600);
        b.iter(|| {
            out.clear();
            let topic = parse_topic(black_box("Sample/STRESS_TEST_00000/sample_channel1")).unwrap();
            let Message::Sample(s) = decode(&topic, black_box(&sample)).unwrap() else {
                unreachable!()
            };
            s.to_samples(
                &device,
                ChannelLayout {
                    ids: &ids,
                    sample_interval_ms: 10,
                },
                TimeRange::default(),
                &mut out,
            )
            .unwrap();
            black_box(&out);
        })
    });
    group.finish();

    // The whole platform path (metrics, device lookup, batching) per message.
    let mut group = c.benchmark_group("platform");
    group.throughput(Throughput::Elements(1));
    group.bench_function("query_response_10_items/message", |b| {
        let mut platform = Platform::new(
            PlatformOptions {
                probe_timeout_ms: 3_600_000,
                ..PlatformOptions::default()
            },
            Arc::new(Metrics::default()),
        );
        let payload = Bytes::from(query.clone());
        b.iter(|| {
            let actions =
                platform.on_message("Query/Response/STRESS_TEST_00000", payload.clone(), 1);
            black_box(&actions);
            platform.recycle(actions);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
