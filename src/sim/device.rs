//! One simulated NC-Link device on the wire: its own MQTT connection (client id = device id),
//! Register/Request and Probe/Version on every connect, answers to Probe, Query and Set
//! requests, and one Sample message per channel every upload interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeFilter};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::machine::Machine;
use super::signals::{Form, Signal, SignalMap, initial_register, sample_rows, values};
use super::{SimReport, SimShared, SimStats};
use crate::backoff::Backoff;
use crate::metrics::{add, inc};
use crate::nclink::decode::{Message, decode};
use crate::nclink::encode::{self, QueryAnswer, WireValue};
use crate::nclink::topic::{
    MessageKind, device_subscriptions, device_topic, parse_topic, sample_topic,
};
use crate::source::connection::{BrokerOptions, mqtt_options};

/// Most sample ticks put in one message; a device that fell further behind skips ahead.
const MAX_TICKS_PER_MESSAGE: i64 = 100_000;

/// A sample channel being simulated.
struct Channel {
    id: String,
    interval: i64,
    upload: i64,
    signals: Vec<Signal>,
    /// Next tick to sample, ms since the simulation start.
    next_t: i64,
    /// Next upload, ms since the simulation start.
    next_upload: i64,
}

enum Incoming {
    Connected,
    Request {
        topic: String,
        payload: bytes::Bytes,
    },
}

pub(super) struct DeviceSim {
    pub id: String,
    pub index: u64,
    pub shared: Arc<SimShared>,
}

impl DeviceSim {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let shared = self.shared.clone();
        let broker = BrokerOptions {
            url: shared.options.broker.clone(),
            client_id: self.id.clone(),
            username: None,
            password: None,
            tls: None,
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            max_packet_size: 64 << 20,
            request_capacity: 256,
            manual_acks: false,
        };
        let options = match mqtt_options(&broker) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(device = %self.id, error = %e, "cannot configure the MQTT client");
                return;
            }
        };
        let (client, mut eventloop) = AsyncClient::new(options, broker.request_capacity);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stats = shared.stats.clone();
        let device = self.id.clone();
        let subscriptions: Vec<SubscribeFilter> = device_subscriptions(&self.id)
            .into_iter()
            .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce))
            .collect();
        let poll_client = client.clone();
        let mut poll_stop = stop.clone();
        let connection = tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            let mut connected = false;
            loop {
                let event = tokio::select! {
                    e = eventloop.poll() => e,
                    _ = crate::stop::stopped(&mut poll_stop), if !connected => break,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff.reset();
                        stats.connected.fetch_add(1, Ordering::Relaxed);
                        let _ = poll_client.try_subscribe_many(subscriptions.clone());
                        if tx.send(Incoming::Connected).is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx
                            .send(Incoming::Request {
                                topic: p.topic,
                                payload: p.payload,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        if connected {
                            stats.connected.fetch_sub(1, Ordering::Relaxed);
                            tracing::warn!(%device, error = %e, "device lost the broker connection");
                        }
                        connected = false;
                        inc(&stats.connection_errors);
                        let stopping = *poll_stop.borrow();
                        if stopping {
                            break;
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
            if connected {
                stats.connected.fetch_sub(1, Ordering::Relaxed);
            }
        });

        let mut logic = Logic::new(&self, client.clone());
        let mut ready = false;
        loop {
            let wake = logic.next_upload();
            tokio::select! {
                incoming = rx.recv() => match incoming {
                    Some(Incoming::Connected) => {
                        ready = true;
                        logic.announce().await;
                    }
                    Some(Incoming::Request { topic, payload }) => logic.answer(&topic, &payload).await,
                    None => break,
                },
                _ = tokio::time::sleep_until(wake), if ready => logic.upload().await,
                _ = crate::stop::stopped(&mut stop) => break,
            }
        }
        let _ = client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), connection)
            .await
            .is_err()
        {
            tracing::debug!(device = %self.id, "connection did not close in time");
        }
    }
}

struct Logic {
    id: String,
    shared: Arc<SimShared>,
    client: AsyncClient,
    machine: Machine,
    channels: Vec<Channel>,
    registers: HashMap<String, Vec<f64>>,
    signals: Arc<SignalMap>,
    buf: Vec<u8>,
    qos: QoS,
}

impl Logic {
    fn new(device: &DeviceSim, client: AsyncClient) -> Logic {
        let shared = device.shared.clone();
        let now = shared.elapsed_ms();
        // Spread uploads of a fleet over the interval instead of bursting together.
        let phase = |upload: i64| (crate::rng::mix(device.index) % upload.max(1) as u64) as i64;
        let channels = shared
            .channels
            .iter()
            .map(|c| {
                let first_tick = (now / c.sample_interval_ms + 1) * c.sample_interval_ms;
                Channel {
                    id: c.id.clone(),
                    interval: c.sample_interval_ms,
                    upload: c.upload_interval_ms,
                    signals: c
                        .ids
                        .iter()
                        .map(|id| {
                            shared
                                .signals
                                .get(id)
                                .cloned()
                                .unwrap_or(Signal::Fixed(WireValue::Number(0.0)))
                        })
                        .collect(),
                    next_t: first_tick,
                    next_upload: first_tick + phase(c.upload_interval_ms) + c.upload_interval_ms,
                }
            })
            .collect();
        Logic {
            id: device.id.clone(),
            machine: Machine::new(shared.options.seed, device.index),
            signals: shared.signals.clone(),
            qos: shared.options.qos,
            shared,
            client,
            channels,
            registers: HashMap::new(),
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    fn stats(&self) -> &SimStats {
        &self.shared.stats
    }

    fn next_upload(&self) -> Instant {
        let next = self
            .channels
            .iter()
            .map(|c| c.next_upload)
            .min()
            .unwrap_or(i64::MAX / 4);
        self.shared.start + Duration::from_millis(next.max(0) as u64)
    }

    async fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> bool {
        match self.client.publish(topic, qos, false, payload).await {
            Ok(()) => {
                inc(&self.stats().messages);
                true
            }
            Err(_) => {
                inc(&self.stats().publish_errors);
                false
            }
        }
    }

    /// Register/Request and Probe/Version, as the lab simulator sends on connect.
    async fn announce(&mut self) {
        self.publish(
            "Register/Request".into(),
            encode::register_request(&self.id),
            QoS::AtLeastOnce,
        )
        .await;
        self.publish(
            device_topic(MessageKind::ProbeVersion, &self.id),
            encode::probe_version("1.1"),
            QoS::AtLeastOnce,
        )
        .await;
    }

    /// Publishes every channel whose upload time has come.
    async fn upload(&mut self) {
        let now = self.shared.elapsed_ms();
        for i in 0..self.channels.len() {
            if self.channels[i].next_upload > now {
                continue;
            }
            let (topic, payload, samples) = self.sample_message(i, now);
            let c = &mut self.channels[i];
            c.next_upload += c.upload;
            if c.next_upload <= now {
                c.next_upload = now + c.upload;
            }
            if samples > 0 && self.publish(topic, payload, self.qos).await {
                add(&self.stats().samples, samples);
            }
        }
    }

    fn sample_message(&mut self, channel: usize, now: i64) -> (String, Vec<u8>, u64) {
        let c = &mut self.channels[channel];
        let behind = (now - c.next_t) / c.interval;
        if behind > MAX_TICKS_PER_MESSAGE {
            let skip = behind - MAX_TICKS_PER_MESSAGE;
            c.next_t += skip * c.interval;
            add(&self.shared.stats.skipped_ticks, skip as u64);
        }
        let mut rows: Vec<Vec<WireValue>> = vec![Vec::new(); c.signals.len()];
        let begin = c.next_t;
        c.next_t = sample_rows(
            &mut self.machine,
            &c.signals,
            c.next_t,
            now,
            c.interval,
            &mut rows,
        );
        let samples: u64 = rows.iter().map(|r| r.len() as u64).sum();
        self.buf.clear();
        encode::sample_message(&mut self.buf, &c.id, self.shared.epoch_ms + begin, &rows);
        (sample_topic(&self.id, &c.id), self.buf.clone(), samples)
    }

    async fn answer(&mut self, topic: &str, payload: &[u8]) {
        let Ok(parsed) = parse_topic(topic) else {
            return;
        };
        let message = match decode(&parsed, payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(device = %self.id, topic, error = %e, "ignoring a bad request");
                return;
            }
        };
        match message {
            Message::ProbeQueryRequest(r) => {
                let payload = encode::probe_response(r.request_id.as_deref(), &self.shared.model);
                inc(&self.stats().probes);
                self.publish(
                    device_topic(MessageKind::ProbeQueryResponse, &self.id),
                    payload,
                    QoS::AtLeastOnce,
                )
                .await;
            }
            Message::QueryRequest(q) => {
                let snapshot = self.machine.at(self.shared.elapsed_ms());
                let answers: Vec<(String, QueryAnswer)> = q
                    .ids
                    .iter()
                    .map(|id| {
                        let answer = match self.signals.get(id) {
                            Some(signal) => {
                                let register = matches!(signal, Signal::Register).then(|| {
                                    self.registers
                                        .entry(id.clone())
                                        .or_insert_with(|| initial_register(id))
                                        .as_slice()
                                });
                                QueryAnswer::Ok(values(signal, &snapshot, Form::Query, register))
                            }
                            None => QueryAnswer::Ng,
                        };
                        (id.clone(), answer)
                    })
                    .collect();
                let refs: Vec<(&str, QueryAnswer)> = answers
                    .iter()
                    .map(|(id, a)| (id.as_str(), a.clone()))
                    .collect();
                let mut payload = Vec::new();
                encode::query_response(&mut payload, q.request_id.as_deref(), &refs);
                inc(&self.stats().queries);
                if let Some(report) = &self.shared.report {
                    let _ = report.send(SimReport::QueryAnswered {
                        device: self.id.clone(),
                        request_id: q.request_id.clone(),
                        answers,
                    });
                }
                self.publish(
                    device_topic(MessageKind::QueryResponse, &self.id),
                    payload,
                    QoS::AtLeastOnce,
                )
                .await;
            }
            Message::SetRequest(s) => {
                let results: Vec<(String, &str)> = s
                    .values
                    .iter()
                    .map(|v| {
                        let ok = self.set(&v.id, v.params.index, v.params.value.as_ref());
                        (v.id.clone(), if ok { "OK" } else { "NG" })
                    })
                    .collect();
                inc(&self.stats().sets);
                let payload = encode::set_response(s.request_id.as_deref(), &results);
                self.publish(
                    device_topic(MessageKind::SetResponse, &self.id),
                    payload,
                    QoS::AtLeastOnce,
                )
                .await;
            }
            _ => {}
        }
    }

    /// Changes one register value; false (answered NG) for anything not settable.
    fn set(&mut self, id: &str, index: Option<i64>, value: Option<&serde_json::Value>) -> bool {
        let settable = self.shared.settable.contains(id);
        let (Some(index), Some(value)) = (index, value.and_then(serde_json::Value::as_f64)) else {
            return false;
        };
        if !settable || !matches!(self.signals.get(id), Some(Signal::Register)) {
            return false;
        }
        let register = self
            .registers
            .entry(id.to_string())
            .or_insert_with(|| initial_register(id));
        match usize::try_from(index)
            .ok()
            .and_then(|i| register.get_mut(i))
        {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }
}
