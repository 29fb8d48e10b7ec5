//! Fuzzes building a device model from a probe answer's tree: never a panic, and whatever it
//! accepts stays within the bounds of `source.limits` (entries, name lengths, nesting), so a
//! model's memory follows its size.
//!
//!     scripts/fuzz model
#![no_main]

use libfuzzer_sys::fuzz_target;
use millstream::nclink::intern::Interner;
use millstream::nclink::limits::{MAX_ID_BYTES, WireLimits};
use millstream::nclink::model::DeviceModel;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let limits = WireLimits::default();
    let mut ids = Interner::default();
    let Ok(model) = DeviceModel::from_tree(tree, &limits, &mut ids) else {
        return;
    };
    let entries =
        model.items.len() + model.channels.iter().map(|c| 1 + c.ids.len()).sum::<usize>();
    assert!(entries <= limits.model_items, "{entries} entries");
    assert!(ids.len() <= limits.ids_per_device);
    for item in &model.items {
        assert!(item.id.len() <= MAX_ID_BYTES);
        assert!(item.name.len() <= limits.name_bytes && item.kind.len() <= limits.name_bytes);
        let path = item.path.to_string();
        assert!(path.len() <= limits.model_depth * (limits.name_bytes + 1), "{}", path.len());
    }
    for channel in &model.channels {
        assert!((1..=86_400_000).contains(&channel.sample_interval_ms));
    }
});
