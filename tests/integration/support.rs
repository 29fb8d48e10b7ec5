//! Helpers shared by the integration tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millstream::config::{BrokerUrl, SourceConfig};
use millstream::id::Id;
use millstream::metrics::Metrics;
use millstream::source::{self, SourceEvent, SourceHandle, SourceOptions};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use tokio::sync::mpsc;

/// The machine's broker.
pub fn broker_url() -> BrokerUrl {
    std::env::var("MILLSTREAM_TEST_MQTT")
        .unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into())
        .parse()
        .expect("MILLSTREAM_TEST_MQTT is a broker URL")
}

/// Fails the test (never skips it) when the broker is not reachable.
pub fn require_broker(url: &BrokerUrl) {
    let addr = format!("{}:{}", url.host, url.port);
    if std::net::TcpStream::connect_timeout(
        &addr.parse().expect("host:port"),
        Duration::from_secs(3),
    )
    .is_err()
    {
        panic!(
            "no MQTT broker at {addr}: start Mosquitto (scripts/test does) or set MILLSTREAM_TEST_MQTT"
        );
    }
}

/// A number unique to this test process and call, for ids.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A device-number range of `n` machines no other test (or test process) uses at the same time.
pub fn device_base(slot: u64) -> u64 {
    // 5-digit ids: 100 slots of 10 devices per test process, spread by process id. (Ranges of
    // 100 let slot 11 of one process be slot 1 of the next: nextest starts them with
    // consecutive ids, and two tests' machines mixed.)
    assert!(slot < 100, "slots of 10 devices, at most 100");
    10_000 + (u64::from(std::process::id()) % 89) * 1_000 + slot * 10
}

/// Starts an in-process source on `url` with `state_dir` for dead letters.
pub fn start_source(
    url: BrokerUrl,
    state_dir: &Path,
    configure: impl FnOnce(&mut SourceOptions),
) -> (SourceHandle, mpsc::Receiver<SourceEvent>, Arc<Metrics>) {
    let mut config = SourceConfig::for_url(url);
    config.client_id = unique("test-source");
    config.clean_session = true;
    let mut options = SourceOptions::new(config, state_dir);
    configure(&mut options);
    let metrics = Arc::new(Metrics::default());
    let (handle, events) = source::start(options, metrics.clone()).expect("source starts");
    (handle, events, metrics)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private Mosquitto with persistence, on a free loopback port, stopped on drop.
pub struct PrivateBroker {
    pub port: u16,
    /// Whether the broker keeps sessions and queued messages across restarts.
    pub persistence: bool,
    /// Further configuration lines for the listener (TLS, passwords).
    extra: String,
    /// Anonymous clients allowed.
    anonymous: bool,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start(dir: &Path, persistence: bool) -> PrivateBroker {
        PrivateBroker::with_config(dir, persistence, true, "")
    }

    /// A broker whose listener also gets `extra` lines (e.g. `cafile …`, `password_file …`).
    pub fn with_config(
        dir: &Path,
        persistence: bool,
        anonymous: bool,
        extra: &str,
    ) -> PrivateBroker {
        let port = free_port();
        let mut broker = PrivateBroker {
            port,
            persistence,
            extra: extra.to_string(),
            anonymous,
            dir: dir.to_path_buf(),
            child: None,
        };
        broker.launch();
        broker
    }

    pub fn url(&self) -> BrokerUrl {
        format!("mqtt://127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn launch(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{extra}\nallow_anonymous {anonymous}\nuser root\npersistence {persistence}\npersistence_location {dir}/\n\
                 max_queued_messages 100000\nlog_dest file {dir}/mosquitto.log\nlog_type all\n",
                port = self.port,
                extra = self.extra,
                anonymous = self.anonymous,
                persistence = self.persistence,
                dir = self.dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/test installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "private mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker gracefully (SIGTERM: it saves its persistence file) and waits.
    /// (`user root` above: as root, Mosquitto would otherwise drop to the `mosquitto` user and
    /// be unable to write its log and persistence file in the test's private directory.)
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- private mosquitto log (last 40 lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn mosquitto_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "mosquitto".into()
}

/// The `millstream` binary built for these tests.
pub fn millstream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_millstream"))
}

/// An observer that keeps everything the dataflow emits.
#[derive(Default)]
pub struct Collect {
    pub samples: std::sync::Mutex<Vec<millstream::sample::Sample>>,
    pub windows: std::sync::Mutex<Vec<millstream::window::WindowRow>>,
    pub late: std::sync::atomic::AtomicU64,
    pub views: millstream::live::views::LiveViews,
}

impl millstream::dataflow::Observer for Collect {
    fn on_samples(&self, samples: &Arc<[millstream::sample::Sample]>) {
        self.samples.lock().unwrap().extend_from_slice(samples);
    }
    fn on_windows(&self, windows: &[millstream::window::WindowRow]) {
        self.windows.lock().unwrap().extend_from_slice(windows);
    }
    fn on_late(&self, count: u64) {
        self.late
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    }
    fn on_latest(
        &self,
        changes: &[(
            millstream::live::views::ItemKey,
            millstream::live::views::LatestValue,
            isize,
        )],
    ) {
        self.views.apply_latest(changes);
    }
    fn on_fleet(&self, changes: &[(millstream::nclink::status::MachineState, i64, isize)]) {
        self.views.apply_fleet(changes);
    }
    fn on_samples_per_device(&self, changes: &[(Id, i64, isize)]) {
        self.views.apply_samples(changes);
    }
}

/// GET `url` and parse the JSON answer; the status comes too.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    millstream::tls::install_crypto_provider();
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Waits until `GET {base}/api/v1/health` answers.
pub async fn wait_for_http(base: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        millstream::tls::install_crypto_provider();
        if let Ok(r) = reqwest::get(format!("{base}/api/v1/health")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "no HTTP API at {base} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Child processes killed when dropped, so a failing test leaves none running (they would
/// load the machine for every test after it).
pub struct Children(pub Vec<Child>);

impl std::ops::Deref for Children {
    type Target = Vec<Child>;
    fn deref(&self) -> &Vec<Child> {
        &self.0
    }
}

impl std::ops::DerefMut for Children {
    fn deref_mut(&mut self) -> &mut Vec<Child> {
        &mut self.0
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends SIGINT to a child process.
pub fn interrupt(child: &Child) {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
}

/// Sends SIGINT to a child process and waits (up to `timeout`) for its exit code.
pub fn interrupt_and_wait(child: &mut Child, timeout: Duration) -> Option<i32> {
    interrupt(child);
    wait_for_exit(child, timeout)
}

/// Waits (up to `timeout`, then kills it and fails) for a child's exit code.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("process did not stop within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parquet files (complete ones) under `dir`, and hidden (incomplete) ones.
pub fn lake_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut visible = Vec::new();
    let mut hidden = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                hidden.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                visible.push(path);
            }
        }
    }
    (visible, hidden)
}

/// A lazy polars scan of the lake's `table` (`samples` or `windows`), Hive partitions as
/// columns.
pub fn scan_lake(lake: &Path, table: &str) -> polars::prelude::LazyFrame {
    use polars::prelude::*;
    let path = format!("{}/{table}/**/*.parquet", lake.display());
    let args = ScanArgsParquet {
        hive_options: polars::io::HiveOptions::new_enabled(),
        ..Default::default()
    };
    LazyFrame::scan_parquet(PlRefPath::new(path.as_str()), args)
        .unwrap_or_else(|e| panic!("polars cannot scan {path}: {e}"))
}

/// Rows of the lake's `table` (`samples` or `windows`) per device, read with polars (lazy scan,
/// Hive partitions).
pub fn polars_rows_per_device(lake: &Path, table: &str) -> std::collections::BTreeMap<String, u64> {
    use polars::prelude::*;
    let frame = scan_lake(lake, table)
        .group_by([col("device")])
        .agg([len().alias("rows")])
        .collect()
        .unwrap_or_else(|e| panic!("polars cannot read {table} in {}: {e}", lake.display()));
    let devices = frame.column("device").unwrap().str().unwrap().clone();
    let rows = frame
        .column("rows")
        .unwrap()
        .cast(&DataType::UInt64)
        .unwrap();
    let rows = rows.u64().unwrap().clone();
    devices
        .iter()
        .zip(rows.iter())
        .filter_map(|(d, n)| Some((d?.to_string(), n?)))
        .collect()
}

/// Sample rows of `devices` in the lake, read with polars.
pub fn lake_sample_rows(lake: &Path, devices: &[String]) -> u64 {
    let per_device = polars_rows_per_device(lake, "samples");
    devices
        .iter()
        .map(|d| per_device.get(d).copied().unwrap_or(0))
        .sum()
}

/// The SQLite database at `db`.
pub async fn sqlite_at(db: &Path) -> sqlx::SqlitePool {
    millstream::sinks::sqlite::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.display()))
}

/// `'a','b'` for an SQL `IN (…)` of test device ids.
pub fn sql_list(devices: &[String]) -> String {
    devices
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Ends the persistent session a test left on the shared broker (it would queue messages).
pub async fn forget_session(client_id: &str) {
    let url = broker_url();
    let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 10);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) =
            tokio::time::timeout(Duration::from_secs(1), events.poll()).await
        {
            break;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
}

/// Sample rows of `device` set aside in a sink's rejected files under `state` (an engine
/// takes every device on the shared broker: other tests' machines too).
pub fn rejected_rows(state: &Path, sink: &str, device: &str) -> Vec<serde_json::Value> {
    rejected(state, sink, device, &["samples"])
}

/// Rows of `device`, samples and windows, set aside in a sink's rejected files.
pub fn rejected_samples_and_windows(
    state: &Path,
    sink: &str,
    device: &str,
) -> Vec<serde_json::Value> {
    rejected(state, sink, device, &["samples", "windows"])
}

fn rejected(state: &Path, sink: &str, device: &str, kinds: &[&str]) -> Vec<serde_json::Value> {
    let Ok(files) =
        millstream::rotating::list(&state.join("rejected").join(sink), "rejected-", ".jsonl")
    else {
        return Vec::new();
    };
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .flat_map(|r| {
            kinds
                .iter()
                .flat_map(|k| r[*k].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .filter(|row| row["device"] == device)
        .collect()
}
