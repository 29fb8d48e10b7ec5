//! Bad input among good input on the machine's Mosquitto: every good sample arrives, every bad
//! message is counted and dead-lettered with the right reason, and the source stays connected
//! (a 2 MiB payload must not drop the connection).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use millstream::nclink::encode::{self, QueryAnswer, WireValue};
use millstream::sim::{self, SimOptions, device_id};
use millstream::source::SourceEvent;
use rumqttc::{AsyncClient, MqttOptions, QoS};

use crate::support::{broker_url, device_base, require_broker, start_source, unique, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto on 127.0.0.1:1883 (scripts/test)"]
async fn bad_messages_are_dead_lettered_and_good_ones_all_arrive() {
    let url = broker_url();
    require_broker(&url);
    let state = tempfile::tempdir().unwrap();
    let (handle, mut events, metrics) = start_source(url.clone(), state.path(), |_| {});
    wait_until(Duration::from_secs(10), "source connected", || {
        handle.is_connected()
    })
    .await;

    // One simulated machine, so a device with a known model can get a Sample on a bad channel.
    let base = device_base(5);
    let machine = device_id(base);
    let mut options = SimOptions::new(url.clone(), 1);
    options.base = base;
    let sim = sim::start(options, None).unwrap();

    let good_device = unique("GOOD");
    let bad_device = unique("BAD");
    let mut mqtt = MqttOptions::new(unique("test-publisher"), url.host.clone(), url.port);
    mqtt.set_max_packet_size(4 << 20, 4 << 20);
    let (publisher, mut eventloop) = AsyncClient::new(mqtt, 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });

    // Wait until the machine's model is known, so `Sample/<machine>/nope` is an unknown channel.
    let mut model_known = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !model_known {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(SourceEvent::Model { device, .. })) if *device == *machine => {
                model_known = true
            }
            Ok(Some(_)) => {}
            _ => panic!("no model from {machine}"),
        }
    }

    let huge = vec![b' '; 2 << 20];
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (
            format!("Query/Response/{bad_device}"),
            b"this is not json".to_vec(),
            "malformed_json",
        ),
        (
            format!("Query/Response/{bad_device}"),
            br#"{"values":{"id":1}}"#.to_vec(),
            "wrong_shape",
        ),
        (
            format!("Query/Response/{bad_device}"),
            vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0xff],
            "malformed_json",
        ),
        (format!("Query/Response/{bad_device}"), huge, "too_large"),
        (
            format!("Sample/{machine}/nope"),
            br#"{"id":"nope","beginTime":"1","data":[]}"#.to_vec(),
            "unknown_channel",
        ),
        (
            format!("Probe/Version/{}", "x".repeat(70)),
            br#"{"version":"1.1"}"#.to_vec(),
            "unknown_topic",
        ),
    ];
    let good_messages = 20;
    for i in 0..good_messages {
        let mut payload = Vec::new();
        let id = format!("good-{i}");
        encode::query_response(
            &mut payload,
            Some(&id),
            &[
                (
                    "0103502202",
                    QueryAnswer::Ok(vec![WireValue::Number(i as f64)]),
                ),
                (
                    "010302",
                    QueryAnswer::Ok(vec![WireValue::Text("running".into())]),
                ),
            ],
        );
        publisher
            .publish(
                format!("Query/Response/{good_device}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
        if let Some((topic, payload, _)) = bad.get(i) {
            publisher
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                .await
                .unwrap();
        }
    }

    let mut good_samples = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while good_samples.len() < good_messages {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(SourceEvent::Samples(batch))) if *batch.device == *good_device => {
                assert_eq!(batch.samples.len(), 2);
                good_samples.insert(
                    batch.request_id.clone().unwrap(),
                    batch.samples[0].value.unwrap(),
                );
            }
            Ok(Some(_)) => {}
            _ => panic!(
                "only {} of {good_messages} good messages arrived",
                good_samples.len()
            ),
        }
    }
    for i in 0..good_messages {
        assert_eq!(good_samples[&format!("good-{i}")], i as f64);
    }
    wait_until(Duration::from_secs(10), "every bad message counted", || {
        metrics.source.dead_letters_total() >= bad.len() as u64
    })
    .await;

    // The source is still up and on the same connection: the 2 MiB message did not drop it.
    assert!(handle.is_connected());
    assert_eq!(metrics.source.connects.load(Ordering::Relaxed), 1);
    let machine_samples_before = metrics.source.samples.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "samples still flowing", || {
        metrics.source.samples.load(Ordering::Relaxed) > machine_samples_before
    })
    .await;

    sim.shutdown().await;
    handle.shutdown().await;

    // Dead letters on disk: one per bad message, with the right reason, topic and payload.
    let mut letters: Vec<serde_json::Value> = Vec::new();
    for file in millstream::dead_letter::list(&state.path().join("dead-letters")).unwrap() {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            letters.push(serde_json::from_str(line).unwrap());
        }
    }
    // Only this test's topics: other tests on the shared broker have their own.
    let mut expected: Vec<(String, &str)> = bad.iter().map(|(t, _, r)| (t.clone(), *r)).collect();
    let ours: Vec<&serde_json::Value> = letters
        .iter()
        .filter(|l| expected.iter().any(|(t, _)| l["topic"] == t.as_str()))
        .collect();
    let mut got: Vec<(String, &str)> = ours
        .iter()
        .map(|l| {
            (
                l["topic"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    let too_large = ours.iter().find(|l| l["reason"] == "too_large").unwrap();
    assert_eq!(too_large["payload_bytes"], 2 << 20);
    assert_eq!(too_large["truncated"], true);
    let binary = ours.iter().find(|l| l["payload_b64"].is_string()).unwrap();
    assert_eq!(binary["payload_b64"], "3q2+7wD/");
    let text = ours.iter().find(|l| l["reason"] == "wrong_shape").unwrap();
    assert_eq!(text["payload"], r#"{"values":{"id":1}}"#);
    // The counters agree with the files (at least: other tests' traffic may add to them).
    let counts = metrics.source.snapshot().dead_letters;
    for reason in [
        "malformed_json",
        "wrong_shape",
        "too_large",
        "unknown_channel",
        "unknown_topic",
    ] {
        let on_disk = ours.iter().filter(|l| l["reason"] == reason).count() as u64;
        assert!(
            counts[reason] >= on_disk,
            "{reason}: counted {} < {on_disk}",
            counts[reason]
        );
    }
}
