//! The InfluxDB sink's HTTP behaviour where no real server can show it here: the 2.x/Cloud
//! write API (Debian ships only InfluxDB 1.6, which answers `/api/v2/*` with 404) and a server
//! asking to slow down (429 + `Retry-After`). A local listener records what arrives.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use millstream::config::{InfluxApi, Secret, SinkConfig};
use millstream::id::Id;
use millstream::sample::Sample;
use millstream::sinks::writer::{Batch, BatchWriter};
use millstream::sinks::{SinkMessage, Sinks};

/// A request as the listener saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    uri: String,
    authorization: Option<String>,
    encoding: Option<String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `router` on a loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn record(log: &Log, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let encoding = header("content-encoding");
    let body = if encoding.as_deref() == Some("gzip") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    log.lock().unwrap().push(Seen {
        at: Instant::now(),
        uri: uri.to_string(),
        authorization: header("authorization"),
        encoding,
        body,
    });
}

#[tokio::test]
async fn the_v2_api_gets_org_bucket_token_and_gzip_line_protocol() {
    let log: Log = Arc::default();
    let l = log.clone();
    let router = Router::new().route(
        "/api/v2/write",
        post(
            move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
                record(&l, &uri, &headers, &body);
                StatusCode::NO_CONTENT
            },
        ),
    );
    let base = serve(router).await;
    let mut writer = millstream::sinks::influx::InfluxWriter::new(
        &base,
        millstream::sinks::influx::Api::V2 {
            org: "XJTU".into(),
            bucket: "class2down".into(),
            token: Secret::new("t0k3n-for-the-test"),
        },
    )
    .unwrap();
    let d: Id = Id::from("STRESS_TEST_00001");
    let batch = Batch {
        samples: vec![
            Sample::number(d.clone(), "0103502201".into(), 1_700_000_000_001, 1.5),
            Sample::number(d.clone(), "0103502201".into(), 1_700_000_000_002, 2.5),
        ],
        windows: vec![],
    };
    writer.write(&batch).await.unwrap();
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        request.uri,
        "/api/v2/write?org=XJTU&bucket=class2down&precision=ms"
    );
    assert_eq!(
        request.authorization.as_deref(),
        Some("Token t0k3n-for-the-test")
    );
    assert_eq!(request.encoding.as_deref(), Some("gzip"));
    assert_eq!(
        request.body,
        "samples,device=STRESS_TEST_00001,item=0103502201 value=1.5 1700000000001\n\
         samples,device=STRESS_TEST_00001,item=0103502201 value=2.5 1700000000002\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_to_slow_down_is_retried_after_its_retry_after() {
    let log: Log = Arc::default();
    let l = log.clone();
    let router = Router::new()
        .route("/query", post(|| async { StatusCode::OK }))
        .route(
            "/write",
            post(
                move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
                    record(&l, &uri, &headers, &body);
                    if l.lock().unwrap().len() == 1 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("Retry-After", "2")],
                            "{\"error\":\"slow down\"}",
                        )
                            .into_response()
                    } else {
                        StatusCode::NO_CONTENT.into_response()
                    }
                },
            ),
        );
    let base = serve(router).await;
    let state = tempfile::tempdir().unwrap();
    let config = SinkConfig::influx(
        "edge",
        &base,
        InfluxApi::V1 {
            database: "db".into(),
            username: None,
            password: None,
        },
    )
    .unwrap()
    .with_batching(None, Some("10ms".parse().unwrap()));
    let sinks = Sinks::start(&[config], state.path()).await.unwrap();
    let d: Id = Id::from("D");
    sinks.handles[0].send(SinkMessage::Samples(
        vec![Sample::number(d.clone(), d.clone(), 1, 1.0)].into(),
    ));
    let monitor = sinks.handles[0].monitor();
    let deadline = Instant::now() + Duration::from_secs(10);
    while monitor.status().written < 1 {
        assert!(Instant::now() < deadline, "{:?}", monitor.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sinks.finish().await;
    let status = monitor.status();
    assert_eq!((status.written, status.failed, status.retries), (1, 0, 1));
    assert!(status.healthy);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body, "the same batch again");
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, before the server's Retry-After"
    );
}
