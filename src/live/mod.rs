//! The read side: what the engine keeps up to date for readers while data flows — the live
//! views the dataflow maintains ([`views`]), the devices seen and their models ([`registry`]),
//! the recent windows ([`window_store`]), and the broadcast of live events to Server-Sent
//! Events subscribers ([`bus`]). Each is bounded in memory and shared behind an `Arc`; the
//! HTTP layer only reads them.

pub mod bus;
pub mod registry;
pub mod views;
pub mod window_store;

pub use bus::{Bus, LiveEvent};
