//! Polling set from the API on a running engine (the Collection page's polling settings):
//! the machines are asked for the chosen item at the chosen interval (only their Query answers
//! carry it), the settings read back, and stopping stops the requests.

use std::time::Duration;

use millstream::engine::{Engine, EngineSettings};
use millstream::sim::{self, SimOptions, device_id};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn polling_set_from_the_api_asks_the_machines_and_stops_on_request() {
    let url = broker_url();
    require_broker(&url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        "state_dir = \"{d}/state\"\n[source]\nurl = \"{url}\"\nclient_id = \"{}\"\nclean_session = true\n\
         [windows]\ntumbling = [\"1s\"]\n",
        unique("poll")
    );
    let config = millstream::config::load_str(&text, "pipeline.toml", |_| None).unwrap();
    let settings = EngineSettings {
        workers: 1,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..EngineSettings::default()
    };
    let engine = Engine::start(config, settings).await.unwrap();
    let base = format!("http://{}", engine.http_addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = device_base(12);
    let device = device_id(first);
    let mut options = SimOptions::new(url.clone(), 1);
    options.base = first;
    let sim = sim::start(options, None).unwrap();

    millstream::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let set = |body: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/poll");
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // The X axis' name: no Sample channel carries it, only a Query's answer.
    // Only this test's machine: polling every machine on the shared broker would put answers
    // into the other tests' stores.
    let (status, answer) = set(format!(
        r#"{{"interval":"300ms","items":["01035001"],"devices":["{device}"]}}"#
    ))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["poll"]["interval"], "300ms");
    let (_, read) = get_json(&format!("{base}/api/v1/poll")).await;
    assert_eq!(read, answer);
    wait_until(Duration::from_secs(15), "the polled item arrives", || {
        let view = engine.state.views.latest(&device);
        view.is_some_and(|items| items.iter().any(|(item, _)| &**item == "01035001"))
    })
    .await;
    let (_, status) = get_json(&format!("{base}/api/v1/status")).await;
    assert!(
        status["source"]["query_requests"].as_u64().unwrap() >= 1,
        "{status}"
    );

    // Stopped: no more requests.
    let (code, answer) = set(r#"{"interval":null}"#.to_string()).await;
    assert_eq!((code, answer["poll"].is_null()), (200, true), "{answer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, before) = get_json(&format!("{base}/api/v1/status")).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (_, after) = get_json(&format!("{base}/api/v1/status")).await;
    assert_eq!(
        after["source"]["query_requests"],
        before["source"]["query_requests"]
    );

    sim.shutdown().await;
    engine.shutdown().await.unwrap();
}
