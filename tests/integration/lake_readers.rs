//! The lake written by a demo run, read as-is by Spark, DuckDB and pyarrow
//! (`scripts/check-readers.py`): timestamps as timestamps, partitions recognised, every sample
//! row there, and per-minute aggregates equal to `millstream analyze`.

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs pyspark (with Java), duckdb and pyarrow (scripts/test)"]
async fn spark_duckdb_and_pyarrow_read_a_demo_lake_as_analyze_does() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut demo = millstream()
        .args([
            "demo",
            "--devices",
            "2",
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_http(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let code =
        tokio::task::spawn_blocking(move || interrupt_and_wait(&mut demo, Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(code, Some(0));

    let data = dir.path().join("millstream-data");
    let pool = sqlite_at(&data.join("millstream.db")).await;
    let (samples,): (i64,) = sqlx::query_as("SELECT count(*) FROM samples")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(samples > 1_000, "{samples}");
    let lake = data.join("lake");
    let analyze = millstream()
        .args(["analyze", "--every", "1m", "--format", "json", "--lake"])
        .arg(&lake)
        .output()
        .unwrap();
    assert!(
        analyze.status.success(),
        "{}",
        String::from_utf8_lossy(&analyze.stderr)
    );
    let windows = dir.path().join("analyze.jsonl");
    std::fs::write(&windows, &analyze.stdout).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/check-readers.py"
        ))
        .arg(&lake)
        .args(["--samples", &samples.to_string(), "--analyze"])
        .arg(&windows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
