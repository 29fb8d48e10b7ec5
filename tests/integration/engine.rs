//! End to end on the machine's Mosquitto: `millstream run` with SQLite and Parquet sinks, fed by
//! simulated machines with a fixed seed. The HTTP API answers with the machines' true values,
//! SSE delivers sample and window events, and after a clean stop SQLite and the lake (read with
//! polars, DuckDB and pyarrow) hold exactly the samples the simulator published.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use millstream::sim::machine::Machine;
use millstream::sim::{self, SimOptions, device_id};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883, duckdb and pyarrow (scripts/test)"]
async fn run_and_sim_end_to_end() {
    let url = broker_url();
    require_broker(&url);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("pipeline.toml");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "{url}"
client_id = "{client}"
clean_session = true
[windows]
tumbling = ["1s", "10s"]
allowed_lateness = "500ms"
idle_timeout = "300ms"
[http]
listen = "127.0.0.1:{port}"
[[sinks]]
name = "sql"
kind = "sqlite"
url = "sqlite://{d}/m.db"
[[sinks]]
name = "lake"
kind = "parquet"
dir = "{d}/lake"
roll_age = "2s"
"#,
            client = unique("e2e")
        ),
    )
    .unwrap();
    // Killed if the test fails before it stops the engine itself.
    let mut engine = Children(vec![
        millstream()
            .args(["run", "--workers", "2", "-c"])
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // subscribed

    let first = device_base(3);
    let devices: Vec<String> = (first..first + 3).map(device_id).collect();
    // Live events of the first machine.
    millstream::tls::install_crypto_provider();
    let events = reqwest::get(format!("{base}/api/v1/events?device={}", devices[0]))
        .await
        .unwrap();
    let mut stream = events.bytes_stream();
    let sse = tokio::spawn(async move {
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !(text.contains("event: sample") && text.contains("event: window")) {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
        text
    });

    let mut options = SimOptions::new(url, 3);
    options.base = first;
    options.seed = 7;
    options.sample_interval_ms = Some(100);
    options.upload_interval_ms = Some(500);
    let sim = sim::start(options, None).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let epoch = sim.epoch_ms;
    let stats = sim.stats.clone();
    sim.shutdown().await;
    let published = stats.samples.load(std::sync::atomic::Ordering::Relaxed);
    assert!(published > 3 * 20 * 30, "published {published}");

    // Everything published arrives.
    let mut received = 0;
    for _ in 0..100 {
        let (_, list) = get_json(&format!("{base}/api/v1/devices")).await;
        received = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| devices.contains(&d["device"].as_str().unwrap().to_string()))
            .map(|d| d["samples"].as_u64().unwrap())
            .sum::<u64>();
        if received == published {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if received != published {
        let (_, status) = get_json(&format!("{base}/api/v1/status")).await;
        panic!(
            "the live view counted {received} samples of {published} published; status: {status:#}"
        );
    }

    // Latest values are the machines' true values at their timestamps.
    let mut machines: HashMap<String, Machine> = (first..first + 3)
        .map(|n| (device_id(n), Machine::new(7, n)))
        .collect();
    let positions = ["0103502201", "0103512201", "0103522201"];
    for device in &devices {
        let (status, latest) = get_json(&format!("{base}/api/v1/latest?device={device}")).await;
        assert_eq!(status, 200);
        let items = latest["items"].as_object().unwrap();
        assert_eq!(items.len(), 20, "{device}: {latest}");
        for (axis, item) in positions.iter().enumerate() {
            let ts = items[*item]["ts"].as_i64().unwrap();
            let truth = machines.get_mut(device).unwrap().at(ts - epoch);
            assert_eq!(
                items[*item]["value"].as_f64(),
                Some(truth.act_pos[axis]),
                "{device} {item}"
            );
        }
        let status_ts = items["010302"]["ts"].as_i64().unwrap();
        let state = machines
            .get_mut(device)
            .unwrap()
            .at(status_ts - epoch)
            .state;
        let (_, list) = get_json(&format!("{base}/api/v1/devices")).await;
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == device.as_str())
            .unwrap()
            .clone();
        assert_eq!(listed["status"], serde_json::json!(state), "{device}");
    }

    // A closed 1 s window equals the brute-force aggregate of the machine's values.
    let item = "0103502201";
    let (status, windows) = get_json(&format!(
        "{base}/api/v1/windows?device={}&item={item}&size=1s",
        devices[0]
    ))
    .await;
    assert_eq!(status, 200);
    let rows = windows["windows"].as_array().unwrap();
    assert!(rows.len() >= 3, "{windows}");
    let full = rows
        .iter()
        .find(|w| w["count"] == 10)
        .expect("a full window");
    let start = full["start"].as_i64().unwrap();
    let machine = machines.get_mut(&devices[0]).unwrap();
    let values: Vec<f64> = (0..10)
        .map(|k| machine.at(start + k * 100 - epoch).act_pos[0])
        .collect();
    let mean = values.iter().sum::<f64>() / 10.0;
    assert_eq!(
        full["min"].as_f64(),
        values.iter().copied().reduce(f64::min)
    );
    assert_eq!(
        full["max"].as_f64(),
        values.iter().copied().reduce(f64::max)
    );
    assert_eq!(full["first"].as_f64(), Some(values[0]));
    assert_eq!(full["last"].as_f64(), Some(values[9]));
    assert!((full["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let (_, fleet) = get_json(&format!("{base}/api/v1/fleet")).await;
    let total: i64 = ["running", "free", "holding", "unknown"]
        .iter()
        .map(|k| fleet[*k].as_i64().unwrap())
        .sum();
    assert!(total >= 3, "{fleet}");

    let sse = sse.await.unwrap();
    assert!(sse.contains("event: sample"), "no sample event: {sse:.300}");
    assert!(sse.contains("event: window"), "no window event: {sse:.300}");
    assert!(sse.contains(&devices[0]));

    // A clean stop: exit 0, every file complete.
    let code = tokio::task::spawn_blocking(move || {
        interrupt_and_wait(&mut engine[0], Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));

    // SQLite holds exactly what was published, with the machines' values.
    let pool = millstream::sinks::sqlite::open(&format!("sqlite://{d}/m.db"))
        .await
        .unwrap();
    let quoted = devices
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",");
    let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM samples WHERE device IN ({quoted})"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows as u64, published, "rows in SQLite");
    let checks: Vec<(String, String, Option<f64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT device, ts, value FROM samples WHERE device IN ({quoted}) AND item = '0103512201' ORDER BY ts LIMIT 50"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    for (device, ts, value) in checks {
        let ts = millstream::time::parse_sql(&ts).unwrap();
        assert_eq!(
            value,
            Some(machines.get_mut(&device).unwrap().at(ts - epoch).act_pos[1])
        );
    }
    let (windows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM window_aggregates WHERE device IN ({quoted})"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(windows > 0);

    // The lake: polars (Rust), then DuckDB and pyarrow (Python).
    let lake = dir.path().join("lake");
    let (_, hidden) = lake_files(&lake);
    assert!(hidden.is_empty(), "incomplete files left: {hidden:?}");
    let in_lake = lake_sample_rows(&lake, &devices);
    assert_eq!(in_lake, published, "rows in the lake (polars)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-lake.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&lake)
        .args([
            "--devices",
            &devices.join(","),
            "--samples",
            &published.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
