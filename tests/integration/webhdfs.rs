//! Uploads of closed lake partitions over WebHDFS. No HDFS can run here (no Hadoop in the
//! registries this machine reaches), so a local listener plays namenode and datanode and the
//! test checks the protocol: `PUT …?op=CREATE&overwrite=true&user.name=U` without a body to
//! the namenode, its `307` followed by hand, the file `PUT` to the datanode answered `201`,
//! `_SUCCESS` last; a datanode failure is retried; open partitions are left alone; a second
//! round uploads nothing new.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use millstream::lake::upload::{MARKER, Uploader};
use millstream::lake::webhdfs::WebHdfs;
use millstream::lake::writer::{Lake, LakeOptions};
use millstream::sample::Sample;

/// (role, path, op, user, body length).
type Request = (String, String, String, String, usize);

#[derive(Default)]
struct Hdfs {
    /// In arrival order.
    requests: Mutex<Vec<Request>>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    /// Datanode writes to fail before succeeding.
    failures: Mutex<u32>,
    port: Mutex<u16>,
}

async fn namenode(
    State(hdfs): State<Arc<Hdfs>>,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> impl IntoResponse {
    let op = q.get("op").cloned().unwrap_or_default();
    let user = q.get("user.name").cloned().unwrap_or_default();
    hdfs.requests.lock().unwrap().push((
        "namenode".into(),
        path.clone(),
        op.clone(),
        user,
        body.len(),
    ));
    if op != "CREATE" || q.get("overwrite").map(String::as_str) != Some("true") {
        return (StatusCode::BAD_REQUEST, HeaderMap::new(), "bad op").into_response();
    }
    let port = *hdfs.port.lock().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "location",
        format!("http://127.0.0.1:{port}/datanode/webhdfs/v1/{path}?op=CREATE")
            .parse()
            .unwrap(),
    );
    (StatusCode::TEMPORARY_REDIRECT, headers, "").into_response()
}

async fn datanode(
    State(hdfs): State<Arc<Hdfs>>,
    Path(path): Path<String>,
    body: Bytes,
) -> impl IntoResponse {
    hdfs.requests.lock().unwrap().push((
        "datanode".into(),
        path.clone(),
        "CREATE".into(),
        String::new(),
        body.len(),
    ));
    {
        let mut failures = hdfs.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"RemoteException":{"message":"busy"}}"#,
            )
                .into_response();
        }
    }
    hdfs.files.lock().unwrap().insert(path, body.to_vec());
    (StatusCode::CREATED, "").into_response()
}

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00Z

fn samples(from: i64, n: i64) -> std::sync::Arc<[Sample]> {
    (0..n)
        .map(|k| Sample::number("D".into(), "I".into(), from + k * 10, k as f64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_partitions_go_to_hdfs_file_by_file_with_success_last() {
    let hdfs = Arc::new(Hdfs::default());
    *hdfs.failures.lock().unwrap() = 1;
    let app = axum::Router::new()
        .route("/webhdfs/v1/{*path}", axum::routing::put(namenode))
        .route("/datanode/webhdfs/v1/{*path}", axum::routing::put(datanode))
        .with_state(hdfs.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    *hdfs.port.lock().unwrap() = port;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Hour 0: three small files, closed. Hour 5: a file still being written.
    let dir = tempfile::tempdir().unwrap();
    let options = |w: &str| LakeOptions {
        roll_rows: 100,
        roll_age: Duration::from_secs(3600),
        writer: w.into(),
        skip_existing: None,
    };
    let mut lake = Lake::new(dir.path().to_path_buf(), options("a"));
    for k in 0..3 {
        lake.write_samples(&samples(T0 + k * 1_000, 100)).unwrap();
    }
    lake.finish().unwrap();
    let mut open = Lake::new(dir.path().to_path_buf(), options("b"));
    open.write_samples(&samples(T0 + 5 * HOUR, 30)).unwrap();

    let uploader = Uploader {
        lake: dir.path().to_path_buf(),
        client: WebHdfs::new(
            &format!("webhdfs://127.0.0.1:{port}/plant/lake"),
            Some("hdfs".into()),
            3,
        )
        .unwrap()
        .with_first_delay(Duration::from_millis(10)),
        closed_after_ms: HOUR,
        target_bytes: 128 << 20,
    };
    let report = uploader.round(T0 + 6 * HOUR).await;
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(
        (report.partitions, report.files),
        (1, 1),
        "compacted to one file first: {report:?}"
    );

    let hour0 = dir.path().join("samples/date=2026-01-01/hour=00");
    let local: Vec<String> = std::fs::read_dir(&hour0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(local.len(), 1);
    let remote = format!("plant/lake/samples/date=2026-01-01/hour=00/{}", local[0]);
    let files = hdfs.files.lock().unwrap().clone();
    assert_eq!(
        files.get(&remote),
        Some(&std::fs::read(hour0.join(&local[0])).unwrap())
    );
    assert_eq!(
        files.get("plant/lake/samples/date=2026-01-01/hour=00/_SUCCESS"),
        Some(&Vec::new())
    );
    assert!(
        !files.keys().any(|k| k.contains("hour=05")),
        "an open partition stays local"
    );
    assert_eq!(
        std::fs::read_to_string(hour0.join(MARKER)).unwrap(),
        format!("{}\n", local[0])
    );

    // namenode (no body, the user) → datanode failed → namenode → datanode (the file) → _SUCCESS.
    let requests = hdfs.requests.lock().unwrap().clone();
    let data: Vec<_> = requests.iter().filter(|r| r.1 == remote).collect();
    assert_eq!(data.len(), 4, "{requests:?}");
    assert_eq!(
        (data[0].0.as_str(), data[0].3.as_str(), data[0].4),
        ("namenode", "hdfs", 0)
    );
    assert_eq!(data[1].0, "datanode");
    assert_eq!(data[2].0, "namenode");
    assert_eq!(
        (data[3].0.as_str(), data[3].4),
        ("datanode", files[&remote].len())
    );
    assert!(requests.last().unwrap().1.ends_with("/_SUCCESS"));

    // Nothing new: nothing sent.
    let before = hdfs.requests.lock().unwrap().len();
    let again = uploader.round(T0 + 6 * HOUR).await;
    assert_eq!((again.partitions, again.files), (0, 0));
    assert_eq!(hdfs.requests.lock().unwrap().len(), before);

    // A namenode that refuses: the failure names the partition and the server's reason.
    let refusing = Uploader {
        lake: dir.path().to_path_buf(),
        client: WebHdfs::new(&format!("webhdfs://127.0.0.1:{port}/x?"), None, 2)
            .unwrap()
            .with_first_delay(Duration::from_millis(10)),
        closed_after_ms: HOUR,
        target_bytes: 128 << 20,
    };
    open.finish().unwrap();
    *hdfs.failures.lock().unwrap() = 10;
    let report = refusing.round(T0 + 7 * HOUR).await;
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(
        report.failures[0].contains("hour=05") && report.failures[0].contains("busy"),
        "{report:?}"
    );
}
