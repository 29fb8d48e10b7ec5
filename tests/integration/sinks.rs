//! The MySQL and InfluxDB sinks against the real servers: exact rows, idempotence, awkward
//! names, refused credentials, and a dead store with a tiny spool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use millstream::config::{ByteSize, InfluxApi, Secret, SinkConfig, StoreConfig};
use millstream::id::Id;
use millstream::sample::Sample;
use millstream::sinks::writer::{Batch, BatchWriter};
use millstream::sinks::{SinkMessage, Sinks};
use millstream::window::WindowRow;

use crate::stores::*;
use crate::support::*;

fn window(device: &str, item: &str, start: i64, count: u64, mean: f64) -> WindowRow {
    WindowRow {
        device: device.into(),
        item: item.into(),
        size_ms: 10_000,
        start,
        end: start + 10_000,
        count,
        min: mean - 1.0,
        max: mean + 1.0,
        mean,
        stddev: (count > 1).then_some(0.5),
        p50: mean,
        p95: mean + 0.5,
        p99: mean + 0.9,
        first: mean - 1.0,
        last: mean + 1.0,
    }
}

#[tokio::test]
#[ignore = "needs MariaDB/MySQL"]
async fn mysql_rows_are_exact_and_writes_idempotent() {
    let db = database("exact");
    let pool = mysql(&db).await;
    let config = SinkConfig::mysql("mysql", &format!("{}/{db}", mysql_server())).unwrap();
    let StoreConfig::Mysql(mysql_config) = &config.store else {
        unreachable!()
    };
    let options = millstream::sinks::mysql::connect_options(mysql_config).unwrap();
    let mut writer = millstream::sinks::mysql::MySqlWriter::new(options);

    let d: Id = Id::from("机床-A 1");
    let long: String = "é".repeat(1500);
    let mut text = Sample::number(d.clone(), "status".into(), 1_700_000_000_123, 0.0);
    text.value = None;
    text.text = Some("RUNNING \"1\"".into());
    let mut both_null = Sample::number(d.clone(), "empty".into(), 1_700_000_000_124, 0.0);
    both_null.value = None;
    let mut long_text = Sample::number(d.clone(), "program".into(), 1_700_000_000_125, 0.0);
    long_text.value = None;
    long_text.text = Some(long.clone().into());
    let batch = Batch {
        samples: vec![
            Sample::number(d.clone(), "x".into(), 1_700_000_000_001, -12.25),
            Sample::number(d.clone(), "x".into(), 1_700_000_000_002, 1e-300),
            text,
            both_null,
            long_text,
        ],
        windows: vec![window(&d, "x", 1_700_000_000_000, 2, 3.5)],
    };
    writer.write(&batch).await.unwrap();
    // Re-delivered: no second row; a recomputed window replaces its row.
    let mut again = batch.clone();
    again.windows = vec![window(&d, "x", 1_700_000_000_000, 7, 4.5)];
    writer.write(&again).await.unwrap();
    writer.write(&again).await.unwrap();

    type Row = (String, String, String, Option<f64>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT device, item, DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f'), value, text \
         FROM samples ORDER BY ts",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    let expect = [
        ("x", "2023-11-14 22:13:20.001000", Some(-12.25), None),
        ("x", "2023-11-14 22:13:20.002000", Some(1e-300), None),
        (
            "status",
            "2023-11-14 22:13:20.123000",
            None,
            Some("RUNNING \"1\"".to_string()),
        ),
        ("empty", "2023-11-14 22:13:20.124000", None, None),
        (
            "program",
            "2023-11-14 22:13:20.125000",
            None,
            Some("é".repeat(1024)),
        ),
    ];
    for (row, (item, ts, value, text)) in rows.iter().zip(expect) {
        assert_eq!(row.0, "机床-A 1");
        assert_eq!(row.1, item);
        assert_eq!(row.2, ts, "UTC, to the millisecond");
        assert_eq!(row.3, value);
        assert_eq!(row.4, text);
    }
    let windows: Vec<(i64, i64, Option<f64>, Option<f64>)> =
        sqlx::query_as("SELECT size_ms, count, mean, stddev FROM window_aggregates")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(windows, vec![(10_000, 7, Some(4.5), Some(0.5))]);
    pool.close().await;
    drop_mysql(&db).await;
}

/// An InfluxDB 1.x writer without credentials into `db` (created on its first write).
fn influx_v1_writer(base: &str, db: &str) -> millstream::sinks::influx::InfluxWriter {
    millstream::sinks::influx::InfluxWriter::new(
        base,
        millstream::sinks::influx::Api::V1 {
            database: db.to_string(),
            username: None,
            password: None,
        },
    )
    .unwrap()
}

#[tokio::test]
#[ignore = "needs influxd"]
async fn influx_round_trips_awkward_names_and_values() {
    let base = influx_edge();
    require(&base, "InfluxDB edge");
    let db = database("awkward");
    let mut writer = influx_v1_writer(&base, &db);
    let devices = ["机床 A,1=x", "quote\"d 'dev'", "back\\slash", "line\nbreak"];
    let mut batch = Batch::default();
    for (n, device) in devices.iter().enumerate() {
        let d: Id = Id::from(*device);
        let ts = 1_700_000_000_000 + n as i64;
        batch.samples.push(Sample::number(
            d.clone(),
            "pos x".into(),
            ts,
            n as f64 - 0.5,
        ));
        let mut s = Sample::number(d.clone(), "a=b,c".into(), ts, 0.0);
        s.value = None;
        s.text = Some(format!("say \"hi\" \\ {device}\nnext line ✓").into());
        batch.samples.push(s);
        batch
            .windows
            .push(window(&d, "pos x", 1_700_000_000_000, 3, n as f64));
    }
    writer.write(&batch).await.unwrap();
    writer.write(&batch).await.unwrap(); // same series and times: no new points

    let rows = influx_query(&base, None, &db, "SELECT * FROM samples").await;
    assert_eq!(rows.len(), 8, "{rows:?}");
    for s in &batch.samples {
        // A line break cannot travel in a tag: it arrives as a space (documented).
        let device = s.device.replace('\n', " ");
        let row = rows
            .iter()
            .find(|r| r["device"] == device.as_str() && r["item"] == *s.item)
            .unwrap_or_else(|| panic!("no point for {device:?} {:?}: {rows:?}", s.item));
        assert_eq!(row["time"].as_i64(), Some(s.ts));
        match (&s.value, &s.text) {
            (Some(v), _) => assert_eq!(row["value"].as_f64(), Some(*v)),
            // Nor in a string field: it arrives as the two characters `\n` (documented).
            (None, Some(t)) => assert_eq!(row["text"].as_str(), Some(&*t.replace('\n', "\\n"))),
            _ => unreachable!(),
        }
    }
    let windows = influx_query(&base, None, &db, "SELECT * FROM windows").await;
    assert_eq!(windows.len(), 4);
    for w in &windows {
        assert_eq!(w["size"], "10s");
        assert_eq!(w["count"].as_i64(), Some(3));
        assert_eq!(w["time"].as_i64(), Some(1_700_000_000_000));
        assert!(w.get("stddev").is_some());
    }
}

#[tokio::test]
#[ignore = "needs influxd"]
async fn a_database_dropped_while_running_is_created_again_and_the_batch_retried() {
    use millstream::sinks::writer::WriteError;
    let base = influx_edge();
    require(&base, "InfluxDB edge");
    let db = database("dropped");
    let mut writer = influx_v1_writer(&base, &db);
    let batch = |from: i64| {
        let SinkMessage::Samples(rows) = samples("D", from, 10) else {
            unreachable!()
        };
        Batch {
            samples: rows.to_vec(),
            windows: Vec::new(),
        }
    };
    writer.write(&batch(1_700_000_000_000)).await.unwrap();
    influx_query(&base, None, &db, &format!("DROP DATABASE \"{db}\"")).await;
    // The write after the drop is a retry, not a refusal (a refusal would set the rows aside).
    let second = batch(1_700_000_001_000);
    match writer.write(&second).await {
        Err(WriteError::Transient { message, .. }) => {
            assert!(message.contains("database not found"), "{message}")
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    writer.write(&second).await.unwrap();
    let rows = influx_query(&base, None, &db, "SELECT * FROM samples").await;
    assert_eq!(
        rows.len(),
        10,
        "the retried batch, in the database made again"
    );
}

/// Logs of this test process, captured (nextest runs each test in its own process).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let buffer = Buffer(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    logs
}

fn samples(device: &str, from: i64, n: i64) -> SinkMessage {
    let d: Id = Id::from(device);
    let i: Id = Id::from("x");
    SinkMessage::Samples(
        (from..from + n)
            .map(|ts| Sample::number(d.clone(), i.clone(), ts, ts as f64))
            .collect::<Vec<_>>()
            .into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs influxd"]
async fn refused_credentials_are_a_clear_permanent_error_not_a_retry_storm() {
    let logs = capture_logs();
    let (base, user, password) = influx_cloud();
    require(&base, "InfluxDB cloud");
    let db = database("auth");
    let state = tempfile::tempdir().unwrap();
    let wrong = format!("{password}-but-wrong");
    let v1 = |password: &str| InfluxApi::V1 {
        database: db.clone(),
        username: Some(user.clone()),
        password: Some(Secret::new(password)),
    };
    let linger = Some("50ms".parse().unwrap());
    let bad = SinkConfig::influx("cloud", &base, v1(&wrong))
        .unwrap()
        .with_batching(None, linger);
    let good = SinkConfig::influx("cloud-ok", &base, v1(&password))
        .unwrap()
        .with_batching(None, linger);
    let sinks = Sinks::start(&[bad, good], state.path()).await.unwrap();
    for k in 0..3 {
        for handle in &sinks.handles {
            handle.send(samples("D", k * 100, 100));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let monitors: Vec<_> = sinks.handles.iter().map(|h| h.monitor()).collect();
    sinks.finish().await;
    let refused = monitors[0].status();
    assert_eq!(refused.failed, 300, "{refused:?}");
    assert_eq!(refused.written, 0);
    assert_eq!(refused.retries, 0, "a refused login is not retried");
    let error = refused.last_error.clone().unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(error.contains("authorization failed"), "{error}");
    // Kept, not lost: the refused rows are in the sink's rejected file.
    let rejected = std::fs::read_dir(state.path().join("rejected/cloud")).unwrap();
    let text: String = rejected
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    // Every refused row is kept (the writer may have merged sends into fewer batches).
    let kept: usize = text
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap();
            record["samples"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(kept, 300, "{text:.300}");
    assert!(text.contains("authorization failed"));
    // The right password writes.
    let accepted = monitors[1].status();
    assert_eq!(
        (accepted.written, accepted.failed),
        (300, 0),
        "{accepted:?}"
    );
    let rows = influx_query(
        &base,
        Some((&user, &password)),
        &db,
        "SELECT count(value) FROM samples",
    )
    .await;
    assert_eq!(rows[0]["count"].as_i64(), Some(300));
    // The password shows nowhere.
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    for shown in [format!("{refused:?}"), format!("{accepted:?}"), logs, text] {
        assert!(
            !shown.contains(&wrong) && !shown.contains(&password),
            "{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB/MySQL"]
async fn a_dead_store_with_a_tiny_spool_drops_counted_and_logged_rows_only() {
    let logs = capture_logs();
    let state = tempfile::tempdir().unwrap();
    let dead_port = free_port();
    let mut dead = SinkConfig::mysql(
        "dead",
        &format!("mysql://root@127.0.0.1:{dead_port}/nowhere"),
    )
    .unwrap()
    .with_batching(Some(1_000), None);
    dead.common.queue = 1;
    dead.common.spool_limit = ByteSize::kib(64);
    let alive = SinkConfig::sqlite(
        "alive",
        &format!("sqlite://{}/alive.db", state.path().display()),
    )
    .unwrap();
    let sinks = Sinks::start(&[dead, alive], state.path()).await.unwrap();
    let batches = 1_000;
    for k in 0..batches {
        for handle in &sinks.handles {
            handle.send(samples("D", k * 100, 100));
        }
    }
    let monitors: Vec<_> = sinks.handles.iter().map(|h| h.monitor()).collect();
    wait_until(Duration::from_secs(10), "the dead store is retried", || {
        monitors[0].status().retries > 0
    })
    .await;
    assert!(!monitors[0].status().healthy);
    // The live sink catches up meanwhile (a backlog left at shutdown would stay spooled).
    wait_until(
        Duration::from_secs(30),
        "the live sink wrote everything",
        || monitors[1].status().written == batches as u64 * 100,
    )
    .await;
    sinks.finish().await;
    let dead = monitors[0].status();
    assert!(dead.dropped > 0, "{dead:?}");
    assert_eq!(dead.dropped % 100, 0, "whole batches: {dead:?}");
    assert!(dead.spooled_bytes <= 64 << 10, "{dead:?}");
    assert!(dead.retries > 0);
    assert!(
        dead.last_error.as_deref().unwrap().contains("MySQL"),
        "{dead:?}"
    );
    // The log says exactly how much was dropped.
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let logged: u64 = logs
        .lines()
        .filter(|l| l.contains("spool full"))
        .map(|l| {
            let at = l.find("rows=").expect("rows in the log line") + 5;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(logged, dead.dropped, "{logs}");
    // What was not dropped is still in the spool, for the next start; the other sink got all.
    let mut spool =
        millstream::sinks::spool::Spool::open(&state.path().join("spool/dead"), 64 << 10).unwrap();
    let mut kept = 0;
    while let Some(m) = spool.pop().unwrap() {
        kept += m.rows().map_or(0, |r| r.len());
    }
    assert_eq!(kept + dead.dropped, batches as u64 * 100);
    let alive = monitors[1].status();
    assert_eq!(alive.written, batches as u64 * 100, "{alive:?}");
    assert_eq!(alive.dropped, 0);
}

#[test]
#[ignore = "needs Mosquitto, MariaDB and influxd"]
fn check_logs_in_to_each_store_and_names_the_one_refusing() {
    let (cloud, user, _) = influx_cloud();
    require(&cloud, "InfluxDB cloud");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "{broker}"
[[sinks]]
name = "mysql"
kind = "mysql"
url = "{mysql}/ms_check_never_created"
[[sinks]]
name = "edge"
kind = "influx"
url = "{edge}"
database = "whatever"
[[sinks]]
name = "cloud"
kind = "influx"
url = "{cloud}"
database = "whatever"
username = "{user}"
password = "${{CLOUD_PASSWORD}}"
"#,
            d = dir.path().display(),
            broker = broker_url(),
            mysql = mysql_server(),
            edge = influx_edge(),
        ),
    )
    .unwrap();
    let out = millstream()
        .args(["check", "-c"])
        .arg(&config)
        .env("CLOUD_PASSWORD", "not-the-password-at-all")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("sinks[2] (cloud)") && all.contains("401"),
        "{all}"
    );
    assert!(
        !all.contains("sinks[0]") && !all.contains("sinks[1]"),
        "{all}"
    );
    assert!(!all.contains("not-the-password-at-all"), "{all}");
}
