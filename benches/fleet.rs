//! Fleet load test (DESIGN.md §10; not criterion: one long run per deployment). `millstream sim`
//! with 1,000 machines at the model's own intervals (NC-Link Sample channels, 100 ms sampling
//! uploaded every second, slow channels every 2 s) publishes through the machine's Mosquitto to
//! `millstream run` deployed as one process, then as a cluster of processes on this machine,
//! every one with its sinks on. For each: the samples/s the deployment sustained next to what a
//! bare subscriber received, RSS per process, and the latency from publish to the SSE event on
//! process 0 at 1,000 messages/s.
//!
//! Run with `cargo bench --bench fleet`; settings from the environment:
//! `FLEET_MACHINES=1000 FLEET_SECONDS=30 FLEET_DEPLOYMENTS=1x2,2x1` (processes × workers each)
//! `FLEET_SINKS=sqlite,parquet,mysql,edge` (`mysql`: the machine's MariaDB; `edge`: InfluxDB on
//! 8086, as `scripts/test` starts it). `FLEET_PERF=1` records a `perf` profile of the whole
//! machine for 10 s of the measurement (`perf report -i /tmp/fleet-perf-<deployment>.data
//! --sort comm`: the CPU of the simulator, the broker, the stores and millstream).
//! Results: docs/benchmarks.md.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "support/latency.rs"]
mod latency;
#[path = "support/load.rs"]
mod load;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    millstream::tls::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let machines: u64 = env("FLEET_MACHINES", 1_000);
    let seconds: u64 = env("FLEET_SECONDS", 30);
    let sinks: String = env("FLEET_SINKS", "sqlite,parquet,mysql,edge".to_string());
    let deployments: String = env("FLEET_DEPLOYMENTS", "1x2,2x1".to_string());
    for deployment in deployments.split(',') {
        let (processes, workers) = deployment
            .split_once('x')
            .and_then(|(p, w)| Some((p.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("FLEET_DEPLOYMENTS: {deployment} is not PROCESSESxWORKERS"));
        measure(machines, seconds, &sinks, processes, workers).await;
    }
}

/// Counters of one process's `/metrics`.
async fn counter(base: &str, name: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("{base}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn rss_mb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

async fn measure(machines: u64, seconds: u64, sinks: &str, processes: usize, workers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let tag = format!("{}_{processes}x{workers}", std::process::id());
    let hosts = dir.path().join("hosts.txt");
    let lines: Vec<String> = (0..processes)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    std::fs::write(&hosts, lines.join("\n") + "\n").unwrap();
    let mut bases = Vec::new();
    let mut children: Vec<Child> = Vec::new();
    for p in 0..processes {
        let port = free_port();
        let mut text = format!(
            "state_dir = \"{d}/state-{p}\"\n[source]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"fleet-{tag}\"\nclean_session = true\n\
             [windows]\ntumbling = [\"1s\", \"10s\", \"1m\"]\nsliding = [{{ size = \"1m\", every = \"10s\" }}]\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n"
        );
        text += &load::sink_sections(
            sinks,
            &format!("{d}/p{p}.db"),
            &format!("{d}/lake"),
            &format!("fleet_{tag}"),
        );
        let config = dir.path().join(format!("p{p}.toml"));
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_millstream"));
        cmd.args(["run", "--workers", &workers.to_string(), "-c"])
            .arg(&config);
        if processes > 1 {
            cmd.arg("--hosts")
                .arg(&hosts)
                .args(["--process", &p.to_string()]);
        }
        let log = std::fs::File::create(dir.path().join(format!("p{p}.log"))).unwrap();
        children.push(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap());
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    for base in &bases {
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(format!("{base}/api/v1/health")).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{base} did not start; logs in {d}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The bare subscriber: every Sample message, as the engine would receive it.
    let (client, bare) = load::bare_subscriber(&format!("fleet-bare-{tag}")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "fleet: {machines} machines at the model's intervals, {processes} process(es) × {workers} worker(s), sinks: {sinks}, {seconds} s"
    );
    let mut sim = Command::new(env!("CARGO_BIN_EXE_millstream"))
        .args([
            "sim",
            "--broker",
            "mqtt://127.0.0.1:1883",
            "-b",
            "60000",
            "-n",
        ])
        .arg(machines.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Warm-up: every machine registered, probed and uploading.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let totals = |bases: Vec<String>| async move {
        let mut messages = 0;
        let mut samples = 0;
        for base in &bases {
            messages += counter(base, "millstream_messages_total").await;
            samples += counter(base, "millstream_samples_total").await;
        }
        (messages, samples)
    };
    let perf = (env("FLEET_PERF", 0u8) == 1).then(|| {
        Command::new("perf")
            .args(["record", "-a", "-g", "-o"])
            .arg(dir.path().join(format!("perf-{processes}x{workers}.data")))
            .args(["--", "sleep", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let start = (
        Instant::now(),
        bare.load(Ordering::Relaxed),
        totals(bases.clone()).await,
    );
    // Latency under the load, on the side: 100 messages/s of a device of its own.
    let probe = {
        let base = bases[0].clone();
        tokio::spawn(async move { latency::latency(&base, 100, " during the fleet load").await })
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let _ = probe.await;
    let secs = start.0.elapsed().as_secs_f64();
    let end = (bare.load(Ordering::Relaxed), totals(bases.clone()).await);
    let bare_rate = (end.0 - start.1) as f64 / secs;
    let messages = (end.1.0 - start.2.0) as f64 / secs;
    let samples = (end.1.1 - start.2.1) as f64 / secs;
    println!("  bare rumqttc subscriber: {bare_rate:>10.0} messages/s");
    println!(
        "  millstream, all processes: {messages:>8.0} messages/s {samples:>10.0} samples/s ({:.0} % of the bare subscriber)",
        100.0 * messages / bare_rate.max(1.0)
    );
    for (p, child) in children.iter().enumerate() {
        println!(
            "  process {p}: RSS {} MB now, peak {} MB",
            rss_mb(child.id(), "VmRSS"),
            rss_mb(child.id(), "VmHWM")
        );
    }
    if let Some(mut perf) = perf {
        let _ = perf.wait();
        let keep = std::env::temp_dir().join(format!("fleet-perf-{processes}x{workers}.data"));
        let _ = std::fs::copy(
            dir.path().join(format!("perf-{processes}x{workers}.data")),
            &keep,
        );
        println!("  perf profile of the whole machine: {}", keep.display());
    }
    let _ = sim.kill();
    let _ = sim.wait();
    tokio::time::sleep(Duration::from_secs(5)).await;
    latency::latency(&bases[0], 1_000, " after the load").await;
    let _ = client.disconnect().await;
    for child in &children {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    for mut child in children {
        let _ = child.wait();
    }
    drop_stores(sinks, &tag).await;
}

/// The bench's MySQL database and InfluxDB database.
async fn drop_stores(sinks: &str, tag: &str) {
    if sinks.contains("mysql") {
        let _ = Command::new("mysql")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS ms_fleet_{tag}"))
            .status();
    }
    if sinks.contains("edge") {
        let _ = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:8086/query?q=DROP%20DATABASE%20fleet_{tag}"
            ))
            .send()
            .await;
    }
}
