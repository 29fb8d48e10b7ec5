//! The latency probe of the end-to-end benchmarks: `rate` messages/s for 10 s, each stamped
//! with its publish time, to a device of its own; the time from publish to the SSE `sample`
//! event the engine serving `base` sends for it, p50 and p99.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use millstream::sample::now_ms;
use rumqttc::{AsyncClient, MqttOptions, QoS};

/// `rate` messages/s for 10 s; publish time → SSE event. `label` says under what.
pub async fn latency(base: &str, rate: u64, label: &str) {
    let device = format!("E2E_LATENCY_{}_{rate}", std::process::id());
    let events = reqwest::get(format!("{base}/api/v1/events?device={device}"))
        .await
        .unwrap();
    let mut stream = events.bytes_stream();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = latencies.clone();
    let reader = tokio::spawn(async move {
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            let now = now_ms();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: "))
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                {
                    for s in v["samples"].as_array().into_iter().flatten() {
                        if let Some(ts) = s["ts"].as_i64() {
                            sink.lock().unwrap().push(now - ts);
                        }
                    }
                }
            }
        }
    });
    let options = MqttOptions::new(format!("latency-{}", std::process::id()), "127.0.0.1", 1883);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let topic = format!("Sample/{device}/lat");
    let total = rate * 10;
    for seq in 0..total {
        tick.tick().await;
        // NC-Link 3.0 form: the message names its item and interval, no model needed.
        let payload = format!(
            r#"{{"beginTime":{},"interval":1,"paths":["seq"],"data":[[{seq}]]}}"#,
            now_ms()
        );
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.abort();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    if l.is_empty() {
        println!("latency: no events received");
        return;
    }
    let p = |q: f64| l[((l.len() - 1) as f64 * q) as usize];
    println!(
        "latency at {rate} messages/s{label}, publish → SSE event: p50 {} ms, p99 {} ms, max {} ms ({} of {total} events)",
        p(0.5),
        p(0.99),
        l[l.len() - 1],
        l.len()
    );
}
