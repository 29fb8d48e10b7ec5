//! Machines that upload what they buffered during a short network drop (issue 19): their
//! samples are seconds old and out of order within `allowed_lateness`, and none of them may be
//! late — lateness is measured against each key's own newest event time, never the wall clock
//! or another machine's.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::support::*;

const CHANNEL: &str = "sample_channel0";
const SPEED: &str = "0103502202";

/// A model with one channel: STATUS, a numeric item and the program name, every 10 ms.
fn model() -> serde_json::Value {
    serde_json::json!({"devices": [{
        "name": "late uploader",
        "dataItems": [
            {"id": "010302", "name": "status", "type": "STATUS"},
            {"id": SPEED, "name": "speed", "type": "SPEED"},
            {"id": "01035409", "name": "program", "type": "PROGRAM"}
        ],
        "configs": [{"id": CHANNEL, "type": "SAMPLE_CHANNEL", "sampleInterval": 10,
                     "uploadInterval": 1000, "ids": ["010302", SPEED, "01035409"]}]
    }]})
}

/// One second of samples from `begin`: 100 values of each item.
fn second(begin: i64) -> String {
    let speeds: Vec<String> = (0..100).map(|k| format!("{}", 100 + k)).collect();
    serde_json::json!({
        "id": CHANNEL,
        "beginTime": begin.to_string(),
        "data": [
            {"data": vec![1; 100]},
            {"data": serde_json::from_str::<serde_json::Value>(&format!("[{}]", speeds.join(","))).unwrap()},
            {"data": vec!["O1001"; 100]}
        ]
    })
    .to_string()
}

/// A device on the machine's broker that answers this engine's probes with [`model`].
async fn device(id: &str, engine_client: &str) -> AsyncClient {
    let url = broker_url();
    let options = MqttOptions::new(unique("late-device"), url.host.clone(), url.port);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let answers = client.clone();
    let (id_owned, prefix) = (id.to_string(), format!("{engine_client}-"));
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let request: serde_json::Value =
                        serde_json::from_slice(&p.payload).unwrap_or_default();
                    // Other platforms on the shared broker probe it too: answer only ours.
                    if let Some(rid) = request["@id"].as_str()
                        && rid.starts_with(&prefix)
                    {
                        let answer =
                            serde_json::json!({"@id": rid, "code": "ok", "probe": model()});
                        let _ = answers
                            .publish(
                                format!("Probe/Query/Response/{id_owned}"),
                                QoS::AtLeastOnce,
                                false,
                                answer.to_string(),
                            )
                            .await;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
        .subscribe(format!("Probe/Query/Request/{id}"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .publish(
            "Register/Request",
            QoS::AtLeastOnce,
            false,
            serde_json::json!({ "deviceid": id }).to_string(),
        )
        .await
        .unwrap();
    client
}

struct Engine {
    child: Children,
    base: String,
    client_id: String,
    _dir: tempfile::TempDir,
}

async fn engine(poll: bool) -> Engine {
    engine_with(poll, "").await
}

/// An engine with `windows` keys added to its `[windows]` section.
async fn engine_with(poll: bool, windows: &str) -> Engine {
    require_broker(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client_id = unique("late");
    let config = dir.path().join("pipeline.toml");
    // Polling asks the test's devices for their speed; they never answer Query. (Only them:
    // polling every machine on the shared broker would put answers into other tests' stores.)
    let poll = if poll {
        format!(
            "poll = {{ interval = \"1s\", items = [\"{SPEED}\"], devices = [\"LATE-*\", \"LIVE-*\"] }}"
        )
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[source]
url = "{url}"
client_id = "{client_id}"
{poll}
[windows]
tumbling = ["1s", "10s"]
allowed_lateness = "2s"
{windows}
[http]
listen = "127.0.0.1:{port}"
"#,
            d = dir.path().display(),
            url = broker_url()
        ),
    )
    .unwrap();
    let child: Child = millstream()
        .args(["run", "--workers", "2", "-c"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let child = Children(vec![child]);
    wait_for_http(&base, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Engine {
        child,
        base,
        client_id,
        _dir: dir,
    }
}

impl Engine {
    async fn model_known(&self, device: &str) {
        let url = format!("{}/api/v1/devices/{device}/items", self.base);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, items) = get_json(&url).await;
            if code == 200
                && items
                    .as_array()
                    .is_some_and(|a| a.iter().any(|i| i["name"] == "speed"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "no model from {device}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The closed 1 s windows of `device`'s speed from `from` on: (start, count).
    async fn windows(&self, device: &str, from: i64) -> Vec<(i64, u64)> {
        let (_, body) = get_json(&format!(
            "{}/api/v1/windows?device={device}&item={SPEED}&size=1s&from={from}",
            self.base
        ))
        .await;
        body["windows"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|w| (w["start"].as_i64().unwrap(), w["count"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn late(&self) -> u64 {
        get_json(&format!("{}/api/v1/status", self.base)).await.1["source"]["late_samples"]
            .as_u64()
            .unwrap()
    }

    async fn stop(mut self) {
        let child = &mut self.child[0];
        let code =
            tokio::task::block_in_place(|| interrupt_and_wait(child, Duration::from_secs(20)));
        assert_eq!(code, Some(0));
        forget_session(&self.client_id).await;
    }
}

/// Sends ten seconds of buffered samples, 10–20 s old, in the order 1, 0, 3, 2, … 9, 8.
async fn upload_buffered(client: &AsyncClient, device: &str) -> i64 {
    upload_buffered_every(client, device, Duration::ZERO).await
}

/// [`upload_buffered`], a message every `gap`.
async fn upload_buffered_every(client: &AsyncClient, device: &str, gap: Duration) -> i64 {
    let t0 = (millstream::sample::now_ms() - 20_000).div_euclid(1_000) * 1_000;
    for pair in (0..10).step_by(2) {
        for k in [pair + 1, pair] {
            tokio::time::sleep(gap).await;
            client
                .publish(
                    format!("Sample/{device}/{CHANNEL}"),
                    QoS::AtLeastOnce,
                    false,
                    second(t0 + k * 1_000),
                )
                .await
                .unwrap();
        }
    }
    t0
}

async fn expect_ten_whole_windows(engine: &Engine, device: &str, t0: i64) {
    let want: Vec<(i64, u64)> = (0..10).map(|k| (t0 + k * 1_000, 100)).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = engine.windows(device, t0).await;
        if got.len() >= 10 {
            assert_eq!(got[..10], want[..], "windows of {device}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{device}: windows {got:?}, late samples {}",
            engine.late().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_machine_uploading_buffered_seconds_out_of_order_loses_nothing_to_lateness() {
    let engine = engine(true).await;
    let id = unique("LATE");
    let client = device(&id, &engine.client_id).await;
    engine.model_known(&id).await;
    let t0 = upload_buffered(&client, &id).await;
    expect_ten_whole_windows(&engine, &id, t0).await;
    assert_eq!(engine.late().await, 0, "nothing was late");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_delayed_machine_next_to_a_live_one_loses_nothing_to_lateness() {
    let engine = engine(true).await;
    let (live_id, late_id) = (unique("LIVE"), unique("LATE"));
    let live = device(&live_id, &engine.client_id).await;
    let late = device(&late_id, &engine.client_id).await;
    engine.model_known(&live_id).await;
    engine.model_known(&late_id).await;
    // The live machine streams current seconds all along.
    let streaming = tokio::spawn(async move {
        for _ in 0..20 {
            let now = millstream::sample::now_ms().div_euclid(1_000) * 1_000 - 1_000;
            let _ = live
                .publish(
                    format!("Sample/{live_id}/{CHANNEL}"),
                    QoS::AtLeastOnce,
                    false,
                    second(now),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = upload_buffered(&late, &late_id).await;
    expect_ten_whole_windows(&engine, &late_id, t0).await;
    streaming.await.unwrap();
    assert_eq!(engine.late().await, 0, "nothing was late");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_machine_resuming_after_a_long_pause_with_older_data_has_only_that_counted_late() {
    let engine = engine(false).await;
    let id = unique("PAUSE");
    let client = device(&id, &engine.client_id).await;
    engine.model_known(&id).await;
    let t0 = (millstream::sample::now_ms() - 30_000).div_euclid(1_000) * 1_000;
    let topic = format!("Sample/{id}/{CHANNEL}");
    client
        .publish(&topic, QoS::AtLeastOnce, false, second(t0 + 10_000))
        .await
        .unwrap();
    // A pause longer than idle_timeout (2 s): the key's watermark moves on with the clock from
    // where its data left it, and its window [t0+10 s, t0+11 s) closes.
    let deadline = Instant::now() + Duration::from_secs(15);
    while engine.windows(&id, t0).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the idle key's window never closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Data from before that window (older than the key's watermark now) is late: 200 numeric
    // samples counted, none in a window; data after it is not.
    client
        .publish(&topic, QoS::AtLeastOnce, false, second(t0))
        .await
        .unwrap();
    let resumed = millstream::sample::now_ms().div_euclid(1_000) * 1_000 + 5_000;
    client
        .publish(&topic, QoS::AtLeastOnce, false, second(resumed))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while engine.late().await < 200 {
        assert!(Instant::now() < deadline, "late: {}", engine.late().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(engine.late().await, 200, "only the older second is late");
    let windows = engine.windows(&id, t0).await;
    assert!(windows.iter().all(|(start, _)| *start != t0), "{windows:?}");
    assert_eq!(windows[0], (t0 + 10_000, 100));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn values_dated_ahead_of_their_arrival_cannot_make_a_machines_later_data_late() {
    let engine = engine(false).await;
    let id = unique("AHEAD");
    let client = device(&id, &engine.client_id).await;
    engine.model_known(&id).await;
    let topic = format!("Sample/{id}/{CHANNEL}");
    // A clock an hour ahead (or values spaced wider than they are): refused whole, so the
    // key's watermark never jumps an hour into the future.
    let now = millstream::sample::now_ms().div_euclid(1_000) * 1_000;
    client
        .publish(&topic, QoS::AtLeastOnce, false, second(now + 3_600_000))
        .await
        .unwrap();
    let t0 = upload_buffered(&client, &id).await;
    expect_ten_whole_windows(&engine, &id, t0).await;
    assert_eq!(engine.late().await, 0, "nothing was late");
    let (_, status) = get_json(&format!("{}/api/v1/status", engine.base)).await;
    assert_eq!(status["source"]["dead_letters"]["bad_time"], 1, "{status}");
    engine.stop().await;
}

/// The case behind issue 19: a machine trickles its backlog slower than `idle_timeout`, so its
/// keys go idle between messages and their frontier moves on with the wall clock. That may
/// close windows; it must not make the next, older second late (it did: 1,800 of 2,000
/// numeric samples late, one window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn a_machine_trickling_its_backlog_slower_than_the_idle_timeout_loses_nothing() {
    let engine = engine_with(false, "idle_timeout = \"500ms\"").await;
    let id = unique("LATE");
    let client = device(&id, &engine.client_id).await;
    engine.model_known(&id).await;
    let t0 = upload_buffered_every(&client, &id, Duration::from_millis(1_600)).await;
    expect_ten_whole_windows(&engine, &id, t0).await;
    assert_eq!(engine.late().await, 0, "nothing was late");
    engine.stop().await;
}
