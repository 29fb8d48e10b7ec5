//! millstream: stream processing for machine-tool telemetry.
//!
//! CNC machines (or the built-in simulator) speak NC-Link over MQTT; millstream ingests every
//! sample and branches it into analytics and storage. `docs/DESIGN.md` is the contract.
//!
//! Layout, by stage (the order data flows; a module uses only modules of its own or an
//! earlier stage, `scripts/module-cycles` checks there is no cycle):
//!
//! Foundations
//! - [`id`]: device and item ids, interned once per process and copied without counting.
//! - [`sample`]: the unit of data, one value of one item of one device at one instant.
//! - [`time`]: calendar arithmetic on UTC milliseconds and strict parsing of given times.
//! - [`rng`]: a small seedable random number generator for the simulator and backoff.
//! - [`backoff`]: capped, jittered exponential backoff for reconnects and retries.
//! - [`stop`]: the stop signal shared by long-running tasks.
//! - [`config`]: the pipeline file (DESIGN.md §4), loaded with every problem reported at once.
//! - [`tls`]: TLS client settings (MQTT over TLS, HTTPS sinks).
//! - [`metrics`]: every counter and gauge, read by logs, `/api/v1/status` and `/metrics`.
//!
//! Wire
//! - [`nclink`]: the device protocol: topics, bounds, decoding, encoding, device models.
//! - [`recording`]: raw MQTT traffic with receive times, as JSON Lines.
//! - [`dead_letter`]: messages refused, kept on disk with their reason.
//! - [`rotating`]: bounded sets of JSON Lines files (dead letters, rejected rows).
//!
//! Source
//! - [`source`]: the MQTT source as an NC-Link platform, with acknowledgements and control.
//! - [`replay`]: recorded traffic or the lake's samples fed in the source's place.
//! - [`cluster`]: one process of several: who it is and which devices it speaks to.
//! - [`sim`]: simulated CNC machines speaking NC-Link (`millstream sim`).
//!
//! Dataflow
//! - [`window`]: windowed aggregates, independent of the engine that runs them.
//! - [`dataflow`]: the timely/differential dataflow (the only module importing them).
//!
//! Durability, sinks and lake
//! - [`frame`]: framed, checksummed records in the engine's own files.
//! - [`codec`]: the binary record of a batch, shared by the spools and the log.
//! - [`wal`]: the write-ahead log that makes an acknowledged message survive `kill -9`.
//! - [`sinks`]: the stores (MySQL, SQLite, InfluxDB, Parquet), each with queue and spool.
//! - [`lake`]: the Parquet lake's format, its readers, compaction, upload and analysis.
//!
//! Live and HTTP
//! - [`live`]: the read side: live views, device registry, recent windows, event bus.
//! - [`http`]: the HTTP API, Server-Sent Events, `/metrics` and the dashboard.
//!
//! Running it
//! - [`engine`]: source → dataflow → sinks and the API, started and stopped in order.
//! - [`cli`]: the command line (`run`, `demo`, `sim`, `replay`, `analyze`, …).

pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod dataflow;
pub mod dead_letter;
pub mod engine;
pub mod frame;
pub mod http;
pub mod id;
pub mod lake;
pub mod live;
pub mod metrics;
pub mod nclink;
pub mod recording;
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
pub mod wal;
pub mod window;
