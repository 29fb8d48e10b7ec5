//! Integration tests against real services: the machine's Mosquitto (127.0.0.1:1883, or
//! `MILLSTREAM_TEST_MQTT`), private `mosquitto` processes, and the `millstream` binary itself.
//!
//! Tests that need a service are `#[ignore]`d so a plain `cargo test` on a laptop stays green;
//! `scripts/test` starts the services and runs them all (`cargo nextest run --run-ignored all`).
//! A service test that cannot reach its service fails; it never passes silently.
//!
//! Tests share the machine's broker and run in parallel, so each one uses its own device ids
//! (a distinct `STRESS_TEST_` number range or a unique name) and its own client ids, and only
//! looks at traffic of its own devices.

mod stores;
mod support;

mod all_stores;
mod analyze;
mod attacks;
mod bad_input;
mod broker_restart;
mod cli;
mod cluster;
mod crash;
mod demo;
mod engine;
mod golden;
mod influx_api;
mod lake_readers;
mod late_uploads;
mod mysql_tls;
mod poll;
mod recording;
mod replay;
mod sim_source;
mod sinks;
mod tls;
mod webhdfs;
