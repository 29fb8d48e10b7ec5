//! Broker restart: a private Mosquitto (persistence on) is stopped and restarted while the
//! source is consuming; the source reconnects by itself, resumes its persistent session, and
//! every QoS 1 message the broker accepted arrives (duplicates are allowed: at-least-once).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use millstream::source::SourceEvent;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::Mutex;

use crate::support::{PrivateBroker, start_source, unique, wait_until};

/// Publishes `from..to` as Query answers for `device` and waits until the broker acknowledged
/// every one of them.
async fn publish_acked(port: u16, device: &str, from: u64, to: u64) {
    let mut options = MqttOptions::new(unique("restart-publisher"), "127.0.0.1", port);
    options.set_inflight(50);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    let poller = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    for seq in from..to {
        let payload = format!(
            r#"{{"@id":"seq-{seq}","values":[{{"id":"010307","code":"OK","values":[{seq}]}}]}}"#
        );
        client
            .publish(
                format!("Query/Response/{device}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }
    let total = to - from;
    wait_until(
        Duration::from_secs(20),
        "broker acks for every publish",
        || acked.load(Ordering::Relaxed) >= total,
    )
    .await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the mosquitto binary (scripts/test)"]
async fn source_survives_a_broker_restart_without_losing_acknowledged_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = PrivateBroker::start(dir.path(), true);
    let state = tempfile::tempdir().unwrap();
    let device = unique("RESTART");
    let (handle, mut events, metrics) = start_source(broker.url(), state.path(), |o| {
        // The broker keeps our session (subscriptions and queued messages) across its restart.
        o.config.clean_session = false;
        // A small output channel and a slow consumer keep messages queued at the broker.
        o.capacity = 8;
    });
    wait_until(Duration::from_secs(10), "source connected", || {
        handle.is_connected()
    })
    .await;

    let received = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sink = received.clone();
    let device_name = device.clone();
    let consumer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let SourceEvent::Samples(batch) = event
                && *batch.device == *device_name
            {
                sink.lock()
                    .await
                    .push(batch.samples[0].value.unwrap() as u64);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    // First burst: accepted by the broker faster than the slow consumer takes it.
    publish_acked(broker.port, &device, 0, 2_000).await;
    let before_restart = received.lock().await.len();
    assert!(
        before_restart < 2_000,
        "the restart must happen while messages are still queued"
    );
    broker.restart();
    wait_until(Duration::from_secs(20), "source reconnected", || {
        metrics.source.connects.load(Ordering::Relaxed) >= 2 && handle.is_connected()
    })
    .await;
    // Second burst after the restart.
    publish_acked(broker.port, &device, 2_000, 3_000).await;

    let all: BTreeSet<u64> = (0..3_000).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<u64> = received.lock().await.iter().copied().collect();
        if got == all {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let missing: Vec<u64> = all.difference(&got).copied().take(20).collect();
            panic!(
                "{} of 3000 messages missing, e.g. {missing:?}",
                3_000 - got.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.source.connection_errors.load(Ordering::Relaxed) >= 1,
        "the restart was seen"
    );
    handle.shutdown().await;
    let _ = consumer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the mosquitto binary (scripts/test)"]
async fn source_resubscribes_when_a_restarted_broker_forgot_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = PrivateBroker::start(dir.path(), false);
    let state = tempfile::tempdir().unwrap();
    let device = unique("FORGOT");
    let (handle, mut events, metrics) = start_source(broker.url(), state.path(), |o| {
        o.config.clean_session = false
    });
    wait_until(Duration::from_secs(10), "source connected", || {
        handle.is_connected()
    })
    .await;
    broker.restart();
    wait_until(Duration::from_secs(20), "source reconnected", || {
        metrics.source.connects.load(Ordering::Relaxed) >= 2 && handle.is_connected()
    })
    .await;
    // Give the renewed SUBSCRIBE a moment to reach the broker before publishing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_acked(broker.port, &device, 0, 100).await;
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < 100 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(SourceEvent::Samples(batch))) if *batch.device == *device => {
                got.insert(batch.samples[0].value.unwrap() as u64);
            }
            Ok(Some(_)) => {}
            _ => panic!("only {} of 100 messages after the restart", got.len()),
        }
    }
    handle.shutdown().await;
}
