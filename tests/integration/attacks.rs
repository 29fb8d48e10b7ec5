//! Attacks and faults against the running binary, one test per promise of DESIGN.md §7 and §8,
//! each named for what it tries: crafted messages, hostile web pages, damaged files. Each test
//! starts its own engine on its own ports, state directory, client id and device ids.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::support::*;

/// A pipeline file in `dir`: the machine's broker, an SQLite sink, the API on `port`, and
/// `extra` TOML appended (more sinks, sections).
fn pipeline(dir: &Path, port: u16, client_id: &str, http: &str, extra: &str) -> PathBuf {
    let url = broker_url();
    let d = dir.display();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "{url}"
client_id = "{client_id}"
probe_timeout = "30s"
[windows]
tumbling = ["1s"]
allowed_lateness = "500ms"
[http]
listen = "127.0.0.1:{port}"
{http}
[[sinks]]
name = "db"
kind = "sqlite"
url = "sqlite://{d}/db.sqlite"
linger = "200ms"
{extra}
"#
        ),
    )
    .unwrap();
    path
}

/// Starts `millstream run`; its log goes to `engine.log` beside the pipeline.
fn start(config: &Path) -> Child {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(config.with_file_name("engine.log"))
        .unwrap();
    millstream()
        .args(["run", "--workers", "1", "-c"])
        .arg(config)
        .env("MILLSTREAM_LOG", "info")
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

/// An MQTT client for the test's own traffic, its event loop polled in the background;
/// `on_publish` sees what it receives.
fn client(tag: &str, on_publish: impl Fn(rumqttc::Publish) + Send + 'static) -> AsyncClient {
    let url = broker_url();
    let mut options = MqttOptions::new(unique(tag), url.host.clone(), url.port);
    options.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => on_publish(p),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

/// The last lines of the engine's log (for a failing assertion's message).
fn log_tail(config: &Path) -> String {
    let log = std::fs::read_to_string(config.with_file_name("engine.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The engine's whole log.
fn log_text(config: &Path) -> String {
    std::fs::read_to_string(config.with_file_name("engine.log")).unwrap_or_default()
}

async fn status(base: &str) -> serde_json::Value {
    get_json(&format!("{base}/api/v1/status")).await.1
}

async fn dead_letters(base: &str, reason: &str) -> u64 {
    status(base).await["source"]["dead_letters"][reason]
        .as_u64()
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    millstream::sample::now_ms()
}

/// A NC-Link 3.0 Sample message (items named in `paths`: no model needed).
fn sample(begin: &str, item: &str, values: &[f64]) -> String {
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    format!(
        r#"{{"beginTime":"{begin}","interval":10,"paths":["{item}"],"data":[[{}]]}}"#,
        values.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn extreme_event_times_are_dead_lettered_and_a_kill_9_restart_keeps_ingesting() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-times");
    let config = pipeline(dir.path(), port, &client_id, "", "");
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // subscribed

    let device = unique("TIMES");
    let topic = format!("Sample/{device}/c");
    let mqtt = client("attack-times-pub", |_| {});
    // Near i64::MAX (window arithmetic overflowed on it, and the log replayed it at every
    // start), before 1970, and one whose 51st value reaches 2200-01-01.
    for bad in [
        sample("9223372036854775000", "x", &[1.0, 2.0]),
        sample("-5", "x", &[1.0]),
        sample("7258118399500", "x", &[1.0; 60]),
    ] {
        mqtt.publish(&topic, QoS::AtLeastOnce, false, bad)
            .await
            .unwrap();
    }
    let good = now_ms();
    mqtt.publish(
        &topic,
        QoS::AtLeastOnce,
        false,
        sample(&good.to_string(), "x", &[7.0]),
    )
    .await
    .unwrap();
    wait_until(
        Duration::from_secs(10),
        "three bad_time dead letters",
        || {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(dead_letters(&base, "bad_time"))
            }) == 3
        },
    )
    .await;
    let latest = |base: String, device: String| async move {
        get_json(&format!("{base}/api/v1/latest?device={device}"))
            .await
            .1["items"]["x"]["ts"]
            .as_i64()
    };
    assert_eq!(latest(base.clone(), device.clone()).await, Some(good));

    // kill -9, restart: the log holds no bad sample, so the engine comes up and goes on.
    engine[0].kill().unwrap();
    engine[0].wait().unwrap();
    engine.0 = vec![start(&config)];
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = now_ms();
    mqtt.publish(
        &topic,
        QoS::AtLeastOnce,
        false,
        sample(&later.to_string(), "x", &[8.0]),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest(base.clone(), device.clone()).await != Some(later) {
        assert!(Instant::now() < deadline, "no sample after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let letters = millstream::dead_letter::list(&dir.path().join("state/dead-letters")).unwrap();
    let text: String = letters
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(text.matches("\"reason\":\"bad_time\"").count(), 3);
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

/// Peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Components nested `depth` deep, each named `name`, the innermost holding `items` items.
fn model(depth: usize, name: &str, items: usize) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..items)
        .map(|i| serde_json::json!({"id": format!("b{i:05}"), "name": "n", "type": "SPEED"}))
        .collect();
    let mut node = serde_json::json!({"name": name, "dataItems": items});
    for _ in 1..depth {
        node = serde_json::json!({"name": name, "components": [node]});
    }
    serde_json::json!({"devices": [node]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_model_bomb_is_refused_or_bounded_and_an_unsolicited_model_never_replaces_one() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-model");
    let config = pipeline(dir.path(), port, &client_id, "", "");
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = engine[0].id();
    let before = peak_rss(pid);

    // The device answers each probe with the next model of `answers`.
    let device = unique("BOMB");
    let answers = vec![
        // Nested past model_depth: refused.
        model(40, "c", 1),
        // 10,001 items: refused.
        model(1, "c", 10_001),
        // Within the bounds but heavy: 31 components of 4,000-byte names around 6,000 items.
        // A path copied into every item took 6,000 × 124 KB = 744 MB; shared, it is nothing.
        model(31, &"名".repeat(1_333), 6_000),
    ];
    let answers = std::sync::Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let (tx, mut probes) = tokio::sync::mpsc::unbounded_channel();
    let mqtt = client("attack-model-dev", move |p| {
        let _ = tx.send(p);
    });
    mqtt.subscribe(format!("Probe/Query/Request/{device}"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let register = serde_json::json!({ "deviceid": device }).to_string();
    for round in 0..3 {
        while probes.try_recv().is_ok() {}
        mqtt.publish(
            "Register/Request",
            QoS::AtLeastOnce,
            false,
            register.clone(),
        )
        .await
        .unwrap();
        // Other platforms on the shared broker probe the device too: answer only this
        // engine's probes (their ids start with its client id).
        let id = loop {
            let request = tokio::time::timeout(Duration::from_secs(10), probes.recv())
                .await
                .unwrap_or_else(|_| panic!("no probe in round {round}"))
                .unwrap();
            let id: serde_json::Value = serde_json::from_slice(&request.payload).unwrap();
            if id["@id"]
                .as_str()
                .is_some_and(|i| i.starts_with(&format!("{client_id}-")))
            {
                break id;
            }
        };
        let tree = answers.lock().unwrap().next().unwrap();
        let answer = serde_json::json!({"@id": id["@id"], "code": "ok", "probe": tree});
        mqtt.publish(
            format!("Probe/Query/Response/{device}"),
            QoS::AtLeastOnce,
            false,
            answer.to_string(),
        )
        .await
        .unwrap();
        // Probes of one device within a second are one probe: let the next round ask anew.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    let items_url = format!("{base}/api/v1/devices/{device}/items");
    let deadline = Instant::now() + Duration::from_secs(10);
    let items = loop {
        let (code, items) = get_json(&items_url).await;
        if code == 200 && items.as_array().is_some_and(|a| a.len() == 6_000) {
            break items;
        }
        assert!(Instant::now() < deadline, "the heavy model was not taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let path = items[0]["path"].as_str().unwrap();
    assert_eq!(path.split('/').count(), 31);
    assert!(
        path.split('/').all(|name| name.len() <= 256),
        "names are cut"
    );
    // (Answers to the other platforms' probes are unsolicited here.)
    let letters = status(&base).await["source"]["dead_letters"].clone();
    assert_eq!(
        letters["wrong_shape"],
        2,
        "{letters}\n{}",
        log_tail(&config)
    );
    let unsolicited = letters["unsolicited"].as_u64().unwrap();
    // Nothing asked for this one: it is refused and the model stays.
    mqtt.publish(
        format!("Probe/Query/Response/{device}"),
        QoS::AtLeastOnce,
        false,
        serde_json::json!({"code":"ok","probe": model(1, "swap", 1)}).to_string(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead_letters(&base, "unsolicited").await <= unsolicited {
        assert!(Instant::now() < deadline, "no unsolicited dead letter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, items) = get_json(&items_url).await;
    assert_eq!(
        items.as_array().unwrap().len(),
        6_000,
        "the model was not replaced"
    );
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < 200 << 20,
        "peak RSS grew by {} MB for three bombs",
        grown >> 20
    );
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn overflowing_and_invalid_times_in_requests_get_400_with_a_reason() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-params");
    let lake = format!(
        "[[sinks]]\nname = \"lake\"\nkind = \"parquet\"\ndir = \"{}/lake\"\n",
        dir.path().display()
    );
    let config = pipeline(dir.path(), port, &client_id, "", &lake);
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let device = unique("PARAMS");
    let mqtt = client("attack-params-pub", |_| {});
    mqtt.publish(
        format!("Sample/{device}/c"),
        QoS::AtLeastOnce,
        false,
        sample(&now_ms().to_string(), "x", &[1.0]),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_json(&format!("{base}/api/v1/latest?device={device}"))
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "the device never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let windows = format!("{base}/api/v1/windows?device={device}&item=x&size=1s");
    let history = format!("{base}/api/v1/history?device={device}&item=x&every=1m");
    for query in [
        format!("{windows}&from=99999999999999999-01-01T00:00:00Z"),
        format!("{windows}&from=2025-02-30T00:00:00Z"),
        format!("{windows}&to=9223372036854775807"),
        format!("{windows}&from=-9223372036854775808"),
        format!("{windows}&from=2025-11-25T16:00:00%2B24:00"),
        format!("{windows}&limit=18446744073709551616"),
        format!("{windows}&from=2"),
        format!("{history}&from=0000-01-01T00:00:00Z&to=9999-12-31T23:59:59Z"),
        format!("{history}&to=-9223372036854775808"),
        format!("{history}&every=9999999999999h"),
        format!("{history}&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
    ] {
        let (code, body) = get_json(&query).await;
        if query.ends_with("from=2") {
            assert_eq!(code, 200, "{query}: a time in ms is fine ({body})");
            continue;
        }
        assert_eq!(code, 400, "{query}: {body}");
        let reason = body["error"].as_str().unwrap_or_default();
        assert!(!reason.is_empty() && reason.len() < 400, "{query}: {body}");
    }
    assert_eq!(get_json(&format!("{base}/api/v1/health")).await.0, 200);
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_foreign_host_or_page_is_refused_and_pages_carry_a_security_policy() {
    require_broker(&broker_url());
    millstream::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-http");
    let token = "attack-http-token-1234";
    let config = pipeline(
        dir.path(),
        port,
        &client_id,
        &format!("token = \"{token}\""),
        "",
    );
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    let http = reqwest::Client::new();
    let get = |host: &str| {
        http.get(format!("{base}/api/v1/status"))
            .header("host", host.to_string())
            .send()
    };
    // DNS rebinding: the attacker's domain now points here; the browser says so in Host.
    assert_eq!(
        get("rebind.attacker.example:80").await.unwrap().status(),
        403
    );
    assert_eq!(
        get(&format!("127.0.0.1:{port}")).await.unwrap().status(),
        200
    );
    assert_eq!(
        get(&format!("localhost:{port}")).await.unwrap().status(),
        200
    );
    // A foreign page posting (even with the token: it may have been leaked to the page).
    let query = |origin: Option<&str>, auth: Option<&str>| {
        let mut request = http
            .post(format!("{base}/api/v1/query"))
            .header("content-type", "application/json")
            .body(r#"{"device":"NOBODY-ATTACK","items":["x"]}"#);
        if let Some(origin) = origin {
            request = request.header("origin", origin.to_string());
        }
        if let Some(auth) = auth {
            request = request.header("authorization", auth.to_string());
        }
        request.send()
    };
    let bearer = format!("Bearer {token}");
    let lower = format!("bearer {token}");
    let own = format!("http://127.0.0.1:{port}");
    for (origin, auth, want) in [
        (Some("http://evil.example"), Some(bearer.as_str()), 403),
        (Some("null"), Some(bearer.as_str()), 403),
        (None, None, 401),
        (None, Some("Bearer wrong-token-1234567"), 401),
        // Past the guard: the device is unknown.
        (None, Some(bearer.as_str()), 404),
        (Some(own.as_str()), Some(lower.as_str()), 404),
    ] {
        let got = query(origin, auth).await.unwrap();
        assert_eq!(
            got.status().as_u16(),
            want,
            "origin {origin:?}, auth {auth:?}"
        );
    }
    let cross_site = http
        .post(format!("{base}/api/v1/poll"))
        .header("sec-fetch-site", "cross-site")
        .header("authorization", bearer.clone())
        .header("content-type", "application/json")
        .body(r#"{"interval":null}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let page = http.get(format!("{base}/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

#[test]
fn an_open_bind_without_a_token_is_refused_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = pipeline(dir.path(), port, &unique("attack-open"), "", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
    std::fs::write(&config, text).unwrap();
    for command in ["run", "check"] {
        let out = millstream()
            .args([command, "-c"])
            .arg(&config)
            .args(if command == "check" {
                &["--offline"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("http.listen") && stderr.contains("http.token"),
            "{command}: {stderr}"
        );
    }
    let out = millstream()
        .args(["demo", "--http", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
}

/// Samples of `device` in the SQLite database `db` (0 while it does not exist yet).
async fn sqlite_count(db: &Path, devices: &[String]) -> u64 {
    if !db.exists() {
        return 0;
    }
    let pool = sqlite_at(db).await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM samples WHERE device IN ({})",
        sql_list(devices)
    )))
    .fetch_one(&pool)
    .await
    .unwrap_or(0);
    pool.close().await;
    n as u64
}

/// Waits until `count()` reaches `want` (failing after `timeout` with the last count).
async fn wait_for_count<F, Fut>(timeout: Duration, what: &str, want: u64, mut count: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let n = count().await;
        if n == want {
            return;
        }
        assert!(n < want, "{what}: {n} rows, more than the {want} published");
        assert!(Instant::now() < deadline, "{what}: {n} of {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_torn_and_bit_flipped_wal_segment_is_reported_and_ingesting_goes_on() {
    use millstream::id::Id;
    use millstream::sample::Sample;
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-wal");
    let config = pipeline(dir.path(), port, &client_id, "", "");
    // What a crash left: three records, the second damaged by a bad sector, the third cut.
    let wal = dir.path().join("state/wal");
    std::fs::create_dir_all(&wal).unwrap();
    let device = unique("WAL");
    let d: Id = Id::from(device.as_str());
    let stats = std::sync::Arc::new(millstream::wal::WalStats::default());
    let mut writer = millstream::wal::segment::Writer::new(wal.clone(), 0, stats);
    let t0 = now_ms() - 60_000;
    for record in 0..3 {
        let batch: Vec<Sample> = (0..10)
            .map(|k| Sample::number(d.clone(), Id::from("x"), t0 + record * 100 + k, 1.0))
            .collect();
        assert!(writer.append(&batch.into(), &[]));
    }
    assert!(writer.sync());
    drop(writer);
    let segment = millstream::wal::segment::path(&wal, 0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let second = millstream::frame::resync(&bytes, 9).unwrap();
    bytes[second + millstream::frame::HEADER + 40] ^= 0x08;
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&segment, &bytes).unwrap();

    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    let s = status(&base).await;
    assert_eq!(s["wal"]["recovered_samples"], 10, "{s}");
    assert_eq!(s["wal"]["corrupt_records"], 1, "{s}");
    assert_eq!(s["wal"]["torn_records"], 1, "{s}");
    let kept = std::fs::read_dir(wal.join("corrupt")).unwrap().count();
    assert_eq!(kept, 1, "the damaged segment is kept for inspection");
    let db = dir.path().join("db.sqlite");
    let devices = vec![device.clone()];
    wait_for_count(Duration::from_secs(20), "recovered", 10, || {
        sqlite_count(&db, &devices)
    })
    .await;
    // And it goes on ingesting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mqtt = client("attack-wal-pub", |_| {});
    mqtt.publish(
        format!("Sample/{device}/c"),
        QoS::AtLeastOnce,
        false,
        sample(&now_ms().to_string(), "x", &[1.0, 2.0, 3.0]),
    )
    .await
    .unwrap();
    wait_for_count(Duration::from_secs(20), "after the replay", 13, || {
        sqlite_count(&db, &devices)
    })
    .await;
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

/// Simulated machines publishing until stopped; returns what they published when stopped.
struct Machines(millstream::sim::SimHandle);

impl Machines {
    fn start(slot: u64, n: u64) -> (Machines, Vec<String>) {
        let first = device_base(slot);
        let mut options = millstream::sim::SimOptions::new(broker_url(), n);
        options.base = first;
        options.seed = slot;
        options.sample_interval_ms = Some(100);
        options.upload_interval_ms = Some(500);
        let devices = (first..first + n).map(millstream::sim::device_id).collect();
        (
            Machines(millstream::sim::start(options, None).unwrap()),
            devices,
        )
    }

    async fn stop(self) -> u64 {
        let stats = self.0.stats.clone();
        self.0.shutdown().await;
        stats.samples.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A TCP proxy in front of the MySQL server (to cut it), and a pipeline's MySQL sink through
/// it into `db` — queue of one, so batches spool at once — with 1 s checkpoints.
async fn mysql_behind_a_proxy(db: &str) -> (crate::stores::Proxy, String) {
    let target = crate::stores::mysql_server()
        .trim_start_matches("mysql://")
        .rsplit('@')
        .next()
        .unwrap()
        .to_string();
    let proxy = crate::stores::Proxy::start(&target).await;
    let sink = format!(
        "[[sinks]]\nname = \"mysql\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:{}/{db}\"\nqueue = 1\nlinger = \"200ms\"\n[wal]\ncheckpoint = \"1s\"\n",
        proxy.port
    );
    (proxy, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto and MariaDB (scripts/test)"]
async fn a_mysql_outage_longer_than_a_checkpoint_then_kill_9_and_a_torn_spool_lose_nothing() {
    use crate::stores::*;
    require_broker(&broker_url());
    require(&mysql_server(), "MySQL/MariaDB server");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-outage");
    let db = database("attack_outage");
    let (proxy, sink) = mysql_behind_a_proxy(&db).await;
    let config = pipeline(dir.path(), port, &client_id, "", &sink);
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (machines, devices) = Machines::start(21, 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The outage: several checkpoints come and go while MySQL is away and the sink's batch,
    // queue and spool hold what it has not written.
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mysql_status = sink_status(&base, "mysql").await;
    assert!(
        mysql_status["spooled_bytes"].as_u64().unwrap() > 0,
        "{mysql_status}"
    );
    engine[0].kill().unwrap();
    engine[0].wait().unwrap();
    // The crash cut the spool's last record short.
    let spool = dir.path().join("state/spool/mysql");
    let newest = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .max()
        .expect("a spool segment");
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    proxy.restore();
    engine.0 = vec![start(&config)];
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let published = machines.stop().await;
    wait_for_count(Duration::from_secs(60), "MySQL", published, || {
        mysql_sample_count(&db, &devices)
    })
    .await;
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(30)));
    assert_eq!(code, Some(0));
    drop_mysql(&db).await;
    forget_session(&client_id).await;
}

/// A small tmpfs mounted for a test (a full disk on demand), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs at {} (root needed)", at.display());
        SmallDisk(at)
    }

    /// Fills the disk but for about `left` bytes (again, if the engine freed some).
    fn fill(&self, left: u64) {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let len = std::fs::metadata(&path).unwrap().len();
        file.set_len(len.saturating_sub(left)).unwrap();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto and root for a tmpfs (scripts/test)"]
async fn a_full_disk_under_the_wal_acknowledges_nothing_undurable_and_recovers_by_itself() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("state"), "4m");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-enospc");
    let config = pipeline(
        dir.path(),
        port,
        &client_id,
        "",
        "[wal]\ncheckpoint = \"1s\"\n",
    );
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (machines, devices) = Machines::start(22, 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = dir.path().join("db.sqlite");

    // Full: writes to the log fail, nothing is acknowledged.
    disk.fill(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&base).await["wal"]["write_errors"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        // (Checkpoints delete segments: fill what they free.)
        disk.fill(0);
        assert!(Instant::now() < deadline, "the log never failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Room again, no restart: the broker sends the unacknowledged messages again, the log
    // takes them, and the engine goes on.
    disk.free();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let errors = status(&base).await["wal"]["write_errors"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&base).await["wal"]["write_errors"].as_u64().unwrap(),
        errors,
        "the log writes again"
    );

    // Full again, and a crash while it is: what was not acknowledged comes again after the
    // restart; every sample ends up stored exactly once.
    disk.fill(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&base).await["wal"]["write_errors"]
        .as_u64()
        .unwrap_or(0)
        == errors
    {
        // (Checkpoints delete segments: fill what they free.)
        disk.fill(0);
        assert!(Instant::now() < deadline, "the log never failed again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    engine[0].kill().unwrap();
    engine[0].wait().unwrap();
    disk.free();
    engine.0 = vec![start(&config)];
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let published = machines.stop().await;
    wait_for_count(Duration::from_secs(60), "SQLite", published, || {
        sqlite_count(&db, &devices)
    })
    .await;
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto and root for a tmpfs (scripts/test)"]
async fn a_full_disk_under_the_dead_letters_acknowledges_no_refusal_until_it_is_written() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("state"), "4m");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-dead-full");
    let config = pipeline(dir.path(), port, &client_id, "", "");
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    disk.fill(0);
    let marker = unique("REFUSED");
    let mqtt = client("attack-dead-full-pub", |_| {});
    for k in 0..5 {
        mqtt.publish(
            format!("Sample/{marker}/c"),
            QoS::AtLeastOnce,
            false,
            format!("not json {marker} {k}"),
        )
        .await
        .unwrap();
    }
    let write_errors = || async {
        status(&base).await["source"]["dead_letter_write_errors"]
            .as_u64()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while write_errors().await == 0 {
        assert!(Instant::now() < deadline, "no dead letter failed to write");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Room again, no restart: the broker sends the refused messages again (the engine
    // reconnects for them) and each is kept.
    disk.free();
    let kept = |k: u32| {
        let text: String = millstream::dead_letter::list(&dir.path().join("state/dead-letters"))
            .unwrap_or_default()
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect();
        text.contains(&format!("not json {marker} {k}"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(0..5).all(kept) {
        assert!(
            Instant::now() < deadline,
            "dead letters missing after the disk had room: {}",
            log_tail(&config)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        log_text(&config).contains("cannot flush dead letters"),
        "the disk never refused them"
    );
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    drop(disk);
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto, InfluxDB and root for a tmpfs (scripts/test)"]
async fn a_full_disk_under_the_rejected_files_keeps_a_refused_row_and_writes_it_once_there_is_room()
{
    use crate::stores::*;
    require_broker(&broker_url());
    let edge = influx_edge();
    require(&edge, "InfluxDB edge");
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("state"), "4m");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-rejected-full");
    let influx_db = database("attack_rejected_full");
    let sink = format!(
        "[[sinks]]\nname = \"edge\"\nkind = \"influx\"\nurl = \"{edge}\"\ndatabase = \"{influx_db}\"\nlinger = \"200ms\"\n[wal]\ncheckpoint = \"1s\"\n"
    );
    let config = pipeline(dir.path(), port, &client_id, "", &sink);
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    disk.fill(0);
    // InfluxDB 1.x cannot take a tag ending in a backslash: that row is set aside alone.
    let device = unique("REJECTFULL");
    let topic = format!("Sample/{device}/c");
    let mqtt = client("attack-rejected-full-pub", |_| {});
    let t = now_ms() - 5_000;
    for (item, v) in [("ends\\\\", 1.0), ("good", 2.0)] {
        mqtt.publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            sample(&t.to_string(), item, &[v]),
        )
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_text(&config).contains("refused rows are held in memory") {
        assert!(
            Instant::now() < deadline,
            "the rejected files never failed: {}",
            log_tail(&config)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Room again, no restart: the refused row is kept once, and checkpoints go on.
    disk.free();
    let rejected = dir.path().join("state/rejected/edge");
    let lines = || -> Vec<String> {
        millstream::rotating::list(&rejected, "rejected-", ".jsonl")
            .unwrap_or_default()
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|l| l.contains(&device))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the refused row never reached the rejected files: {}",
            log_tail(&config)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_checkpoints(&base, 2, Duration::from_secs(30)).await;
    let kept = lines();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let record: serde_json::Value = serde_json::from_str(&kept[0]).unwrap();
    assert_eq!(record["samples"][0]["item"], "ends\\");
    let points = influx_query(
        &edge,
        None,
        &influx_db,
        &format!("SELECT count(value) FROM samples WHERE device = '{device}'"),
    )
    .await;
    assert_eq!(points[0]["count"], 1, "the good row is stored: {points:?}");
    assert!(log_text(&config).contains("the rejected files take the held rows again"));
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    drop(disk);
    forget_session(&client_id).await;
}

/// Rows and distinct (device, item, ts) of `devices` in the lake's samples.
fn lake_rows(lake: &Path, devices: &[String]) -> (u64, u64) {
    use polars::prelude::*;
    if !lake.join("samples").exists() {
        return (0, 0);
    }
    let frame = scan_lake(lake, "samples")
        .group_by([col("device"), col("item"), col("ts")])
        .agg([len().alias("n")])
        .collect()
        .unwrap();
    let device = frame.column("device").unwrap().str().unwrap().clone();
    let n = frame.column("n").unwrap().u32().unwrap().clone();
    let mut rows = (0, 0);
    for (d, n) in device.iter().zip(n.iter()) {
        if d.is_some_and(|d| devices.iter().any(|w| w == d)) {
            rows.0 += u64::from(n.unwrap_or(0));
            rows.1 += 1;
        }
    }
    rows
}

/// A sink's entry in `/api/v1/status`.
async fn sink_status(base: &str, name: &str) -> serde_json::Value {
    status(base).await["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

/// Waits until the write-ahead log is back to at most `segments` segments (checkpoints let go
/// of it again).
async fn wait_for_checkpoints(base: &str, segments: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(base).await["wal"]["segments"].as_u64().unwrap();
        if now <= segments {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the log still has {now} segments: checkpoints never resumed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto and root for a tmpfs (scripts/test)"]
async fn a_full_disk_under_the_lake_holds_its_rows_and_writes_them_once_there_is_room() {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let disk = SmallDisk::mount(lake.clone(), "4m");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-lake");
    let sink = format!(
        "[[sinks]]\nname = \"lake\"\nkind = \"parquet\"\ndir = \"{}\"\nroll_age = \"1s\"\n[wal]\ncheckpoint = \"1s\"\n",
        lake.display()
    );
    let config = pipeline(dir.path(), port, &client_id, "", &sink);
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (machines, devices) = Machines::start(23, 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    disk.fill(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink_status(&base, "lake").await["failed"].as_u64().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the lake never failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // While it cannot write, the log keeps everything the lake holds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let wal_segments = status(&base).await["wal"]["segments"].as_u64().unwrap();
    assert!(
        wal_segments > 2,
        "the log was let go of: {wal_segments} segments"
    );
    // Room again, no restart: the held rows are written, and checkpoints let go of the log.
    disk.free();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let published = machines.stop().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (rows, distinct) = tokio::task::block_in_place(|| lake_rows(&lake, &devices));
        assert_eq!(rows, distinct, "a row written twice");
        if distinct == published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lake holds {distinct} of {published}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for_checkpoints(&base, 2, Duration::from_secs(30)).await;
    let lake_status = sink_status(&base, "lake").await;
    assert!(
        lake_status["retries"].as_u64().unwrap() > 0,
        "{lake_status}"
    );
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));
    assert!(
        log_text(&config).contains("every row of the failed files is in complete files"),
        "{}",
        log_tail(&config)
    );
    drop(disk);
    forget_session(&client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto, MariaDB and root for a tmpfs (scripts/test)"]
async fn a_full_disk_under_the_spool_during_a_mysql_outage_loses_nothing_and_needs_no_restart() {
    use crate::stores::*;
    require_broker(&broker_url());
    require(&mysql_server(), "MySQL/MariaDB server");
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("state"), "8m");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-spool-full");
    let db = database("attack_spool_full");
    let (proxy, sink) = mysql_behind_a_proxy(&db).await;
    let config = pipeline(dir.path(), port, &client_id, "", &sink);
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (machines, devices) = Machines::start(24, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // MySQL away: batches spool. Then the spool's disk (the log's too) is full.
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink_status(&base, "mysql").await["spooled_bytes"]
        .as_u64()
        .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "nothing spooled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    disk.fill(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_text(&config).contains("batches are held in memory") {
        disk.fill(0);
        assert!(
            Instant::now() < deadline,
            "the spool never refused: {}",
            log_tail(&config)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Room again, MySQL back, no restart: every sample reaches it once, and the log is let go.
    disk.free();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let published = machines.stop().await;
    wait_for_count(Duration::from_secs(60), "MySQL", published, || {
        mysql_sample_count(&db, &devices)
    })
    .await;
    wait_for_checkpoints(&base, 2, Duration::from_secs(30)).await;
    let mysql = sink_status(&base, "mysql").await;
    assert_eq!(mysql["dropped"].as_u64().unwrap(), 0, "{mysql}");
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(30)));
    assert_eq!(code, Some(0));
    assert!(
        log_text(&config).contains("the disk takes the spool again"),
        "{}",
        log_tail(&config)
    );
    drop(disk);
    drop_mysql(&db).await;
    forget_session(&client_id).await;
}

/// Points of `devices` in the InfluxDB database `db` of the edge server.
async fn influx_points(db: &str, devices: &[String]) -> u64 {
    let rows = crate::stores::influx_query(
        &crate::stores::influx_edge(),
        None,
        db,
        "SELECT * FROM samples",
    )
    .await;
    rows.iter()
        .filter(|r| devices.iter().any(|d| r["device"] == d.as_str()))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto, MariaDB and influxd (scripts/test)"]
async fn odd_ids_and_unstorable_values_in_one_batch_leave_every_good_row_stored() {
    use crate::stores::*;
    use millstream::id::Id;
    use millstream::sample::Sample;
    require_broker(&broker_url());
    require(&mysql_server(), "MySQL/MariaDB server");
    let edge = influx_edge();
    require(&edge, "InfluxDB edge");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client_id = unique("attack-rows");
    let (sql_db, influx_db) = (database("attack_rows"), database("attack_rows_edge"));
    let sinks = format!(
        r#"[[sinks]]
name = "mysql"
kind = "mysql"
url = "{}/{sql_db}"
linger = "200ms"
[[sinks]]
name = "edge"
kind = "influx"
url = "{edge}"
database = "{influx_db}"
linger = "200ms"
"#,
        mysql_server()
    );
    let config = pipeline(dir.path(), port, &client_id, "", &sinks);

    let device = unique("ODD");
    // The same database holds the field `text` as an integer already (a shared database; field
    // types hold per measurement): InfluxDB refuses the one text sample of the batch, which is
    // bisected down to that row.
    let conflict = format!(
        "samples,device={device},item=conflict text=1i {}",
        now_ms() - 60_000
    );
    millstream::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    http.post(format!("{edge}/query?q=CREATE%20DATABASE%20{influx_db}"))
        .send()
        .await
        .unwrap();
    let wrote = http
        .post(format!("{edge}/write?db={influx_db}&precision=ms"))
        .body(conflict)
        .send()
        .await
        .unwrap();
    assert_eq!(wrote.status(), 204);
    // Live, from the wire: ids that are awkward for line protocol and SQL, and values at the
    // ends of what a double holds (1e400 is no double: it arrives as text).
    let mut engine = Children(vec![start(&config)]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let items = [
        "ends\\\\",
        "a,b=c d",
        "q\\\"'`;--",
        "主轴负载率",
        &"主".repeat(21),
        "huge",
        "tiny",
        "negzero",
        "max",
        "conflict",
    ];
    let values = [
        "1",
        "2",
        "3",
        "4",
        "5",
        "1e400",
        "5e-324",
        "-0.0",
        "1.7976931348623157e308",
        "6",
    ];
    let paths: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    let rows: Vec<String> = values.iter().map(|v| format!("[{v}]")).collect();
    let payload = format!(
        r#"{{"beginTime":{},"interval":10,"paths":[{}],"data":[{}]}}"#,
        now_ms(),
        paths.join(","),
        rows.join(",")
    );
    let mqtt = client("attack-rows-pub", |_| {});
    mqtt.publish(
        format!("Sample/{device}/c"),
        QoS::AtLeastOnce,
        false,
        payload,
    )
    .await
    .unwrap();
    let live = vec![device.clone()];
    wait_for_count(Duration::from_secs(20), "MySQL, live", 10, || {
        mysql_sample_count(&sql_db, &live)
    })
    .await;
    // InfluxDB: the 8 numbers it can take, the integer written before, and two set aside
    // alone: the id 1.x cannot hold, and the text the server refuses.
    let state = dir.path().join("state");
    let deadline = Instant::now() + Duration::from_secs(20);
    while rejected_rows(&state, "edge", &device).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "set aside: {:?}",
            rejected_rows(&state, "edge", &device)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(influx_points(&influx_db, &live).await, 8 + 1);
    let mut set_aside: Vec<String> = rejected_rows(&state, "edge", &device)
        .iter()
        .map(|r| r["item"].as_str().unwrap().to_string())
        .collect();
    set_aside.sort();
    assert_eq!(set_aside, ["ends\\", "huge"]);
    let code =
        tokio::task::block_in_place(|| interrupt_and_wait(&mut engine[0], Duration::from_secs(20)));
    assert_eq!(code, Some(0));

    // From a lake file (the engine's own format, which anyone with the directory can write):
    // one batch with rows each store takes, and rows only one of them can.
    let lake = dir.path().join("crafted-lake");
    let mut writer = millstream::lake::writer::Lake::new(
        lake.clone(),
        millstream::lake::writer::LakeOptions {
            roll_rows: 1_000_000,
            roll_age: Duration::from_secs(3_600),
            writer: "crafted".into(),
            skip_existing: None,
        },
    );
    let replayed = unique("CRAFTED");
    let d: Id = Id::from(replayed.as_str());
    let t = now_ms() - 3_600_000;
    let long_item: Id = Id::from("i".repeat(100)); // beyond VARCHAR(64): MySQL cannot
    let mut batch: Vec<Sample> = (0..20)
        .map(|k| Sample::number(d.clone(), Id::from("good"), t + k, k as f64))
        .collect();
    batch.push(Sample::number(d.clone(), long_item, t, 1.0));
    // Year 1500: MySQL's DATETIME holds it, InfluxDB's nanoseconds do not.
    let old = -14_831_769_600_000;
    batch.push(Sample::number(d.clone(), Id::from("old"), old, 1.0));
    // Not numbers: NULL in MySQL, nothing to write in InfluxDB (skipped, not failed).
    batch.push(Sample::number(d.clone(), Id::from("nan"), t, f64::NAN));
    batch.push(Sample::number(d.clone(), Id::from("inf"), t, f64::INFINITY));
    writer.write_samples(&batch.into()).unwrap();
    writer.finish().unwrap();
    let out = tokio::task::block_in_place(|| {
        millstream()
            .args(["replay", "--quiet", "-c"])
            .arg(&config)
            .arg(format!("lake:{}", lake.display()))
            .args([
                "--from",
                "1400-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
            ])
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crafted = vec![replayed.clone()];
    // MySQL: the 20 good rows, the year-1500 row and the two without a number; the long id
    // set aside alone.
    assert_eq!(mysql_sample_count(&sql_db, &crafted).await, 23);
    let refused = rejected_rows(&state, "mysql", &replayed);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["item"].as_str().unwrap().len(), 100);
    // InfluxDB: the 20 good rows and the long id; the year-1500 row set aside alone.
    assert_eq!(influx_points(&influx_db, &crafted).await, 21);
    let refused = rejected_rows(&state, "edge", &replayed);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused.iter().any(|r| r["ts"].as_i64() == Some(old)));
    drop_mysql(&sql_db).await;
    forget_session(&client_id).await;
}
