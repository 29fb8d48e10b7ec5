//! The unit of data every part of millstream exchanges: one value of one data item of one
//! device at one instant (DESIGN.md §1).
//!
//! Device and item ids are [`Id`]s, interned once per process: a message yields many samples of
//! one device and a fleet millions of samples of a few hundred item ids, and copying or
//! dropping an `Id` costs nothing (no reference count that every core would touch).

use serde::{Deserialize, Serialize};

use crate::id::Id;

/// One value of one item of one device at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Device id, e.g. `STRESS_TEST_00000`.
    pub device: Id,
    /// NC-Link data item id, e.g. `0103502202`, or `"{id}[{i}]"` for an indexed item.
    pub item: Id,
    /// Event time in milliseconds since the Unix epoch, UTC.
    pub ts: i64,
    /// The value when it is a number.
    pub value: Option<f64>,
    /// The value when it is a string, a boolean, or JSON (arrays and objects, JSON-encoded).
    pub text: Option<Box<str>>,
}

impl Sample {
    /// A numeric sample.
    pub fn number(device: Id, item: Id, ts: i64, value: f64) -> Sample {
        Sample {
            device,
            item,
            ts,
            value: Some(value),
            text: None,
        }
    }

    /// A text sample.
    pub fn text(device: Id, item: Id, ts: i64, text: impl Into<Box<str>>) -> Sample {
        Sample {
            device,
            item,
            ts,
            value: None,
            text: Some(text.into()),
        }
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
