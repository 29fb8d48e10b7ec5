//! `millstream demo` as a newcomer runs it: it prints the URL, the API shows live data for every
//! simulated machine, and Ctrl-C stops it cleanly (exit 0, Parquet files complete, none hidden).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_shows_live_data_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut demo = millstream()
        .current_dir(dir.path())
        .args([
            "demo",
            "--devices",
            "3",
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stops reading after the URL, as `millstream demo | head` would: the demo must live on.
    let stdout = demo.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Some(Ok(line)) = lines.next()
                && let Some(url) = line.trim().strip_prefix("open ")
            {
                return url.trim_end_matches('/').to_string();
            }
        }
        panic!("the demo printed no URL");
    })
    .await
    .unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));

    // Live data for every machine, then closed windows.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, devices) = get_json(&format!("{url}/api/v1/devices")).await;
        let ready = devices
            .as_array()
            .map(|list| {
                list.len() == 3 && list.iter().all(|d| d["items"].as_u64().unwrap_or(0) >= 20)
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "no live data: {devices}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in 0..3 {
        let device = millstream::sim::device_id(n);
        let (status, latest) = get_json(&format!("{url}/api/v1/latest?device={device}")).await;
        assert_eq!(status, 200);
        let now = millstream::sample::now_ms();
        let ts = latest["items"]["0103502201"]["ts"].as_i64().unwrap();
        assert!(
            now - ts < 5_000,
            "{device}: latest value is {} ms old",
            now - ts
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, windows) = get_json(&format!(
            "{url}/api/v1/windows?device=STRESS_TEST_00000&item=0103502201&size=1s"
        ))
        .await;
        if windows["windows"].as_array().is_some_and(|w| !w.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no windows: {windows}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let code =
        tokio::task::spawn_blocking(move || interrupt_and_wait(&mut demo, Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(code, Some(0));
    let lake = dir.path().join("millstream-data/lake");
    let (files, hidden) = lake_files(&lake);
    assert!(hidden.is_empty(), "hidden leftovers: {hidden:?}");
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/samples/")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/windows/")),
        "{files:?}"
    );
    let rows = polars_rows_per_device(&lake, "samples");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(dir.path().join("millstream-data/millstream.db").exists());
}
