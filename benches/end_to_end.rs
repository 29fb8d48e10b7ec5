//! End-to-end load benchmark through the machine's Mosquitto (not criterion: one long run).
//!
//! 1. Throughput: simulated machines publish as fast as they are asked to; the engine (SQLite and
//!    Parquet sinks, default windows) and a bare rumqttc subscriber on the same broker receive
//!    the same traffic. Prints what each sustained.
//! 2. Latency: 1,000 messages/s, each stamped with its publish time; the time from publish to
//!    the SSE `sample` event, p50 and p99.
//!
//! Run with `cargo bench --bench end_to_end`; settings come from the environment:
//! `E2E_DEVICES=50 E2E_SAMPLE=1ms E2E_UPLOAD=20ms E2E_SECONDS=20 E2E_SINKS=sqlite,parquet
//! E2E_WAL=on`. `E2E_SINKS` may also name `mysql` (the machine's MariaDB), `edge` (InfluxDB on
//! 8086) and `cloud` (InfluxDB on 8087 with `MILLSTREAM_TEST_INFLUX_CLOUD_USER`/`_PASSWORD`,
//! windows only); `E2E_WAL=off` measures without the write-ahead log.
//! Results: docs/benchmarks.md.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use millstream::config::{self, HumanDuration};
use millstream::engine::{Engine, EngineSettings};
use millstream::sim::{self, SimOptions};

#[path = "support/latency.rs"]
mod latency;
#[path = "support/load.rs"]
mod load;
use latency::latency;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    millstream::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let devices: u64 = env("E2E_DEVICES", 50);
    let sample: HumanDuration = env("E2E_SAMPLE", HumanDuration::from_millis(1));
    let upload: HumanDuration = env("E2E_UPLOAD", HumanDuration::from_millis(20));
    let seconds: u64 = env("E2E_SECONDS", 20);
    let sinks: String = env("E2E_SINKS", "sqlite,parquet".to_string());
    let wal = env("E2E_WAL", "on".to_string()) != "off";
    let tag = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    let mut text = format!(
        "state_dir = \"{d}/state\"\n[source]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"e2e-bench-{pid}\"\nclean_session = true\n\
         [windows]\ntumbling = [\"1s\", \"10s\", \"1m\"]\nsliding = [{{ size = \"1m\", every = \"10s\" }}]\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\n[wal]\nenabled = {wal}\n",
        pid = std::process::id()
    );
    text += &load::sink_sections(
        &sinks,
        &format!("{d}/b.db"),
        &format!("{d}/lake"),
        &format!("bench_e2e_{tag}"),
    );
    let config = config::load_str(&text, "bench.toml", |_| None).unwrap();
    let engine = Engine::start(config, EngineSettings::default())
        .await
        .unwrap();
    let base = format!("http://{}", engine.http_addr);

    // The bare subscriber.
    let (client, bare) = load::bare_subscriber(&format!("bare-{}", std::process::id())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "throughput: {devices} machines × 20 items every {sample}, uploaded every {upload}, {seconds} s, sinks: {sinks}, write-ahead log {}",
        if wal { "on" } else { "off" }
    );
    let mut sim_options = SimOptions::new("mqtt://127.0.0.1:1883".parse().unwrap(), devices);
    sim_options.base = 90_000;
    sim_options.sample_interval_ms = Some(sample.as_millis() as i64);
    sim_options.upload_interval_ms = Some(upload.as_millis() as i64);
    let sim = sim::start(sim_options, None).unwrap();
    let metrics = engine.state.metrics.clone();
    // Warm-up, then measure the steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = (
        Instant::now(),
        bare.load(Ordering::Relaxed),
        metrics.source.messages.load(Ordering::Relaxed),
        metrics.source.samples.load(Ordering::Relaxed),
        sim.stats.messages.load(Ordering::Relaxed),
        sim.stats.samples.load(Ordering::Relaxed),
    );
    let written = |engine: &Engine| -> Vec<(String, u64)> {
        engine
            .state
            .sinks
            .iter()
            .map(|s| (s.name.clone(), s.status().written))
            .collect()
    };
    let written_start = written(&engine);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let secs = start.0.elapsed().as_secs_f64();
    let bare_rate = (bare.load(Ordering::Relaxed) - start.1) as f64 / secs;
    let engine_rate = (metrics.source.messages.load(Ordering::Relaxed) - start.2) as f64 / secs;
    let engine_samples = (metrics.source.samples.load(Ordering::Relaxed) - start.3) as f64 / secs;
    let offered_messages = (sim.stats.messages.load(Ordering::Relaxed) - start.4) as f64 / secs;
    let offered_samples = (sim.stats.samples.load(Ordering::Relaxed) - start.5) as f64 / secs;
    let written_end = written(&engine);
    sim.shutdown().await;
    println!(
        "  offered by the simulator:   {offered_messages:>10.0} messages/s {offered_samples:>12.0} samples/s"
    );
    println!("  bare rumqttc subscriber:    {bare_rate:>10.0} messages/s");
    println!(
        "  millstream engine:          {engine_rate:>10.0} messages/s {engine_samples:>12.0} samples/s ({:.0} % of the bare subscriber)",
        100.0 * engine_rate / bare_rate.max(1.0)
    );
    for ((name, end), (_, start)) in written_end.iter().zip(&written_start) {
        println!(
            "  written by sink {name:<10}                    {:>12.0} rows/s",
            (end - start) as f64 / secs
        );
    }
    if let Some(wal) = &engine.state.wal {
        let w = wal.status();
        println!(
            "  write-ahead log: {} syncs, {} samples, {} MB on disk at the end",
            w.syncs,
            w.appended_samples,
            w.bytes >> 20
        );
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        .unwrap_or_default();
    println!(
        "  peak RSS of this process (engine, simulator, subscriber): {} MB",
        rss.parse::<u64>().unwrap_or(0) / 1024
    );
    // Let the engine catch up before the latency run.
    tokio::time::sleep(Duration::from_secs(5)).await;

    latency(&base, 1_000, "").await;
    let _ = client.disconnect().await;
    engine.shutdown().await.unwrap();
}
