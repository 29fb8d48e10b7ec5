//! `millstream replay`: a live run recorded beside the engine, replayed into fresh stores, gives
//! the same windows and sink rows; replaying again adds nothing (SQLite and the lake); the lake
//! replays into windows of a new size that agree with SQL over the live samples; damaged input
//! is reported by file and position while the rest is replayed.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use millstream::sim::{self, SimOptions, device_id};

use crate::support::*;

const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/recordings/sim-3-machines-seed1.jsonl.zst"
);

/// A pipeline with SQLite and a lake under `dir/<name>`, windows `windows`; its HTTP port.
fn pipeline_on(dir: &Path, name: &str, url: &str, windows: &str) -> (std::path::PathBuf, u16) {
    let d = dir.display();
    let path = dir.join(format!("{name}.toml"));
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "{d}/{name}-state"
[source]
url = "{url}"
client_id = "{client}"
clean_session = true
[windows]
tumbling = [{windows}]
allowed_lateness = "1s"
[http]
listen = "127.0.0.1:{port}"
[[sinks]]
name = "sql"
kind = "sqlite"
url = "sqlite://{d}/{name}.db"
[[sinks]]
name = "lake"
kind = "parquet"
dir = "{d}/{name}-lake"
"#,
            client = unique(name),
        ),
    )
    .unwrap();
    (path, port)
}

fn pipeline(dir: &Path, name: &str, url: &str, windows: &str) -> std::path::PathBuf {
    pipeline_on(dir, name, url, windows).0
}

fn replay(args: &[&str]) -> Output {
    let output = millstream()
        .arg("replay")
        .args(args)
        .args(["--quiet", "--workers", "2"])
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Every row of a SQLite table for `devices`, as text, sorted.
async fn sql_rows(db: &Path, table: &str, devices: &[String]) -> Vec<String> {
    let pool = sqlite_at(db).await;
    let quoted = sql_list(devices);
    let columns = match table {
        "samples" => {
            "device || '|' || item || '|' || ts || '|' || ifnull(value, 'null') || '|' || ifnull(text, 'null')"
        }
        _ => {
            "device || '|' || item || '|' || size_ms || '|' || start || '|' || count || '|' || ifnull(min, 'n') || '|' || ifnull(max, 'n') || '|' || ifnull(mean, 'n') || '|' || ifnull(stddev, 'n') || '|' || ifnull(p50, 'n') || '|' || ifnull(p95, 'n') || '|' || ifnull(p99, 'n') || '|' || ifnull(first, 'n') || '|' || ifnull(last, 'n')"
        }
    };
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM {table} WHERE device IN ({quoted}) ORDER BY 1"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().map(|(r,)| r).collect()
}

/// Every row of a lake table (`samples` or `windows`) for `devices`, read with polars, as
/// text, sorted.
fn lake_rows(lake: &Path, table: &str, devices: &[String]) -> Vec<String> {
    let frame = scan_lake(lake, table)
        .collect()
        .unwrap_or_else(|e| panic!("polars cannot read {table} in {}: {e}", lake.display()));
    let columns = frame.columns();
    let mut rows: Vec<String> = (0..frame.height())
        .map(|i| {
            columns
                .iter()
                .map(|c| c.get(i).unwrap().to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .filter(|row| devices.iter().any(|d| row.contains(d.as_str())))
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_replay_of_a_recorded_live_run_gives_the_same_windows_and_rows() {
    let url = broker_url();
    require_broker(&url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let recording = d.join("live.jsonl.zst");
    let mut recorder = millstream()
        .args(["record", "--passive", "--broker", &url.to_string(), "-o"])
        .arg(&recording)
        .args(["--client-id", &unique("replay-rec")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (live, port) = pipeline_on(d, "live", &url.to_string(), r#""1s", "10s""#);
    let base = format!("http://127.0.0.1:{port}");
    let mut engine = millstream()
        .args(["run", "--workers", "2", "-c"])
        .arg(&live)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(700)).await; // both subscribed

    let first = device_base(11);
    let devices: Vec<String> = (first..first + 3).map(device_id).collect();
    let mut options = SimOptions::new(url.clone(), 3);
    options.base = first;
    options.seed = 11;
    options.sample_interval_ms = Some(50);
    options.upload_interval_ms = Some(400);
    let sim = sim::start(options, None).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = sim.stats.clone();
    sim.shutdown().await;
    let published = stats.samples.load(std::sync::atomic::Ordering::Relaxed);
    let mut received = 0;
    for _ in 0..100 {
        let (_, list) = get_json(&format!("{base}/api/v1/devices")).await;
        received = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| devices.iter().any(|d| x["device"] == d.as_str()))
            .map(|x| x["samples"].as_u64().unwrap())
            .sum::<u64>();
        if received == published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(received, published, "the live run received everything");
    let (engine_code, recorder_code) = tokio::task::spawn_blocking(move || {
        (
            interrupt_and_wait(&mut engine, Duration::from_secs(20)),
            interrupt_and_wait(&mut recorder, Duration::from_secs(20)),
        )
    })
    .await
    .unwrap();
    assert_eq!((engine_code, recorder_code), (Some(0), Some(0)));

    // Replayed into fresh stores: the same rows everywhere.
    let again = pipeline(d, "replayed", "mqtt://127.0.0.1:1", r#""1s", "10s""#);
    let output = replay(&[recording.to_str().unwrap(), "-c", again.to_str().unwrap()]);
    assert!(output.status.success());
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("replay done:"), "{summary}");
    let live_samples = sql_rows(&d.join("live.db"), "samples", &devices).await;
    assert_eq!(live_samples.len() as u64, published);
    assert_eq!(
        sql_rows(&d.join("replayed.db"), "samples", &devices).await,
        live_samples
    );
    let live_windows = sql_rows(&d.join("live.db"), "window_aggregates", &devices).await;
    assert!(
        live_windows.len() > 3 * 20 * 4,
        "{} windows",
        live_windows.len()
    );
    assert_eq!(
        sql_rows(&d.join("replayed.db"), "window_aggregates", &devices).await,
        live_windows
    );
    for table in ["samples", "windows"] {
        let live_lake = lake_rows(&d.join("live-lake"), table, &devices);
        assert!(!live_lake.is_empty());
        assert_eq!(
            lake_rows(&d.join("replayed-lake"), table, &devices),
            live_lake,
            "lake {table}"
        );
    }

    // Replaying into stores that hold the data adds no rows to them.
    let output = replay(&[recording.to_str().unwrap(), "-c", again.to_str().unwrap()]);
    assert!(output.status.success());
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("of them held already, not written again"),
        "{summary}"
    );
    assert_eq!(
        sql_rows(&d.join("replayed.db"), "samples", &devices).await,
        live_samples
    );
    assert_eq!(
        sql_rows(&d.join("replayed.db"), "window_aggregates", &devices).await,
        live_windows
    );
    // The lake skips the rows its partitions held: samples and windows as after one replay.
    for table in ["samples", "windows"] {
        assert_eq!(
            lake_rows(&d.join("replayed-lake"), table, &devices),
            lake_rows(&d.join("live-lake"), table, &devices),
            "lake {table} after a second replay"
        );
    }

    // The lake replayed into 5 s windows: each counts the live samples SQL finds in it.
    let lake_arg = format!("lake:{}", d.join("live-lake").display());
    let five = pipeline(d, "five", "mqtt://127.0.0.1:1", r#""5s""#);
    let output = replay(&[&lake_arg, "-c", five.to_str().unwrap()]);
    assert!(output.status.success());
    let pool = sqlite_at(&d.join("live.db")).await;
    let quoted = sql_list(&devices);
    let expected: Vec<(String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT device, item, \
                CAST(strftime('%s', ts) AS INTEGER) / 5 * 5000 AS start, count(*) \
         FROM samples WHERE device IN ({quoted}) AND value IS NOT NULL \
         GROUP BY device, item, start ORDER BY device, item, start"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let pool = sqlite_at(&d.join("five.db")).await;
    let got: Vec<(String, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT device, item, start, count FROM window_aggregates \
         WHERE device IN ({quoted}) AND size_ms = 5000 ORDER BY device, item, start"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    let got: Vec<(String, String, i64, i64)> = got
        .into_iter()
        .map(|(d, i, s, c)| (d, i, millstream::time::parse_sql(&s).unwrap(), c))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

/// Samples the committed recording gives in SQLite.
async fn replayed_samples(dir: &Path, name: &str, input: &str) -> (Output, usize) {
    let config = pipeline(dir, name, "mqtt://127.0.0.1:1", r#""1s""#);
    let output = replay(&[input, "-c", config.to_str().unwrap()]);
    let pool = sqlite_at(&dir.join(format!("{name}.db"))).await;
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM samples")
        .fetch_one(&pool)
        .await
        .unwrap();
    (output, n as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_input_is_reported_by_file_and_position_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (clean, samples) = replayed_samples(d, "clean", RECORDING).await;
    assert!(clean.status.success());
    assert!(samples > 1000, "{samples}");

    // Paced: the recording spans 29.8 s; at 20x it takes at least 1.49 s, and gives the same.
    // Run on a terminal (`script` gives it one): the progress line is rewritten in place.
    let config = pipeline(d, "paced", "mqtt://127.0.0.1:1", r#""1s""#);
    let started = std::time::Instant::now();
    let command = format!(
        "'{}' replay '{RECORDING}' -c '{}' --speed 20x --workers 2",
        env!("CARGO_BIN_EXE_millstream"),
        config.display()
    );
    let paced = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs the replay on a terminal");
    assert!(paced.status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(1_490),
        "{:?}",
        started.elapsed()
    );
    let terminal = String::from_utf8_lossy(&paced.stdout);
    let lines: Vec<&str> = terminal
        .split("\r\x1b[2K")
        .filter(|l| l.contains("ETA"))
        .collect();
    assert!(lines.len() >= 3, "progress lines: {terminal}");
    let last = lines.last().unwrap();
    assert!(last.contains('%') && last.contains("samples/s"), "{last}");
    assert!(terminal.contains("replay done"), "{terminal}");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM samples")
        .fetch_one(&sqlite_at(&d.join("paced.db")).await)
        .await
        .unwrap();
    assert_eq!(n as usize, samples);

    // A line that is not JSON in the middle, and a last line cut off mid-write.
    let text =
        String::from_utf8(zstd::decode_all(std::fs::File::open(RECORDING).unwrap()).unwrap())
            .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut damaged = lines[..100].join("\n");
    damaged.push_str("\n{\"ts\":17642, \"topic\": garbage\n");
    damaged.push_str(&lines[100..].join("\n"));
    damaged.push_str("\n{\"ts\":1764086400000,\"topic\":\"Sample/");
    let path = d.join("damaged.jsonl");
    std::fs::write(&path, &damaged).unwrap();
    let (output, got) = replayed_samples(d, "damaged", path.to_str().unwrap()).await;
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:101:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("ends mid-write after line"), "{stderr}");
    assert!(stderr.contains("2 input problems"), "{stderr}");
    assert_eq!(got, samples, "everything else was replayed");

    // A zstd stream damaged in the middle: what comes before is replayed, the damage named.
    let mut bytes = std::fs::read(RECORDING).unwrap();
    let middle = bytes.len() * 3 / 4;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let path = d.join("corrupt.jsonl.zst");
    std::fs::write(&path, &bytes).unwrap();
    let (output, got) = replayed_samples(d, "corrupt", path.to_str().unwrap()).await;
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}: ", path.display())) && stderr.contains("after line"),
        "{stderr}"
    );
    assert!(got > 0 && got < samples, "{got} of {samples}");

    // A file in the lake that is not Parquet: named, the other files replayed.
    let lake = d.join("clean-lake");
    let (files, _) = lake_files(&lake);
    let sample_file = files
        .iter()
        .find(|f| f.to_string_lossy().contains("/samples/"))
        .unwrap();
    let bogus = sample_file.parent().unwrap().join("part-1-bogus-1.parquet");
    std::fs::write(&bogus, b"this is not parquet").unwrap();
    let (output, got) = replayed_samples(d, "fromlake", &format!("lake:{}", lake.display())).await;
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}: not a readable Parquet file", bogus.display())),
        "{stderr}"
    );
    assert_eq!(got, samples);

    // Usage errors exit 2 with a reason.
    let output = replay(&[RECORDING, "-c", "/nonexistent.toml", "--speed", "fast"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected `max`"));
}
