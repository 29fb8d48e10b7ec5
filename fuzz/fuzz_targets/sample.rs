//! Fuzzes Sample messages of a device with a known model, in both dialects: never a panic, and
//! every sample that comes out has an event time inside `source.limits`, a bounded item id, and
//! the device it was sent for (nothing a crafted message carries can reach the dataflow's
//! arithmetic or a store unchecked).
//!
//!     scripts/fuzz sample
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use millstream::metrics::Metrics;
use millstream::nclink::limits::{MAX_ID_BYTES, WireLimits};
use millstream::source::SourceEvent;
use millstream::source::platform::{Action, Platform, PlatformOptions};

const MODEL: &str = include_str!("../../data/nc-link/lab-model.json");

fuzz_target!(|data: &[u8]| {
    let mut platform = Platform::new(PlatformOptions::default(), Arc::new(Metrics::default()));
    platform.on_message(
        "Probe/Version/D",
        Bytes::from_static(br#"{"version":"1.1"}"#),
        1_000,
    );
    let answer = format!(r#"{{"code":"ok","probe":{MODEL}}}"#);
    platform.on_message("Probe/Query/Response/D", Bytes::from(answer), 1_001);
    assert!(platform.model("D").is_some());
    let limits = WireLimits::default();
    for topic in ["Sample/D/sample_channel0", "Sample/D/c/client", "Query/Response/D"] {
        for action in platform.on_message(topic, Bytes::copy_from_slice(data), 2_000) {
            let Action::Emit(SourceEvent::Samples(batch)) = action else {
                continue;
            };
            for s in &batch.samples {
                assert!(limits.time_ok(s.ts), "time {}", s.ts);
                assert!(!s.item.is_empty() && s.item.len() <= MAX_ID_BYTES);
                assert_eq!(&*s.device, "D");
                assert!(s.value.is_none_or(f64::is_finite));
            }
        }
    }
});
