//! The pipeline configuration (`dataflows/*.toml`, DESIGN.md §4): typed sections, their
//! defaults, and the checks that span several keys.
//!
//! Loading ([`load()`]) reports every problem it can find at once, each naming the file, line and
//! key, before anything starts.
//!
//! Layout:
//! - this file: the sections and their fields (every field documented; unknown keys rejected).
//! - [`sinks`]: `[[sinks]]`, one struct per store kind, each taking only its own keys.
//! - [`load`](mod@load): TOML → `${VAR}` expansion → sections → cross-key checks, with positions.
//! - [`duration`], [`size`], [`secret`], [`broker`], [`env`](mod@env): value types.

pub mod broker;
pub mod duration;
pub mod env;
pub mod load;
pub mod secret;
pub mod sinks;
pub mod size;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use broker::BrokerUrl;
pub use duration::HumanDuration;
pub use load::{ConfigError, ConfigErrors, load, load_str};
pub use secret::{Secret, redact_secrets};
pub use sinks::{
    InfluxApi, InfluxConfig, MysqlConfig, ParquetConfig, SinkCommon, SinkConfig, SinkKind, SinkUrl,
    SqliteConfig, StoreConfig, StreamKind, UploadConfig,
};
pub use size::ByteSize;

/// Deserializes a value written as a string through its `FromStr`, whose error becomes the
/// message (with the value's position added by the loader).
pub(crate) fn from_str_de<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A whole pipeline file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where millstream keeps its own state: spool, write-ahead log, dead letters.
    pub state_dir: PathBuf,
    pub source: SourceConfig,
    pub windows: WindowsConfig,
    pub http: HttpConfig,
    pub sinks: Vec<SinkConfig>,
    pub dead_letters: DeadLetterConfig,
    pub wal: WalConfig,
}

impl Config {
    /// Where dead letters are written.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.state_dir.join("dead-letters")
    }
}

/// `[source]`: the MQTT broker millstream takes NC-Link traffic from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Broker URL: `mqtt://host:port`, or `mqtts://host:port` for TLS; a user and password may
    /// be given in the URL or with `username`/`password`.
    pub url: BrokerUrl,
    /// MQTT client id. Keep it stable: the broker keeps the persistent session under it.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// User name (overrides one given in the URL).
    #[serde(default)]
    pub username: Option<String>,
    /// Password (overrides one given in the URL). Use `${VAR}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Start a clean session instead of resuming the persistent one. Off by default: with a
    /// persistent session the broker keeps QoS 1 messages while millstream is away.
    #[serde(default)]
    pub clean_session: bool,
    /// MQTT keep-alive interval.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// Largest MQTT packet accepted. Defaults to the protocol maximum (256 MiB) so that no
    /// message the broker can deliver ever drops the connection; `max_payload` is the
    /// application limit.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: ByteSize,
    /// Largest payload decoded; larger messages are dead-lettered as `too_large`.
    #[serde(default = "default_max_payload")]
    pub max_payload: ByteSize,
    /// Bytes of received, not yet processed messages held in memory. QoS 1 traffic is bounded
    /// by the broker's in-flight window regardless; QoS 0 messages beyond this are
    /// dead-lettered as `overloaded`.
    #[serde(default = "default_buffer")]
    pub buffer: ByteSize,
    /// TLS settings for `mqtts://`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// NC-Link Query polling of every known device.
    #[serde(default)]
    pub poll: Option<PollConfig>,
    /// How long to wait for a `Probe/Query/Response` before asking again (doubling up to 1 min).
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: HumanDuration,
    /// Sample messages of devices whose model has not arrived yet.
    #[serde(default)]
    pub pending: PendingConfig,
    /// Bounds on what devices may send; what exceeds one is dead-lettered (DESIGN.md §7).
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[source.limits]`: bounds on device traffic, checked before anything reaches the engine's
/// state or a store. The defaults are far above what real machines send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Earliest event time accepted (RFC 3339 or ms since the epoch); earlier samples:
    /// `bad_time`.
    #[serde(default = "default_earliest", deserialize_with = "from_str_de")]
    pub earliest: TimeBound,
    /// Latest event time accepted (exclusive); later samples: `bad_time`.
    #[serde(default = "default_latest", deserialize_with = "from_str_de")]
    pub latest: TimeBound,
    /// Furthest a sample may lie ahead of its message's receive time (a device clock, or the
    /// interval of its values, that is wrong); further: `bad_time`. A key's watermark follows
    /// its newest event time, so one value dated ahead would make everything after it late.
    #[serde(default = "default_ahead")]
    pub ahead: HumanDuration,
    /// Largest probe answer (device model); larger: `too_large`.
    #[serde(default = "default_model_size")]
    pub model_size: ByteSize,
    /// Most data items, configs and channel entries in a model; more: `wrong_shape`.
    #[serde(default = "default_model_items")]
    pub model_items: usize,
    /// Deepest nesting of components in a model; deeper: `wrong_shape`.
    #[serde(default = "default_model_depth")]
    pub model_depth: usize,
    /// Longest name or type text in a model, in bytes; longer ones are cut.
    #[serde(default = "default_name_size")]
    pub name_size: usize,
    /// Most values of one item in a Query answer (each an indexed item); more: `wrong_shape`.
    #[serde(default = "default_indexed_values")]
    pub indexed_values: usize,
    /// Most distinct item ids one device may use; beyond: `overloaded`.
    #[serde(default = "default_ids_per_device")]
    pub ids_per_device: usize,
    /// Most (device, item) keys over all devices; beyond: `overloaded`.
    #[serde(default = "default_keys")]
    pub keys: usize,
    /// Most bytes of models held over all devices; beyond: `overloaded`.
    #[serde(default = "default_models_size")]
    pub models_size: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            earliest: default_earliest(),
            latest: default_latest(),
            ahead: default_ahead(),
            model_size: default_model_size(),
            model_items: default_model_items(),
            model_depth: default_model_depth(),
            name_size: default_name_size(),
            indexed_values: default_indexed_values(),
            ids_per_device: default_ids_per_device(),
            keys: default_keys(),
            models_size: default_models_size(),
        }
    }
}

impl LimitsConfig {
    /// The limits the platform checks.
    pub fn wire(&self) -> crate::nclink::limits::WireLimits {
        crate::nclink::limits::WireLimits {
            earliest_ms: self.earliest.0,
            latest_ms: self.latest.0,
            ahead_ms: self.ahead.as_millis().min(i64::MAX as u64) as i64,
            model_bytes: self.model_size.bytes(),
            model_items: self.model_items,
            model_depth: self.model_depth,
            name_bytes: self.name_size,
            indexed_values: self.indexed_values,
            ids_per_device: self.ids_per_device,
            keys: self.keys,
            models_bytes: self.models_size.bytes(),
        }
    }
}

/// An instant in a pipeline file: RFC 3339 or ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound(pub i64);

impl std::str::FromStr for TimeBound {
    type Err = String;
    fn from_str(text: &str) -> Result<TimeBound, String> {
        crate::time::parse_time(text).map(TimeBound)
    }
}

fn default_earliest() -> TimeBound {
    TimeBound(crate::nclink::limits::DEFAULT_EARLIEST_MS)
}
fn default_latest() -> TimeBound {
    TimeBound(crate::nclink::limits::DEFAULT_LATEST_MS)
}
fn default_ahead() -> HumanDuration {
    HumanDuration::from_millis(60_000)
}
fn default_model_size() -> ByteSize {
    ByteSize::kib(512)
}
fn default_model_items() -> usize {
    10_000
}
fn default_model_depth() -> usize {
    32
}
fn default_name_size() -> usize {
    256
}
fn default_indexed_values() -> usize {
    1_024
}
fn default_ids_per_device() -> usize {
    16_384
}
fn default_keys() -> usize {
    1_000_000
}
fn default_models_size() -> ByteSize {
    ByteSize::mib(256)
}

/// `[source.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA that signed the broker's certificate (default: the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for brokers that require client authentication.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// `[source.poll]`: ask every known device for the current values of `items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// How often.
    pub interval: HumanDuration,
    /// NC-Link item ids to ask for.
    pub items: Vec<String>,
    /// An answer later than this counts as a timeout (default: the interval, at least 1 s).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Only these devices (ids, or prefixes ending in `*`); default: every known device.
    #[serde(default)]
    pub devices: Vec<String>,
}

impl PollConfig {
    /// Whether `device` is polled.
    pub fn polls(&self, device: &str) -> bool {
        self.devices.is_empty()
            || self
                .devices
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => device.starts_with(prefix),
                    None => device == pattern,
                })
    }

    pub fn effective_timeout(&self) -> HumanDuration {
        self.timeout
            .unwrap_or_else(|| self.interval.max(HumanDuration::from_millis(1_000)))
    }
}

/// `[source.pending]`: Sample messages kept while a device's model is being fetched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingConfig {
    /// Most bytes kept over all devices; the oldest message beyond it is dead-lettered `no_model`.
    #[serde(default = "default_pending_bytes")]
    pub max_bytes: ByteSize,
    /// Most messages kept per device.
    #[serde(default = "default_pending_messages")]
    pub max_messages_per_device: usize,
    /// Longest a message waits for its model before it is dead-lettered `no_model`.
    #[serde(default = "default_pending_age")]
    pub max_age: HumanDuration,
}

impl Default for PendingConfig {
    fn default() -> Self {
        PendingConfig {
            max_bytes: default_pending_bytes(),
            max_messages_per_device: default_pending_messages(),
            max_age: default_pending_age(),
        }
    }
}

/// `[windows]`: the windowed aggregates (DESIGN.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsConfig {
    /// Tumbling window sizes, aligned to the epoch.
    #[serde(default = "default_tumbling")]
    pub tumbling: Vec<HumanDuration>,
    /// Sliding windows: `{ size = "1m", every = "10s" }`.
    #[serde(default)]
    pub sliding: Vec<SlidingWindow>,
    /// How far behind its key's newest sample a sample may arrive and still count.
    #[serde(default = "default_allowed_lateness")]
    pub allowed_lateness: HumanDuration,
    /// After this long without data a key's watermark advances with the wall clock
    /// (default: `allowed_lateness`).
    #[serde(default)]
    pub idle_timeout: Option<HumanDuration>,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            tumbling: default_tumbling(),
            sliding: Vec::new(),
            allowed_lateness: default_allowed_lateness(),
            idle_timeout: None,
        }
    }
}

/// A sliding window.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    pub size: HumanDuration,
    pub every: HumanDuration,
}

/// `[http]`: the API and dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; loopback unless you mean to expose it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// When set, POST endpoints require `Authorization: Bearer <token>`. Required to listen
    /// beyond loopback (unless `allow_open`).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Host names the API may be reached by, besides IP addresses and `localhost` (a request
    /// naming another host is refused: DNS rebinding); `*.example.com` for a whole domain.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Listen beyond loopback without a token, for reading only: POST endpoints then refuse
    /// every request.
    #[serde(default)]
    pub allow_open: bool,
    /// Most Server-Sent Events clients at once; more get 503.
    #[serde(default = "default_sse_clients")]
    pub sse_clients: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            token: None,
            allowed_hosts: Vec::new(),
            allow_open: false,
            sse_clients: default_sse_clients(),
        }
    }
}

fn default_sse_clients() -> usize {
    64
}

/// Refuses to expose the API beyond loopback without a token, unless told to.
pub fn check_exposure(
    listen: SocketAddr,
    token: Option<&Secret>,
    allow_open: bool,
) -> Result<(), String> {
    if listen.ip().is_loopback() || token.is_some() || allow_open {
        return Ok(());
    }
    Err(format!(
        "http.listen {listen} is reachable beyond this machine, and http.token is not set: \
         anyone who can reach it could switch the broker and query machines. Set http.token \
         (e.g. token = \"${{MILLSTREAM_TOKEN}}\"), listen on 127.0.0.1, or set \
         http.allow_open = true to serve reading only (POST endpoints then refuse every request)"
    ))
}

/// `[wal]`: the write-ahead log that makes an acknowledged message survive a crash
/// (`state_dir/wal/`, DESIGN.md §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Off: messages are acknowledged once handed to the dataflow (faster, but a crash loses
    /// what the sinks had not written yet).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the log is cut: once every sink has durably written what a cut segment holds
    /// (and the windows over it have closed), the segment is deleted. The Parquet lake
    /// completes its open files at each cut.
    #[serde(default = "default_checkpoint")]
    pub checkpoint: HumanDuration,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            enabled: true,
            checkpoint: default_checkpoint(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_checkpoint() -> HumanDuration {
    HumanDuration::from_millis(30_000)
}

/// `[dead_letters]`: where refused messages go (`state_dir/dead-letters/*.jsonl`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Payload bytes kept per dead letter; the rest is cut (the record says so).
    #[serde(default = "default_dl_payload")]
    pub max_payload: ByteSize,
    /// Size at which a dead-letter file is closed and a new one started.
    #[serde(default = "default_dl_file")]
    pub max_file_size: ByteSize,
    /// Files kept; the oldest is deleted beyond this.
    #[serde(default = "default_dl_files")]
    pub max_files: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            max_payload: default_dl_payload(),
            max_file_size: default_dl_file(),
            max_files: default_dl_files(),
        }
    }
}

fn default_client_id() -> String {
    "millstream".into()
}
fn default_keep_alive() -> HumanDuration {
    HumanDuration::from_millis(30_000)
}
/// The MQTT protocol's largest remaining length (268,435,455 bytes) plus header room.
pub const MQTT_MAX_PACKET: ByteSize = ByteSize::mib(256);
fn default_max_packet_size() -> ByteSize {
    MQTT_MAX_PACKET
}
fn default_max_payload() -> ByteSize {
    ByteSize::mib(1)
}
fn default_buffer() -> ByteSize {
    ByteSize::mib(64)
}
fn default_probe_timeout() -> HumanDuration {
    HumanDuration::from_millis(5_000)
}
fn default_pending_bytes() -> ByteSize {
    ByteSize::mib(16)
}
fn default_pending_messages() -> usize {
    1_000
}
fn default_pending_age() -> HumanDuration {
    HumanDuration::from_millis(300_000)
}
fn default_tumbling() -> Vec<HumanDuration> {
    vec![
        HumanDuration::from_millis(10_000),
        HumanDuration::from_millis(60_000),
    ]
}
fn default_allowed_lateness() -> HumanDuration {
    HumanDuration::from_millis(2_000)
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_dl_payload() -> ByteSize {
    ByteSize::kib(64)
}
fn default_dl_file() -> ByteSize {
    ByteSize::mib(64)
}
fn default_dl_files() -> usize {
    16
}

impl SourceConfig {
    /// A source with every default, for `url`.
    pub fn for_url(url: BrokerUrl) -> SourceConfig {
        SourceConfig {
            url,
            client_id: default_client_id(),
            username: None,
            password: None,
            clean_session: false,
            keep_alive: default_keep_alive(),
            max_packet_size: default_max_packet_size(),
            max_payload: default_max_payload(),
            buffer: default_buffer(),
            tls: None,
            poll: None,
            probe_timeout: default_probe_timeout(),
            pending: PendingConfig::default(),
            limits: LimitsConfig::default(),
        }
    }

    /// The user name to log in with: the key, else the URL's.
    pub fn effective_username(&self) -> Option<&str> {
        self.username.as_deref().or(self.url.username.as_deref())
    }

    /// The password to log in with: the key, else the URL's.
    pub fn effective_password(&self) -> Option<&Secret> {
        self.password.as_ref().or(self.url.password.as_ref())
    }
}
