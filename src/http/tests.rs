//! The API against a state filled by hand: answers, and the 4xx of bad input.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::config::Secret;
use crate::http::AppState;
use crate::id::Id;
use crate::live::Bus;
use crate::live::registry::Registry;
use crate::live::views::{LatestValue, LiveViews};
use crate::live::window_store::WindowStore;
use crate::metrics::Metrics;
use crate::nclink::model::DeviceModel;
use crate::source::control::SourceControl;
use crate::window::WindowRow;

fn state(token: Option<&str>) -> Arc<AppState> {
    let views = LiveViews::default();
    let d: Id = Id::from("M1");
    let speed: Id = Id::from("0103502202");
    views.apply_latest(&[(
        (d.clone(), speed.clone()),
        LatestValue {
            ts: 5,
            value_bits: Some(2.5f64.to_bits()),
            text: None,
        },
        1,
    )]);
    let registry = Registry::default();
    registry.seen(&d, 5);
    let model: serde_json::Value =
        serde_json::from_str(include_str!("../../data/nc-link/lab-model.json")).unwrap();
    registry.set_model(&d, Arc::new(DeviceModel::from_own_tree(model).unwrap()));
    let windows = WindowStore::default();
    let row = |start: i64| WindowRow {
        device: d.clone(),
        item: speed.clone(),
        size_ms: 10_000,
        start,
        end: start + 10_000,
        count: 3,
        min: 1.0,
        max: 3.0,
        mean: 2.0,
        stddev: Some(1.0),
        p50: 2.0,
        p95: 3.0,
        p99: 3.0,
        first: 1.0,
        last: 3.0,
    };
    windows.add(&[row(20_000), row(0), row(10_000)]);
    Arc::new(AppState {
        wal: None,
        lake: None,
        metrics: Arc::new(Metrics::default()),
        views: Arc::new(views),
        registry: Arc::new(registry),
        windows: Arc::new(windows),
        bus: Bus::default(),
        source: SourceControl::detached("mqtt://127.0.0.1:1883"),
        sinks: Vec::new(),
        guard: crate::http::Guard {
            token: token.map(Secret::new),
            ..Default::default()
        },
        sse_clients: 4,
        window_sizes: vec![1_000, 10_000, 60_000],
        started: Instant::now(),
    })
}

async fn call(
    state: Arc<AppState>,
    request: Request<Body>,
) -> (StatusCode, serde_json::Value, String) {
    let response = super::app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        text,
    )
}

async fn get(path: &str) -> (StatusCode, serde_json::Value, String) {
    call(state(None), Request::get(path).body(Body::empty()).unwrap()).await
}

fn post(path: &str, body: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn answers() {
    let (s, v, _) = get("/api/v1/health").await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v, _) = get("/api/v1/latest?device=M1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"]["0103502202"]["value"], 2.5);
    let (s, v, _) = get("/api/v1/devices/M1/items").await;
    assert_eq!(s, StatusCode::OK);
    let speed = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "0103502202")
        .unwrap();
    assert_eq!(speed["name"], "实际速度");
    assert_eq!(speed["last"]["value"], 2.5);
    let (s, v, _) = get("/api/v1/windows?device=M1&item=0103502202&size=10s").await;
    assert_eq!(s, StatusCode::OK);
    let starts: Vec<i64> = v["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["start"].as_i64().unwrap())
        .collect();
    assert_eq!(starts, vec![0, 10_000, 20_000], "oldest first");
    let (_, v, _) =
        get("/api/v1/windows?device=M1&item=0103502202&size=10s&from=5000&to=1970-01-01T00:00:20Z")
            .await;
    assert_eq!(v["windows"].as_array().unwrap().len(), 1);
    let (_, v, _) = get("/api/v1/windows?device=M1&item=0103502202&size=10s&limit=2").await;
    assert_eq!(
        v["windows"][0]["start"], 10_000,
        "the newest `limit`, oldest first"
    );
    let (s, v, _) = get("/api/v1/fleet").await;
    assert_eq!((s, v["unknown"].as_i64()), (StatusCode::OK, Some(0)));
    let (s, _, text) = get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    for name in [
        "millstream_messages_total",
        "millstream_late_samples_total",
        "millstream_watermark_lag_seconds",
    ] {
        assert!(text.contains(name), "{name}");
    }
}

#[tokio::test]
async fn the_dashboard_is_served_with_types_and_caching_or_its_absence_explained() {
    let response = super::app(state(None))
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(body.to_vec()).unwrap();
    match super::dashboard::problem() {
        None => {
            assert_eq!(cache.as_deref(), Some("no-cache"));
            assert!(html.contains("<div id=\"app\">"), "{html}");
            // Every asset the page names is served, typed, and cached for good.
            let names: Vec<&str> = html
                .split('"')
                .filter(|part| part.starts_with("/assets/"))
                .collect();
            assert!(names.iter().any(|n| n.ends_with(".js")), "{html}");
            for name in names {
                let response = super::app(state(None))
                    .oneshot(Request::get(name).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{name}");
                let kind = response.headers()["content-type"].to_str().unwrap();
                assert!(
                    (name.ends_with(".js") && kind.starts_with("text/javascript"))
                        || (name.ends_with(".css") && kind.starts_with("text/css")),
                    "{name}: {kind}"
                );
                assert!(
                    response.headers()["cache-control"]
                        .to_str()
                        .unwrap()
                        .contains("immutable")
                );
            }
        }
        Some(reason) => {
            // Not a blank page: the reason, and the API list.
            assert!(html.contains("not in this build"), "{html}");
            assert!(html.contains(&reason.replace('<', "&lt;")[..reason.len().min(20)]));
            assert!(html.contains("/api/v1/windows"));
        }
    }
    let (s, _, _) = get("/assets/no-such-file.js").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_reason() {
    for (path, status, needle) in [
        (
            "/api/v1/windows?device=M1&item=0103502202&size=5x",
            StatusCode::BAD_REQUEST,
            "bad `size`",
        ),
        (
            "/api/v1/windows?device=M1&item=0103502202&size=7s",
            StatusCode::BAD_REQUEST,
            "sizes: 1s, 10s, 1m",
        ),
        (
            "/api/v1/windows?item=0103502202&size=10s",
            StatusCode::BAD_REQUEST,
            "missing parameter `device`",
        ),
        (
            "/api/v1/windows?device=M1&item=x&size=10s&from=yesterday",
            StatusCode::BAD_REQUEST,
            "bad `from`",
        ),
        (
            "/api/v1/windows?device=M1&item=x&size=10s&limit=0",
            StatusCode::BAD_REQUEST,
            "bad `limit`",
        ),
        (
            "/api/v1/windows?device=M1&item=x&size=10s&from=20&to=10",
            StatusCode::BAD_REQUEST,
            "after",
        ),
        (
            "/api/v1/windows?device=NOPE&item=x&size=10s",
            StatusCode::NOT_FOUND,
            "unknown device",
        ),
        (
            "/api/v1/latest",
            StatusCode::BAD_REQUEST,
            "missing parameter `device`",
        ),
        (
            "/api/v1/latest?device=NOPE",
            StatusCode::NOT_FOUND,
            "unknown device",
        ),
        (
            "/api/v1/latest?device=M1&item=nope",
            StatusCode::NOT_FOUND,
            "no value for item",
        ),
        (
            "/api/v1/devices/NOPE/items",
            StatusCode::NOT_FOUND,
            "unknown device",
        ),
        (
            "/api/v2/anything",
            StatusCode::NOT_FOUND,
            "no such endpoint",
        ),
    ] {
        let (s, v, text) = get(path).await;
        assert_eq!(s, status, "{path}: {text}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn bad_bodies_and_tokens() {
    let open = state(None);
    let (s, v, _) = call(open.clone(), post("/api/v1/query", "{not json", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().starts_with("bad JSON body"),
        "{v}"
    );
    let (s, _, _) = call(
        open.clone(),
        post("/api/v1/query", r#"{"device":"M1","items":[]}"#, None),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(
        open.clone(),
        post(
            "/api/v1/query",
            r#"{"device":"M1","items":["x"],"extra":1}"#,
            None,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    let (s, _, _) = call(
        open.clone(),
        post("/api/v1/query", r#"{"device":"NOPE","items":["x"]}"#, None),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v, _) = call(
        open.clone(),
        post("/api/v1/source", r#"{"url":"http://x"}"#, None),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("mqtt://"), "{v}");
    // With no source behind the control, a valid request is a 502, not a hang.
    let (s, _, _) = call(
        open,
        post("/api/v1/query", r#"{"device":"M1","items":["x"]}"#, None),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);

    let locked = state(Some("s3cret"));
    let body = r#"{"device":"M1","items":["x"]}"#;
    let (s, v, _) = call(locked.clone(), post("/api/v1/query", body, None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().unwrap().contains("Bearer"));
    let (s, _, _) = call(locked.clone(), post("/api/v1/query", body, Some("wrong"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(locked.clone(), post("/api/v1/query", body, Some("s3cret"))).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "authorized, then no source");
    // GET endpoints stay open.
    let (s, _, _) = call(
        locked,
        Request::get("/api/v1/fleet").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn polling_settings_are_validated_and_need_the_token() {
    let (s, v, _) = get("/api/v1/poll").await;
    assert_eq!((s, v["poll"].is_null()), (StatusCode::OK, true));
    let secured = state(Some("sesame"));
    for (body, reason) in [
        (
            r#"{"interval":"50ms","items":["010302"]}"#,
            "at least 100ms",
        ),
        (r#"{"interval":"1s","items":[]}"#, "at least one"),
        (r#"{"interval":"1s","items":[" "]}"#, "non-empty"),
        (
            r#"{"interval":"soon","items":["010302"]}"#,
            "bad `interval`",
        ),
        (
            r#"{"interval":"1s","items":["010302"],"timeout":"x"}"#,
            "bad `timeout`",
        ),
        (
            r#"{"interval":null,"items":["010302"]}"#,
            "without an `interval`",
        ),
        (
            r#"{"interval":"1s","items":["010302"],"every":"1s"}"#,
            "unknown field",
        ),
    ] {
        let (s, v, _) = call(secured.clone(), post("/api/v1/poll", body, Some("sesame"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(reason), "{body}: {v}");
    }
    let ok = r#"{"interval":"1s","items":["010302"]}"#;
    let (s, _, _) = call(secured.clone(), post("/api/v1/poll", ok, None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A valid change with no source behind the API: 502, and nothing changed.
    let (s, v, _) = call(secured.clone(), post("/api/v1/poll", ok, Some("sesame"))).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    let (_, v, _) = call(
        secured,
        Request::get("/api/v1/poll").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(v["poll"].is_null());
}

/// Every number `/api/v1/status` shows is on `/metrics` too, with the same value: each
/// counter is set to a value of its own, then looked for among the Prometheus lines.
#[tokio::test]
async fn status_and_metrics_show_the_same_counters() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let mut next = 1_000u64;
    let mut set = |c: &AtomicU64| {
        next += 1;
        c.store(next, Relaxed);
    };
    let metrics = Metrics::default();
    let src = &metrics.source;
    for c in [
        &src.connects,
        &src.connection_errors,
        &src.messages,
        &src.bytes,
        &src.samples,
        &src.not_ok_items,
        &src.dead_letter_write_errors,
        &src.dead_letters_unacknowledged,
        &src.devices,
        &src.models,
        &src.probe_requests,
        &src.query_requests,
        &src.query_answers,
        &src.query_timeouts,
        &src.publish_failures,
        &src.ack_failures,
        &src.pending_messages,
        &src.buffered_bytes,
    ] {
        set(c);
    }
    src.dead_letters.iter().for_each(&mut set);
    let e = &metrics.engine;
    for c in [
        &e.dataflow_samples,
        &e.late_samples,
        &e.sse_clients,
        &e.sse_lagged,
    ] {
        set(c);
    }
    e.windows_emitted.lock().unwrap().insert(10_000, 4_321);
    let wal = crate::wal::WalStats::default();
    for c in [
        &wal.bytes,
        &wal.segments,
        &wal.appended_samples,
        &wal.syncs,
        &wal.recovered_samples,
        &wal.checkpoints,
        &wal.write_errors,
        &wal.torn_records,
        &wal.corrupt_records,
    ] {
        set(c);
    }
    let stats = crate::sinks::SinkStats {
        healthy: AtomicBool::new(true),
        ..Default::default()
    };
    for c in [
        &stats.written,
        &stats.failed,
        &stats.dropped,
        &stats.skipped,
        &stats.retries,
        &stats.queued,
        &stats.spooled_bytes,
    ] {
        set(c);
    }
    let base = state(None);
    let state = Arc::new(AppState {
        metrics: Arc::new(metrics),
        wal: Some(Arc::new(wal)),
        sinks: vec![crate::sinks::SinkMonitor {
            name: "store".into(),
            kind: crate::config::SinkKind::Mysql,
            stats: Arc::new(stats),
        }],
        views: base.views.clone(),
        registry: base.registry.clone(),
        windows: base.windows.clone(),
        bus: Bus::default(),
        source: SourceControl::detached("mqtt://127.0.0.1:1883"),
        guard: Default::default(),
        sse_clients: 4,
        window_sizes: vec![10_000],
        started: Instant::now(),
        lake: None,
    });
    let status = super::api::status_json(&state);
    let page = super::prometheus::render(&state);
    let values: Vec<(&str, f64)> = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    // Not counters: what the status says about itself.
    let not_metrics = [
        "broker",
        "watermark",
        "window_sizes",
        "uptime_ms",
        "now",
        "name",
        "kind",
        "last_error",
        "enabled",
    ];
    let mut checked = 0;
    let mut leaves = vec![(String::new(), &status)];
    while let Some((path, v)) = leaves.pop() {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    if !not_metrics.contains(&k.as_str()) {
                        leaves.push((format!("{path}.{k}"), v));
                    }
                }
            }
            serde_json::Value::Array(a) => {
                leaves.extend(a.iter().map(|v| (format!("{path}[]"), v)));
            }
            serde_json::Value::Number(n) => {
                let n = n.as_f64().unwrap();
                assert!(
                    values.iter().any(|(_, v)| *v == n),
                    "status {path} = {n} is not on /metrics:\n{page}"
                );
                checked += 1;
            }
            serde_json::Value::Bool(b) => {
                let key = path.rsplit('.').next().unwrap();
                assert!(
                    values
                        .iter()
                        .any(|(name, v)| name.contains(key) && *v == f64::from(u8::from(*b))),
                    "status {path} = {b} is not on /metrics:\n{page}"
                );
                checked += 1;
            }
            other => panic!("status {path} is {other}, neither a number nor a flag"),
        }
    }
    // Source 19 + dead letters by reason, engine 3 + windows by size, log 9, sink 9.
    assert!(checked >= 40, "only {checked} numbers in the status");
    // And the other way: every family on /metrics is in the status (the lag is the
    // status's watermark, seen from now).
    for line in page.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        if name == "millstream_watermark_lag_seconds" {
            continue;
        }
        let (_, value) = values
            .iter()
            .find(|(n, _)| n.split('{').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} has no value"));
        assert!(
            status.to_string().contains(&format!(":{value}"))
                || (*value == 1.0 && status.to_string().contains(":true"))
                || (*value == 0.0 && status.to_string().contains(":false")),
            "{name} = {value} is not in the status: {status}"
        );
    }
}

/// A failed source command's status comes from why it failed.
#[test]
fn source_command_failures_have_their_own_status() {
    use crate::source::control::ControlError as E;
    for (error, status) in [
        (
            E::Replaying("there are no devices to ask"),
            StatusCode::CONFLICT,
        ),
        (E::Stopping, StatusCode::SERVICE_UNAVAILABLE),
        (E::Refused("no downgrade".into()), StatusCode::BAD_REQUEST),
        (E::Source("no answer".into()), StatusCode::BAD_GATEWAY),
        (E::Detached, StatusCode::BAD_GATEWAY),
    ] {
        let reason = error.to_string();
        let response = axum::response::IntoResponse::into_response(super::ApiError::from(error));
        assert_eq!(response.status(), status, "{reason}");
    }
}
