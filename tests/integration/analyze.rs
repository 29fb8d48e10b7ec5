//! `millstream analyze` and `GET /api/v1/history` over a lake written by replaying the committed
//! recording: windows equal DuckDB's SQL over the same files (count, min, max exactly; mean and
//! stddev to float rounding; percentiles within 1 %), descriptions count every row, state
//! durations equal a walk over the SQL samples, a file that is not Parquet is named and
//! skipped, and the history endpoint answers what analyze answers, with 400s beyond its limits.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/recordings/sim-3-machines-seed1.jsonl.zst"
);

/// Replays the committed recording into SQLite and a lake under `dir`; the pipeline file and
/// its HTTP port.
fn build_lake(dir: &Path) -> (std::path::PathBuf, u16) {
    let d = dir.display();
    let port = free_port();
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "mqtt://127.0.0.1:1"
client_id = "{client}"
[windows]
tumbling = ["1s"]
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
"#,
            client = unique("analyze")
        ),
    )
    .unwrap();
    let out = millstream()
        .args(["replay", RECORDING, "--quiet", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (config, port)
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn analyze(lake: &Path, args: &[&str]) -> (Vec<Value>, String) {
    let out = millstream()
        .args(["analyze", "--format", "json", "--lake"])
        .arg(lake)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (json_lines(&out.stdout), stderr)
}

fn duckdb(lake: &Path, args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/duckdb-windows.py"
        ))
        .arg(lake)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

type Key = (String, String, i64);

fn by_key(rows: &[Value]) -> BTreeMap<Key, Value> {
    rows.iter()
        .map(|r| {
            let key = (
                r["device"].as_str().unwrap().to_string(),
                r["item"].as_str().unwrap().to_string(),
                r["start"].as_i64().unwrap(),
            );
            (key, r.clone())
        })
        .collect()
}

/// Equal within `absolute` (both null counts as equal).
fn close_within(a: &Value, b: &Value, absolute: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= absolute.max(1e-12),
        (None, None) => true,
        _ => false,
    }
}

fn close(a: &Value, b: &Value, relative: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= relative * a.abs().max(b.abs()).max(1e-12),
        (None, None) => true,
        _ => false,
    }
}

/// Every window of `got` is DuckDB's window.
fn assert_same_windows(got: &[Value], want: &[Value]) {
    let (got, want) = (by_key(got), by_key(want));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (key, g) in &got {
        let w = &want[key];
        for field in ["count", "min", "max", "end"] {
            assert_eq!(
                g[field].as_f64(),
                w[field].as_f64(),
                "{key:?} {field}: {g} vs {w}"
            );
        }
        // Sums in another order differ by rounding relative to the values summed, not to the
        // result: a mean of values in ±0.004 may come out as 0.0 or as -1.7e-20.
        let scale = w["min"]
            .as_f64()
            .unwrap()
            .abs()
            .max(w["max"].as_f64().unwrap().abs());
        for field in ["mean", "stddev", "first", "last"] {
            assert!(
                close_within(&g[field], &w[field], 1e-9 * scale),
                "{key:?} {field}: {g} vs {w}"
            );
        }
        for field in ["p50", "p95", "p99"] {
            assert!(
                close(&g[field], &w[field], 0.01),
                "{key:?} {field}: {g} vs {w}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs duckdb for Python (scripts/test)"]
async fn analyze_and_history_equal_duckdb_over_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = build_lake(dir.path());
    let lake = dir.path().join("lake");

    // Windows of several lengths, everything and one selection.
    for every in ["10s", "1m", "7s"] {
        let ms = every
            .parse::<millstream::config::HumanDuration>()
            .unwrap()
            .as_millis();
        let (got, _) = analyze(&lake, &["--every", every]);
        assert!(got.len() >= 20, "{every}: {} windows", got.len());
        assert_same_windows(&got, &duckdb(&lake, &["--every-ms", &ms.to_string()]));
    }
    let all = analyze(&lake, &["--every", "10s"]).0;
    let first = &all[all.len() / 2];
    let (device, item, start) = (
        first["device"].as_str().unwrap().to_string(),
        first["item"].as_str().unwrap().to_string(),
        first["start"].as_i64().unwrap(),
    );
    let (from, to) = (start + 10_000, start + 40_000);
    let selection = [
        "--device".to_string(),
        device.clone(),
        "--item".into(),
        item.clone(),
        "--from".into(),
        from.to_string(),
        "--to".into(),
        to.to_string(),
    ];
    let args: Vec<&str> = selection.iter().map(String::as_str).collect();
    let (selected, _) = analyze(&lake, &[&["--every", "10s"], &args[..]].concat());
    assert!(selected.len() >= 2, "{selected:?}");
    let mut duck_args = vec!["--every-ms", "10000"];
    duck_args.extend(&args);
    assert_same_windows(&selected, &duckdb(&lake, &duck_args));

    // Descriptions count every row; state durations equal a walk over the SQL samples.
    let pool = sqlite_at(&dir.path().join("m.db")).await;
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM samples")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (described, _) = analyze(&lake, &["--describe"]);
    let counted: u64 = described.iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, rows as u64);
    let statuses: Vec<(String, String, Option<f64>, Option<String>)> = sqlx::query_as(
        "SELECT device, ts, value, text FROM samples WHERE item = '010302' ORDER BY device, ts",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    for pair in statuses.windows(2) {
        let ((d0, t0, v0, x0), (d1, t1, _, _)) = (&pair[0], &pair[1]);
        if d0 == d1 {
            let state = millstream::nclink::status::MachineState::from_sample(*v0, x0.as_deref());
            let ms =
                millstream::time::parse_sql(t1).unwrap() - millstream::time::parse_sql(t0).unwrap();
            *expected
                .entry((d0.clone(), state.word().to_string()))
                .or_default() += ms;
        }
    }
    let (durations, _) = analyze(&lake, &["--status-durations"]);
    let got: BTreeMap<(String, String), i64> = durations
        .iter()
        .map(|d| {
            (
                (
                    d["device"].as_str().unwrap().to_string(),
                    d["state"].as_str().unwrap().to_string(),
                ),
                d["ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);

    // Table and CSV formats carry the same windows.
    let out = millstream()
        .args(["analyze", "--every", "10s", "--format", "csv", "--lake"])
        .arg(&lake)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("device,item,start,end,count,min,max,mean,stddev,p50,p95,p99,first,last\n")
    );
    assert_eq!(
        csv.lines().count(),
        analyze(&lake, &["--every", "10s"]).0.len() + 1
    );

    // The history endpoint answers what analyze answers, from a running engine on this lake.
    let mut engine = millstream()
        .args(["run", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&base, Duration::from_secs(20)).await;
    let url =
        format!("{base}/api/v1/history?device={device}&item={item}&every=10s&from={from}&to={to}");
    let (status, history) = get_json(&url).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["every_ms"], 10_000);
    let windows = history["windows"].as_array().unwrap();
    assert_eq!(windows.len(), selected.len());
    for (h, a) in windows.iter().zip(&selected) {
        for field in [
            "start", "end", "count", "min", "max", "mean", "stddev", "p50", "p95", "p99", "first",
            "last",
        ] {
            assert_eq!(h[field], a[field], "{field}: {h} vs {a}");
        }
    }
    for (query, reason) in [
        (
            format!("device={device}&item={item}"),
            "missing parameter `every`",
        ),
        (
            format!("device={device}&item={item}&every=500ms"),
            "at least 1s",
        ),
        (
            format!("device={device}&item={item}&every=1h&from=0&to=99999999999"),
            "at most 31 days",
        ),
        (
            format!("device={device}&item={item}&every=1s&from=0&to=86400000"),
            "at most 10000",
        ),
        (
            format!("device={device}&item={item}&every=1m&from=yesterday"),
            "bad `from`",
        ),
        (
            format!("device={device}&every=1m"),
            "missing parameter `item`",
        ),
    ] {
        let (status, body) = get_json(&format!("{base}/api/v1/history?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{query}: {body}"
        );
    }
    let code = tokio::task::spawn_blocking(move || {
        interrupt_and_wait(&mut engine, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));

    // Compaction: every partition of the (past) recording is closed and marked; the answers
    // stay the same.
    let (before, _) = analyze(&lake, &["--every", "10s"]);
    let out = millstream()
        .args(["lake", "compact", "--target-size", "1MiB"])
        .arg(&lake)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 open"), "{stderr}");
    let (files, hidden) = lake_files(&lake);
    assert!(hidden.is_empty());
    for file in &files {
        assert!(
            file.parent().unwrap().join("_SUCCESS").exists(),
            "{}",
            file.display()
        );
    }
    assert_eq!(analyze(&lake, &["--every", "10s"]).0, before);

    // A file that is not Parquet: named, skipped, the rest analysed as before.
    let (files, _) = lake_files(&lake);
    let sample_file = files
        .iter()
        .find(|f| f.to_string_lossy().contains("/samples/"))
        .unwrap();
    let bogus = sample_file.parent().unwrap().join("part-1-bogus-1.parquet");
    std::fs::write(&bogus, b"PAR1 but not really").unwrap();
    let (after, stderr) = analyze(&lake, &["--every", "10s"]);
    assert!(
        stderr.contains(&format!(
            "skipped: {}: not a readable Parquet file",
            bogus.display()
        )),
        "{stderr}"
    );
    assert_eq!(after, before);
}
