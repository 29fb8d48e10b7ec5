//! Scale-out (DESIGN.md §10) on the machine's Mosquitto: `millstream run` as clusters of two
//! and three processes (timely over loopback TCP, ingest split by a shared subscription) next
//! to a single process, all fed by the same 20 simulated machines at once. The clusters'
//! windows, latest values and fleet status equal the single process's; their shared lakes hold
//! every published sample exactly once; each device is probed by one process of a cluster.
//! And the failure story: a process killed mid-run stops its cluster; the restarted cluster
//! loses nothing and MySQL holds no duplicate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use millstream::sim::{self, SimOptions, device_id};

use crate::stores::*;
use crate::support::*;

/// One pipeline process: its config file and HTTP base URL.
struct Process {
    config: PathBuf,
    base: String,
    log: PathBuf,
}

/// Writes the config of each process of a cluster (or of a single process when `processes` is
/// 1): the same source client id (the share group), one lake shared by all, per-process state.
fn configs(
    dir: &Path,
    name: &str,
    processes: usize,
    client_id: &str,
    extra_sinks: &str,
) -> Vec<Process> {
    let url = broker_url();
    let d = dir.display();
    (0..processes)
        .map(|p| {
            let port = free_port();
            let config = dir.join(format!("{name}-{p}.toml"));
            std::fs::write(
                &config,
                format!(
                    r#"state_dir = "{d}/{name}-state-{p}"
[source]
url = "{url}"
client_id = "{client_id}"
[windows]
tumbling = ["1s", "10s"]
sliding = [{{ size = "10s", every = "1s" }}]
allowed_lateness = "1s"
idle_timeout = "1s"
[http]
listen = "127.0.0.1:{port}"
[[sinks]]
name = "lake"
kind = "parquet"
dir = "{d}/{name}-lake"
roll_age = "2s"
{extra_sinks}"#
                ),
            )
            .unwrap();
            Process {
                config,
                base: format!("http://127.0.0.1:{port}"),
                log: dir.join(format!("{name}-{p}.log")),
            }
        })
        .collect()
}

/// A hosts file of free loopback ports.
fn hosts_file(dir: &Path, name: &str, processes: usize) -> PathBuf {
    let path = dir.join(format!("{name}-hosts.txt"));
    let lines: Vec<String> = (0..processes)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn spawn(process: &Process, workers: usize, cluster: Option<(&Path, usize)>) -> Child {
    let mut cmd = millstream();
    cmd.args(["run", "--workers", &workers.to_string(), "-c"])
        .arg(&process.config);
    if let Some((hosts, index)) = cluster {
        cmd.arg("--hosts")
            .arg(hosts)
            .args(["--process", &index.to_string()]);
    }
    let log = std::fs::File::create(&process.log).unwrap();
    cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

fn logs(processes: &[&Process]) -> String {
    processes
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            format!(
                "--- {}:\n{}",
                p.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Samples per device in the live view of the process serving `base`.
async fn counted(base: &str, devices: &[String]) -> BTreeMap<String, u64> {
    let (_, list) = get_json(&format!("{base}/api/v1/devices")).await;
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|d| devices.contains(&d["device"].as_str().unwrap_or("").to_string()))
                .map(|d| {
                    (
                        d["device"].as_str().unwrap().to_string(),
                        d["samples"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {base}/metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883"]
async fn clusters_of_two_and_three_processes_equal_one_process() {
    let url = broker_url();
    require_broker(&url);
    millstream::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let single = configs(dir.path(), "single", 1, &unique("single"), "");
    let two = configs(dir.path(), "two", 2, &unique("two"), "");
    let three = configs(dir.path(), "three", 3, &unique("three"), "");
    let (two_hosts, three_hosts) = (
        hosts_file(dir.path(), "two", 2),
        hosts_file(dir.path(), "three", 3),
    );
    let mut children = Children(vec![spawn(&single[0], 1, None)]);
    children.extend((0..2).map(|p| spawn(&two[p], 2, Some((&two_hosts, p)))));
    children.extend((0..3).map(|p| spawn(&three[p], 1, Some((&three_hosts, p)))));
    let all: Vec<&Process> = single.iter().chain(&two).chain(&three).collect();
    for p in &all {
        wait_for_http(&p.base, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await; // subscribed

    // Process 1 of a cluster serves its health and metrics, and points elsewhere for the rest.
    let (code, health) = get_json(&format!("{}/api/v1/health", two[1].base)).await;
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    let (code, body) = get_json(&format!("{}/api/v1/fleet", two[1].base)).await;
    assert_eq!(code, 421, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("process 0"),
        "{body}"
    );

    let first = device_base(14);
    let devices: Vec<String> = (first..first + 20).map(device_id).collect();
    let mut options = SimOptions::new(url, 20);
    options.base = first;
    options.seed = 11;
    options.sample_interval_ms = Some(100);
    options.upload_interval_ms = Some(500);
    let sim = sim::start(options, None).unwrap();
    // Until a device's model is known its Sample messages wait, at every process that got
    // some; each process holds the cluster's time until it has released them, so windows are
    // compared from the first sample on (DESIGN.md §10).
    let compared_from = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for base in [&single[0].base, &two[0].base, &three[0].base] {
        for device in &devices {
            loop {
                let (_, items) = get_json(&format!("{base}/api/v1/devices/{device}/items")).await;
                let modelled = items
                    .as_array()
                    .is_some_and(|a| a.iter().any(|i| !i["name"].is_null()));
                if modelled {
                    break;
                }
                assert!(Instant::now() < deadline, "{base}: no model of {device}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = sim.stats.clone();
    sim.shutdown().await;
    let published = stats.samples.load(std::sync::atomic::Ordering::Relaxed);
    assert!(published > 20 * 20 * 40, "published {published}");

    // Every deployment counts every sample of every device.
    for base in [&single[0].base, &two[0].base, &three[0].base] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let total: u64 = counted(base, &devices).await.values().sum();
            if total == published {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base} counted {total} of {published}\n{}",
                logs(&all)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The last windows close by the idle timeout (a 10 s sliding window up to ~12 s after the
    // data stopped, at each deployment's own pace): compare until equal, or fail at a deadline.
    let deadline = Instant::now() + Duration::from_secs(40);
    for cluster in [&two, &three] {
        loop {
            match compare(&single[0].base, &cluster[0].base, &devices, compared_from).await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    let mut late = Vec::new();
                    for p in &all {
                        late.push(metric(&p.base, "millstream_late_samples_total").await);
                    }
                    panic!("{e}\nlate samples per process: {late:?}\n{}", logs(&all))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        // Not one sample was late anywhere: backlogs were absorbed in order.
        for p in cluster.iter().chain(&single) {
            let late = metric(&p.base, "millstream_late_samples_total").await;
            assert_eq!(late, 0.0, "late samples at {}\n{}", p.base, logs(&all));
        }
        // Control traffic once per device, not once per process: each device is probed by
        // its owner (another process asks only if no answer came within the probe timeout,
        // as one process asks again).
        let mut probes = 0.0;
        for p in cluster.iter() {
            probes += metric(&p.base, "millstream_probe_requests_total").await;
        }
        let single_probes = metric(&single[0].base, "millstream_probe_requests_total").await;
        assert!(
            probes >= 20.0 && probes < 20.0 * cluster.len() as f64,
            "probes sent by the cluster: {probes} (one process: {single_probes})"
        );
    }

    // A clean stop of every process: exit 0.
    // (A cluster's processes stop together: each one's dataflow ends when all inputs closed.)
    children.iter().for_each(interrupt);
    for child in children.iter_mut() {
        let code = tokio::task::block_in_place(|| wait_for_exit(child, Duration::from_secs(30)));
        assert_eq!(code, Some(0), "{}", logs(&all));
    }
    // After the clean stop every window was flushed: the lakes hold the same windows.
    let windows: Vec<BTreeMap<String, u64>> = ["single", "two", "three"]
        .iter()
        .map(|name| {
            windows_since(
                &dir.path().join(format!("{name}-lake")),
                &devices,
                compared_from,
            )
        })
        .collect();
    assert_eq!(windows[0].len(), 20, "{:?}", windows[0]);
    assert_eq!(windows[1], windows[0], "windows in the two-process lake");
    assert_eq!(windows[2], windows[0], "windows in the three-process lake");
    // Each lake holds every sample exactly once, from every process's writer.
    for name in ["single", "two", "three"] {
        let lake = dir.path().join(format!("{name}-lake"));
        let (visible, hidden) = lake_files(&lake);
        assert!(hidden.is_empty(), "{name}: hidden files left: {hidden:?}");
        let rows = lake_sample_rows(&lake, &devices);
        assert_eq!(rows, published, "{name}: samples in the lake");
        assert_eq!(
            keys_in_lake(&lake, &devices),
            published,
            "{name}: distinct (device, item, ts) in the lake"
        );
        if name != "single" {
            let writers: std::collections::BTreeSet<String> = visible
                .iter()
                .filter(|f| f.to_string_lossy().contains("/samples/"))
                .map(|f| writer_of(f))
                .collect();
            assert!(
                writers.len() >= 2,
                "{name}: files of one writer only: {writers:?}"
            );
        }
    }
}

/// Distinct (device, item, ts) among the lake's samples of `devices`, read with polars.
fn keys_in_lake(lake: &Path, devices: &[String]) -> u64 {
    use polars::prelude::*;
    let frame = scan_lake(lake, "samples")
        .select([col("device"), col("item"), col("ts").cast(DataType::Int64)])
        .collect()
        .unwrap();
    let device = frame.column("device").unwrap().str().unwrap().clone();
    let item = frame.column("item").unwrap().str().unwrap().clone();
    let ts = frame.column("ts").unwrap().i64().unwrap().clone();
    let keys: std::collections::HashSet<(String, String, i64)> = device
        .iter()
        .zip(item.iter())
        .zip(ts.iter())
        .filter_map(|((d, i), t)| Some((d?.to_string(), i?.to_string(), t?)))
        .filter(|(d, _, _)| devices.contains(d))
        .collect();
    keys.len() as u64
}

/// Windows per device in the lake starting at `from` or later, read with polars.
fn windows_since(lake: &Path, devices: &[String], from: i64) -> BTreeMap<String, u64> {
    use polars::prelude::*;
    let frame = scan_lake(lake, "windows")
        .select([col("device"), col("start").cast(DataType::Int64)])
        .collect()
        .unwrap();
    let device = frame.column("device").unwrap().str().unwrap().clone();
    let start = frame.column("start").unwrap().i64().unwrap().clone();
    let mut out = BTreeMap::new();
    for (d, s) in device.iter().zip(start.iter()) {
        if let (Some(d), Some(s)) = (d, s)
            && s >= from
            && devices.iter().any(|x| x == d)
        {
            *out.entry(d.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// The writer id in a lake file's name (`part-<first ts>-<writer>-<seq>.parquet`).
fn writer_of(file: &Path) -> String {
    let name = file.file_name().unwrap().to_string_lossy();
    name.split('-').nth(2).unwrap_or_default().to_string()
}

/// Whether the cluster serving `cluster` answers as the single process serving `single`:
/// samples per device, fleet status, latest values, and windows of two items and sizes.
async fn compare(single: &str, cluster: &str, devices: &[String], from: i64) -> Result<(), String> {
    let (want, got) = (
        counted(single, devices).await,
        counted(cluster, devices).await,
    );
    if want != got {
        return Err(format!("samples per device: {got:?} vs {want:?}"));
    }
    let (_, want) = get_json(&format!("{single}/api/v1/fleet")).await;
    let (_, got) = get_json(&format!("{cluster}/api/v1/fleet")).await;
    if want != got {
        return Err(format!("fleet status: {got} vs {want}"));
    }
    for device in devices {
        let query = format!("api/v1/latest?device={device}");
        let (_, want) = get_json(&format!("{single}/{query}")).await;
        let (_, got) = get_json(&format!("{cluster}/{query}")).await;
        if want["items"].as_object().map(|o| o.len()) != Some(20) || got["items"] != want["items"] {
            return Err(format!("latest values of {device}: {got} vs {want}"));
        }
        for (item, size) in [("0103502201", "1s"), ("0103512201", "10s")] {
            let query =
                format!("api/v1/windows?device={device}&item={item}&size={size}&from={from}");
            let (_, want) = get_json(&format!("{single}/{query}")).await;
            let (_, got) = get_json(&format!("{cluster}/{query}")).await;
            if want["windows"].as_array().is_none_or(|w| w.is_empty()) {
                return Err(format!("{device} {item} {size}: no windows: {want}"));
            }
            same_windows(&got["windows"], &want["windows"])
                .map_err(|e| format!("{device} {item} {size}: {e}"))?;
        }
    }
    Ok(())
}

/// Windows equal field by field, but mean and stddev within rounding: a key's samples reach it
/// in another order in a cluster than in one process, and sums round differently.
fn same_windows(got: &serde_json::Value, want: &serde_json::Value) -> Result<(), String> {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    if got.len() != want.len() {
        return Err(format!(
            "{} windows vs {}: {got:?}\n{want:?}",
            got.len(),
            want.len()
        ));
    }
    for (g, w) in got.iter().zip(want) {
        for (field, value) in w.as_object().unwrap() {
            let equal = match (field.as_str(), value.as_f64(), g[field].as_f64()) {
                ("mean" | "stddev", Some(w), Some(g)) => {
                    (w - g).abs() <= 1e-9 * w.abs().max(g.abs()).max(1.0)
                }
                _ => &g[field] == value,
            };
            if !equal {
                return Err(format!("{field}: {} vs {value}", g[field]));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto and MariaDB"]
async fn a_process_killed_mid_run_stops_the_cluster_and_the_restart_loses_nothing() {
    let url = broker_url();
    require_broker(&url);
    require(&mysql_server(), "MySQL/MariaDB server");
    millstream::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = database("cluster_kill");
    let client_id = unique("cluster-kill");
    let sql = format!(
        "[[sinks]]\nname = \"mysql\"\nkind = \"mysql\"\nurl = \"{}/{db}\"\nlinger = \"300ms\"\n",
        mysql_server()
    );
    let processes = configs(dir.path(), "kill", 2, &client_id, &sql);
    let hosts = hosts_file(dir.path(), "kill", 2);
    let all: Vec<&Process> = processes.iter().collect();
    let start = || {
        Children(
            (0..2)
                .map(|p| spawn(&processes[p], 1, Some((&hosts, p))))
                .collect(),
        )
    };
    let mut children = start();
    for p in &processes {
        wait_for_http(&p.base, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await; // subscribed

    let first = device_base(16);
    let devices: Vec<String> = (first..first + 5).map(device_id).collect();
    let mut options = SimOptions::new(url.clone(), 5);
    options.base = first;
    options.seed = 5;
    options.sample_interval_ms = Some(100);
    options.upload_interval_ms = Some(500);
    let sim = sim::start(options, None).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Process 1 dies; timely is fail-stop: process 0 notices and exits with an error.
    children[1].kill().unwrap(); // SIGKILL
    children[1].wait().unwrap();
    let code =
        tokio::task::block_in_place(|| wait_for_exit(&mut children[0], Duration::from_secs(20)));
    assert!(
        code.is_some_and(|c| c != 0),
        "process 0 exits with an error when its peer dies: {code:?}\n{}",
        logs(&all)
    );
    assert!(
        std::fs::read_to_string(&processes[0].log)
            .unwrap()
            .contains("restart every process of the cluster"),
        "{}",
        logs(&all)
    );
    // The supervisor restarts the cluster (the broker queues each session's share meanwhile).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut children = start();
    for p in &processes {
        wait_for_http(&p.base, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats.clone();
    sim.shutdown().await;
    let published = stats.samples.load(std::sync::atomic::Ordering::Relaxed);
    assert!(published > 5 * 20 * 40, "published {published}");

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let n = mysql_sample_count(&db, &devices).await;
        if n >= published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MySQL holds {n} of {published}\n{}",
            logs(&all)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Process 0 replayed its write-ahead log after the restart.
    let (_, status) = get_json(&format!("{}/api/v1/status", processes[0].base)).await;
    assert!(
        status["wal"]["recovered_samples"].as_u64().unwrap() > 0,
        "the restart replayed the log: {status}"
    );
    children.iter().for_each(interrupt);
    for child in children.iter_mut() {
        let code = tokio::task::block_in_place(|| wait_for_exit(child, Duration::from_secs(30)));
        assert_eq!(code, Some(0), "{}", logs(&all));
    }
    // Every sample exactly once: the primary key forbids a second row, the count shows all.
    assert_eq!(
        mysql_sample_count(&db, &devices).await,
        published,
        "{status}"
    );
    drop_mysql(&db).await;
    for p in 0..2 {
        forget_session(&format!("{client_id}-p{p}")).await;
    }
}
