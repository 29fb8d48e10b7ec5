//! Fuzzes the NC-Link platform with arbitrary topics and payloads: decoding, model handling and
//! the pending buffer must never panic.
//!
//!     scripts/fuzz decode
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use millstream::metrics::Metrics;
use millstream::source::platform::{Platform, PlatformOptions};

const TOPICS: [&str; 8] = [
    "Register/Request",
    "Probe/Version/D",
    "Probe/Query/Response/D",
    "Query/Response/D",
    "Set/Response/D",
    "Sample/D/sample_channel0",
    "Sample/D/c/client",
    "Query/Response/D/client",
];

fuzz_target!(|data: &[u8]| {
    let mut platform = Platform::new(PlatformOptions::default(), Arc::new(Metrics::default()));
    // Split the input into messages: first byte picks the topic, then up to the next 0xFF.
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let Some((&pick, payload)) = chunk.split_first() else { continue };
        let topic = TOPICS[usize::from(pick) % TOPICS.len()];
        platform.on_message(topic, Bytes::copy_from_slice(payload), i as i64);
        platform.on_tick(i as i64 + 1);
    }
});
