//! `kill -9` in the middle of a stream: after a restart, every published sample is in MySQL,
//! InfluxDB and the lake, MySQL has no duplicate rows, and the windows recomputed from the
//! write-ahead log are whole.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use millstream::sim::{self, SimOptions, device_id};
use sqlx::Row;

use crate::stores::*;
use crate::support::*;

fn start(config: &std::path::Path) -> Child {
    millstream()
        .args(["run", "--workers", "2", "-c"])
        .arg(config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto, MariaDB and influxd"]
async fn kill_9_mid_stream_loses_nothing_and_duplicates_nothing() {
    let url = broker_url();
    require_broker(&url);
    require(&mysql_server(), "MySQL/MariaDB server");
    let edge = influx_edge();
    require(&edge, "InfluxDB edge");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("crash");
    let (mysql_db, edge_db) = (database("crash_sql"), database("crash_edge"));
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "{url}"
client_id = "{client_id}"
[windows]
tumbling = ["1s"]
allowed_lateness = "500ms"
idle_timeout = "300ms"
[http]
listen = "127.0.0.1:{port}"
[[sinks]]
name = "mysql"
kind = "mysql"
url = "{mysql}/{mysql_db}"
linger = "300ms"
[[sinks]]
name = "edge"
kind = "influx"
url = "{edge}"
database = "{edge_db}"
linger = "300ms"
[[sinks]]
name = "lake"
kind = "parquet"
dir = "{d}/lake"
"#,
            mysql = mysql_server()
        ),
    )
    .unwrap();

    // Killed if the test fails before it stops the engine itself.
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // subscribed

    let first = device_base(7);
    let devices: Vec<String> = (first..first + 3).map(device_id).collect();
    let mut options = SimOptions::new(url.clone(), 3);
    options.base = first;
    options.seed = 21;
    options.sample_interval_ms = Some(100);
    options.upload_interval_ms = Some(500);
    let sim = sim::start(options, None).unwrap();

    // Mid-stream: acknowledged samples sit in the log, the lake's files are still hidden.
    tokio::time::sleep(Duration::from_secs(4)).await;
    engine[0].kill().unwrap(); // SIGKILL
    engine[0].wait().unwrap();
    // The killed writer's incomplete files stay hidden (deleted once stale at a later start).
    let (_, left_by_crash) = lake_files(&dir.path().join("lake"));
    tokio::time::sleep(Duration::from_secs(2)).await; // the broker keeps QoS 1 messages meanwhile
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = sim.stats.clone();
    sim.shutdown().await;
    let published = stats.samples.load(std::sync::atomic::Ordering::Relaxed);

    let (_, status) = get_json(&format!("{base}/api/v1/status")).await;
    assert!(
        status["wal"]["recovered_samples"].as_u64().unwrap() > 0,
        "the restart replayed the log: {status}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = mysql_sample_count(&mysql_db, &devices).await;
        if n >= published {
            break;
        }
        assert!(Instant::now() < deadline, "MySQL holds {n} of {published}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(30)));
    assert_eq!(code, Some(0));

    // MySQL: every sample exactly once (the primary key forbids more; the count shows all).
    assert_eq!(mysql_sample_count(&mysql_db, &devices).await, published);
    // InfluxDB: every sample.
    let points = influx_query(&edge, None, &edge_db, "SELECT * FROM samples")
        .await
        .into_iter()
        .filter(|r| devices.iter().any(|d| r["device"] == d.as_str()))
        .map(|r| {
            (
                r["device"].as_str().unwrap().to_string(),
                r["item"].as_str().unwrap().to_string(),
                r["time"].as_i64().unwrap(),
            )
        })
        .collect::<BTreeSet<_>>();
    assert_eq!(points.len() as u64, published, "points at the edge");
    // The lake: every sample (a sample replayed after the crash may be there twice: the lake
    // is append-only; readers deduplicate on (device, item, ts)).
    let lake = dir.path().join("lake");
    let (_, hidden) = lake_files(&lake);
    assert_eq!(
        hidden, left_by_crash,
        "the restarted writer completed all its files"
    );
    assert!(!left_by_crash.is_empty(), "the crash left incomplete files");
    let in_lake = lake_sample_rows(&lake, &devices);
    assert!(in_lake >= published, "lake rows {in_lake} < {published}");

    // Windows recomputed after the restart are whole: each 1 s window counts exactly the
    // numeric samples MySQL holds in it.
    let pool = mysql(&mysql_db).await;
    let mut counted: BTreeMap<(String, String, i64), i64> = BTreeMap::new();
    for row in sqlx::query(
        "SELECT device, item, CAST(UNIX_TIMESTAMP(CONVERT_TZ(ts, '+00:00', @@session.time_zone)) * 1000 AS SIGNED) FROM samples WHERE value IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        let ts: i64 = row.get(2);
        *counted
            .entry((row.get(0), row.get(1), ts.div_euclid(1000) * 1000))
            .or_default() += 1;
    }
    let windows = sqlx::query(
        "SELECT device, item, CAST(UNIX_TIMESTAMP(CONVERT_TZ(start, '+00:00', @@session.time_zone)) * 1000 AS SIGNED), count FROM window_aggregates",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!windows.is_empty());
    for row in &windows {
        let key: (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        let count: i64 = row.get(3);
        assert_eq!(counted.get(&key).copied(), Some(count), "window {key:?}");
    }
    pool.close().await;
    drop_mysql(&mysql_db).await;
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto"]
async fn checkpoints_delete_the_log_once_written_and_a_clean_stop_leaves_none() {
    use millstream::engine::{Engine, EngineSettings};
    let url = broker_url();
    require_broker(&url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        r#"state_dir = "{d}/state"
[source]
url = "{url}"
client_id = "{client}"
clean_session = true
[windows]
tumbling = ["1s"]
allowed_lateness = "200ms"
idle_timeout = "200ms"
[wal]
checkpoint = "1s"
[[sinks]]
name = "sql"
kind = "sqlite"
url = "sqlite://{d}/m.db"
linger = "100ms"
[[sinks]]
name = "lake"
kind = "parquet"
dir = "{d}/lake"
"#,
        client = unique("checkpoint")
    );
    let config = millstream::config::load_str(&text, "pipeline.toml", |_| None).unwrap();
    let settings = EngineSettings {
        workers: 2,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..EngineSettings::default()
    };
    let engine = Engine::start(config.clone(), settings.clone())
        .await
        .unwrap();
    let wal = engine.state.wal.clone().expect("the log is on by default");
    let first = device_base(8);
    let mut options = SimOptions::new(url.clone(), 3);
    options.base = first;
    options.seed = 5;
    options.sample_interval_ms = Some(100);
    options.upload_interval_ms = Some(200);
    let sim = sim::start(options, None).unwrap();
    // The horizon here is 1 s + 200 ms + 200 ms + 1 s: segments go a few seconds after a cut.
    wait_until(
        Duration::from_secs(30),
        "a checkpoint deleted segments",
        || wal.status().checkpoints >= 2,
    )
    .await;
    let during = wal.status();
    assert!(
        during.syncs > 0 && during.appended_samples > 0,
        "{during:?}"
    );
    let on_disk = millstream::wal::segment::list(&dir.path().join("state/wal")).unwrap();
    assert!(
        on_disk.first().is_none_or(|(n, _)| *n > 0),
        "the first segments are gone: {on_disk:?}"
    );
    sim.shutdown().await;
    engine.shutdown().await.unwrap();
    assert!(
        millstream::wal::segment::list(&dir.path().join("state/wal"))
            .unwrap()
            .is_empty(),
        "a clean stop leaves nothing to replay"
    );
    // The next start has nothing to replay.
    let engine = Engine::start(config, settings).await.unwrap();
    assert_eq!(
        engine
            .state
            .wal
            .as_ref()
            .unwrap()
            .status()
            .recovered_samples,
        0
    );
    engine.shutdown().await.unwrap();
}
