//! millstream: stream processing for machine-tool telemetry.
//!
//! CNC machines (or the built-in simulator) speak NC-Link over MQTT; millstream ingests every
//! sample and branches it into analytics and storage. `docs/DESIGN.md` is the contract.
//!
//! Layout:
//! - [`config`]: the pipeline file (DESIGN.md §4), loaded with every problem reported at once.
//! - [`sample`]: the unit of data, one value of one item of one device at one instant.
//! - [`id`]: device and item ids, interned once per process and copied without counting.
//! - [`nclink`]: the device protocol: topics, decoding, encoding, device models.

pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dataflow;
pub mod dead_letter;
pub mod engine;
pub mod frame;
pub mod http;
pub mod id;
pub mod lake;
pub mod metrics;
pub mod nclink;
pub mod recording;
pub mod registry;
pub mod replay;
pub mod rng;
pub mod rotating;
pub mod sample;
pub mod sim;
pub mod sinks;
pub mod source;
pub mod stop;
pub mod time;
pub mod tls;
pub mod views;
pub mod wal;
pub mod window;
pub mod window_store;
