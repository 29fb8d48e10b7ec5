//! NC-Link, the device protocol (DESIGN.md §2): topics, payload decoding and encoding, the
//! device model, and the machine-status table.
//!
//! Layout:
//! - [`topic`]: topic ↔ (message kind, device, channel).
//! - [`decode`]: payload → [`decode::Message`] → samples; never panics.
//! - [`encode`]: requests the platform sends and messages the simulator sends.
//! - [`model`]: the device model from `Probe/Query/Response`.
//! - [`value`]: one JSON value → number, text or nothing.
//! - [`status`]: STATUS codes and words ↔ fleet states.
//! - [`intern`]: each device's item ids, bounded.
//! - [`limits`]: bounds on what a device may send.
//! - [`error`]: why a message was refused.

pub mod decode;
pub mod encode;
pub mod error;
mod fast;
pub mod intern;
pub mod limits;
pub mod model;
pub mod status;
pub mod topic;
pub mod value;

#[cfg(test)]
mod properties;

pub use error::{DecodeError, Reason};
