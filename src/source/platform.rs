//! The NC-Link platform: what millstream does with each message, independent of MQTT.
//!
//! It discovers devices from any traffic they send, answers `Register/Request`, asks each new
//! (or re-registered) device for its model with `Probe/Query/Request` and retries with backoff,
//! polls devices with `Query/Request` when configured (matching answers by `@id` and counting
//! timeouts), and turns Sample and Query messages into samples. Sample messages that arrive
//! before their device's model wait in [`Pending`].
//!
//! The platform is a plain state machine: it takes messages and clock ticks and returns
//! [`Action`]s (publish, emit, dead-letter). The async driver in [`super`] performs them. That
//! keeps the protocol logic testable without a broker and free of I/O.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rumqttc::QoS;
use rustc_hash::FxHashMap;

use super::event::{RawMessage, SampleBatch, SourceEvent};
use super::pending::{Pending, PendingMessage};
use crate::config::{PendingConfig, PollConfig};
use crate::id::Id;
use crate::metrics::{Metrics, add, inc};
use crate::nclink::decode::{ChannelLayout, Message, TimeRange, decode, query_response_samples};
use crate::nclink::encode::{self, RequestIds};
use crate::nclink::intern::{Interner, KeyBudget};
use crate::nclink::limits::{WireLimits, shown};
use crate::nclink::model::DeviceModel;
use crate::nclink::topic::{MessageKind, Topic, device_topic, parse_topic};
use crate::nclink::{DecodeError, Reason};

/// Most devices tracked; messages from further new devices are dead-lettered `overloaded`.
pub const MAX_DEVICES: usize = 100_000;
/// Longest wait between probe attempts.
const MAX_PROBE_WAIT_MS: i64 = 60_000;
/// Probes within this long of the previous one are not repeated (a device sends Register and
/// Version back to back on connect).
const PROBE_DEDUP_MS: i64 = 1_000;
/// A device whose model went stale (it re-registered) falls back to the old model after this
/// many unanswered probes.
const STALE_FALLBACK_ATTEMPTS: u32 = 2;
/// Request ids of a device's latest probes that an answer may carry (an answer to an earlier
/// attempt is as good as one to the latest).
const PROBE_IDS_KEPT: usize = 4;

/// What the platform needs to know.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub client_id: String,
    pub poll: Option<PollConfig>,
    pub probe_timeout_ms: i64,
    pub pending: PendingConfig,
    pub max_payload: usize,
    /// Emit every received message as [`SourceEvent::Raw`] before its decoded events.
    pub raw: bool,
    /// The devices this platform answers, probes first and polls (all but in a cluster).
    pub shard: crate::cluster::Shard,
    /// Cluster mode: while a device's messages wait for its model, hold the input's time
    /// (released with the samples: `crate::dataflow::hold`).
    pub holds: Option<crate::dataflow::Holds>,
    /// Bounds on what devices may send (`source.limits`).
    pub limits: WireLimits,
    /// Messages come from a recording: probe answers carry the recorder's request ids, not
    /// this platform's, so an answer is taken whenever a probe is outstanding.
    pub recorded: bool,
}

impl Default for PlatformOptions {
    /// A platform that only decodes (as for a recording): no polling, default bounds.
    fn default() -> Self {
        PlatformOptions {
            client_id: "millstream".into(),
            poll: None,
            probe_timeout_ms: 5_000,
            pending: PendingConfig::default(),
            max_payload: 1 << 20,
            raw: false,
            shard: crate::cluster::Shard::default(),
            holds: None,
            limits: WireLimits::default(),
            recorded: true,
        }
    }
}

/// Something the driver must do.
#[derive(Debug)]
pub enum Action {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    },
    Emit(SourceEvent),
    DeadLetter {
        topic: String,
        received_at: i64,
        error: DecodeError,
        payload: Bytes,
    },
}

#[derive(Debug)]
struct Device {
    model: Option<Arc<DeviceModel>>,
    /// Bytes of the probe answer `model` came from (counted against `limits.models_bytes`).
    model_bytes: usize,
    /// The device re-registered: its model may have changed; hold Sample messages until the
    /// new answer (or fall back after a few unanswered probes).
    stale: bool,
    /// The probe waiting for an answer: only then is an answer taken.
    probe: Option<Probe>,
    probe_attempts: u32,
    /// The item ids this device uses, bounded.
    ids: Interner,
}

#[derive(Debug, Clone)]
struct Probe {
    sent_at: i64,
    /// The platform's message count when the probe was asked for: an answer must come in a
    /// later message (a forged answer from an unknown device would otherwise answer the probe
    /// its own arrival caused).
    after_message: u64,
    /// Request ids of the latest attempts (this process's own only).
    request_ids: Vec<String>,
    /// No more attempts (the device fell back to its previous model); an answer is still
    /// taken.
    given_up: bool,
}

#[derive(Debug)]
struct OutstandingQuery {
    sent_at: i64,
}

/// The NC-Link platform state.
pub struct Platform {
    options: PlatformOptions,
    metrics: Arc<Metrics>,
    devices: FxHashMap<Id, Device>,
    queries: FxHashMap<String, OutstandingQuery>,
    next_poll_at: Option<i64>,
    ids: RequestIds,
    /// Keys (device, item ids) over all devices.
    keys: Arc<KeyBudget>,
    /// Bytes of all models held.
    models_bytes: usize,
    /// Messages handled so far.
    message_no: u64,
    pending: Pending,
    /// The hold of each device with waiting messages (cluster mode).
    held: FxHashMap<Id, Arc<crate::dataflow::Hold>>,
    /// Devices whose hold ran out while their messages still wait: not held again until those
    /// are released or gone (a device that never answers would hold the cluster again and
    /// again).
    hold_expired: rustc_hash::FxHashSet<Id>,
    /// The hold of the messages being released, handed to the samples decoded from them.
    releasing: Option<Arc<crate::dataflow::Hold>>,
    out: Vec<Action>,
}

impl Platform {
    pub fn new(options: PlatformOptions, metrics: Arc<Metrics>) -> Platform {
        Platform {
            ids: RequestIds::new(&options.client_id),
            keys: KeyBudget::new(options.limits.keys),
            pending: Pending::new(options.pending.clone()),
            held: FxHashMap::default(),
            hold_expired: Default::default(),
            releasing: None,
            options,
            metrics,
            devices: FxHashMap::default(),
            queries: FxHashMap::default(),
            next_poll_at: None,
            models_bytes: 0,
            message_no: 0,
            out: Vec::new(),
        }
    }

    /// Known devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The model of a device, if known.
    pub fn model(&self, device: &str) -> Option<&Arc<DeviceModel>> {
        self.devices.get(device).and_then(|d| d.model.as_ref())
    }

    /// Gives back an emptied action list, so the next call reuses its allocation.
    pub fn recycle(&mut self, mut actions: Vec<Action>) {
        if self.out.capacity() == 0 {
            actions.clear();
            self.out = actions;
        }
    }

    /// Handles one received message.
    pub fn on_message(&mut self, topic: &str, payload: Bytes, received_at: i64) -> Vec<Action> {
        self.message_no += 1;
        inc(&self.metrics.source.messages);
        add(&self.metrics.source.bytes, payload.len() as u64);
        if self.options.raw {
            self.emit(SourceEvent::Raw(RawMessage {
                received_at,
                topic: topic.to_string(),
                payload: payload.clone(),
            }));
        }
        if payload.len() > self.options.max_payload {
            let error = DecodeError::new(
                Reason::TooLarge,
                format!(
                    "payload of {} bytes is over source.max_payload ({} bytes)",
                    payload.len(),
                    self.options.max_payload
                ),
            );
            self.dead_letter(topic, received_at, error, payload);
        } else if let Err(error) = self.handle(topic, &payload, received_at) {
            self.dead_letter(topic, received_at, error, payload);
        }
        self.update_gauges();
        std::mem::take(&mut self.out)
    }

    /// Periodic work: probe retries, polling, query timeouts, pending expiry. Call every
    /// ~100 ms with the current time.
    pub fn on_tick(&mut self, now: i64) -> Vec<Action> {
        self.retry_probes(now);
        self.poll(now);
        for (device, message) in self.pending.expire(now) {
            let error = DecodeError::new(
                Reason::NoModel,
                format!("no model from {device} within source.pending.max_age"),
            );
            self.dead_letter(&message.topic, message.received_at, error, message.payload);
        }
        self.end_holds_without_messages();
        // A device that never answers must not hold the cluster's time (and every owner's
        // input with it) for as long as its messages may wait: two probe timeouts cover the
        // owner's probe and a second one by this process. Released later, its samples can be
        // late at their owners.
        let longest = 2 * self.options.probe_timeout_ms;
        let expired = &mut self.hold_expired;
        self.held.retain(|device, hold| {
            let keep = now - (hold.since() as i64) < longest;
            if !keep {
                expired.insert(device.clone());
            }
            keep
        });
        self.update_gauges();
        std::mem::take(&mut self.out)
    }

    /// Ends the holds of devices whose waiting messages all expired or made room.
    fn end_holds_without_messages(&mut self) {
        let pending = &self.pending;
        if !self.held.is_empty() {
            self.held.retain(|device, _| pending.has(device));
        }
        if !self.hold_expired.is_empty() {
            self.hold_expired.retain(|device| pending.has(device));
        }
    }

    /// Replaces the polling settings (`None` stops polling); the next poll is due at once.
    pub fn set_poll(&mut self, poll: Option<PollConfig>) {
        self.options.poll = poll;
        self.next_poll_at = None;
    }

    /// Publishes a `Query/Request` for `items` of `device` now; returns its request id.
    pub fn query(&mut self, device: &str, items: &[String], now: i64) -> (String, Vec<Action>) {
        let id = self.send_query(device, items, now);
        (id, std::mem::take(&mut self.out))
    }

    fn handle(
        &mut self,
        topic_text: &str,
        payload: &Bytes,
        received_at: i64,
    ) -> Result<(), DecodeError> {
        let topic = parse_topic(topic_text)?;
        if !topic.kind.is_from_device() {
            // Platform → device traffic (ours or another platform's) seen through a wide
            // subscription: nothing to decode.
            return Ok(());
        }
        // The two hot kinds go straight to their decoders (decoding them twice would double
        // the cost of ingest).
        if matches!(topic.kind, MessageKind::QueryResponse | MessageKind::Sample) {
            let device = topic
                .device
                .ok_or_else(|| DecodeError::new(Reason::UnknownTopic, "topic names no device"))?;
            let device = self.see(device, received_at)?;
            return match topic.kind {
                MessageKind::QueryResponse => self.query_response(device, payload, received_at),
                _ => self.sample(&topic, &device, topic_text, payload, received_at),
            };
        }
        let message = decode(&topic, payload)?;
        let device_id = match (&message, topic.device) {
            (Message::RegisterRequest(r), _) => r.device.as_str(),
            (_, Some(device)) => device,
            (_, None) => {
                return Err(DecodeError::new(
                    Reason::UnknownTopic,
                    "topic names no device",
                ));
            }
        };
        let device = self.see(device_id, received_at)?;
        match message {
            Message::RegisterRequest(_) => {
                // In a cluster every process hears the registration; its owner answers.
                if self.options.shard.owns(&device) {
                    self.publish(
                        device_topic(MessageKind::RegisterResponse, &device),
                        encode::register_response("OK"),
                        QoS::AtLeastOnce,
                    );
                }
                self.reprobe(&device, received_at);
            }
            Message::ProbeVersion(v) => {
                self.emit(SourceEvent::Version {
                    device: device.clone(),
                    version: v.version,
                });
                self.reprobe(&device, received_at);
            }
            Message::ProbeQueryResponse(r) => {
                self.check_solicited(&device, r.request_id.as_deref())?;
                match r.probe {
                    Some(tree) => self.take_model(&device, tree, payload.len())?,
                    None => {
                        tracing::warn!(%device, code = %shown(&r.code), "device refused the probe; will ask again")
                    }
                }
            }
            Message::SetResponse(response) => {
                self.emit(SourceEvent::SetResult { device, response })
            }
            // Handled above.
            Message::QueryResponse(_) | Message::Sample(_) => {}
            Message::RegisterResponse(_)
            | Message::ProbeQueryRequest(_)
            | Message::QueryRequest(_)
            | Message::SetRequest(_) => {}
        }
        Ok(())
    }

    fn query_response(
        &mut self,
        device: Id,
        payload: &Bytes,
        received_at: i64,
    ) -> Result<(), DecodeError> {
        // The receive time stamps these samples: the clock live, a recording's line in a
        // replay (which could say anything).
        self.options.limits.check_times(received_at, received_at)?;
        let d = self.devices.get_mut(&device).expect("seen before");
        let model = d.model.clone();
        let mut samples = Vec::with_capacity(16);
        let outcome = query_response_samples(
            payload,
            &device,
            received_at,
            model.as_deref(),
            &mut d.ids,
            &mut samples,
        )?;
        add(
            &self.metrics.source.not_ok_items,
            outcome.stats.not_ok as u64,
        );
        if let Some(id) = &outcome.request_id
            && self.queries.remove(id).is_some()
        {
            inc(&self.metrics.source.query_answers);
        }
        self.emit_samples(SampleBatch {
            ack: None,
            hold: None,
            device,
            kind: MessageKind::QueryResponse,
            channel: None,
            request_id: outcome.request_id,
            received_at,
            samples,
        });
        Ok(())
    }

    /// Records that `device` is alive; a new device is announced and probed.
    fn see(&mut self, device: &str, now: i64) -> Result<Id, DecodeError> {
        if let Some((id, _)) = self.devices.get_key_value(device) {
            return Ok(id.clone());
        }
        if self.devices.len() >= MAX_DEVICES {
            return Err(DecodeError::new(
                Reason::Overloaded,
                format!("more than {MAX_DEVICES} devices; {device} is not tracked"),
            ));
        }
        let id = crate::nclink::intern::intern(device)?;
        self.devices.insert(
            id.clone(),
            Device {
                model: None,
                model_bytes: 0,
                stale: false,
                probe: None,
                probe_attempts: 0,
                ids: Interner::new(&self.options.limits, self.keys.clone()),
            },
        );
        self.metrics
            .source
            .devices
            .store(self.devices.len() as u64, Ordering::Relaxed);
        tracing::info!(device = %id, "discovered device");
        self.emit(SourceEvent::DeviceDiscovered {
            device: id.clone(),
            at: now,
        });
        self.send_probe(&id, now);
        Ok(id)
    }

    /// The device (re)connected: its model may have changed, so ask again and hold its Sample
    /// messages until the answer.
    fn reprobe(&mut self, device: &Id, now: i64) {
        let Some(d) = self.devices.get_mut(device) else {
            return;
        };
        if d.model.is_some() {
            d.stale = true;
        }
        let recent = d
            .probe
            .as_ref()
            .is_some_and(|p| now - p.sent_at < PROBE_DEDUP_MS);
        if !recent {
            d.probe_attempts = 0;
            self.send_probe(device, now);
        }
    }

    fn send_probe(&mut self, device: &Id, now: i64) {
        let Some(d) = self.devices.get_mut(device) else {
            return;
        };
        let mut request_ids = d.probe.take().map(|p| p.request_ids).unwrap_or_default();
        d.probe_attempts += 1;
        // In a cluster the device's owner asks first and every process hears the answer; a
        // process still without a model after a timeout (it subscribed after the answer went
        // by) asks itself.
        let asks = d.probe_attempts > 1 || self.options.shard.owns(device);
        let id = asks.then(|| self.ids.next_id());
        if let Some(id) = &id {
            if request_ids.len() == PROBE_IDS_KEPT {
                request_ids.remove(0);
            }
            request_ids.push(id.clone());
        }
        d.probe = Some(Probe {
            sent_at: now,
            after_message: self.message_no,
            request_ids,
            given_up: false,
        });
        let Some(id) = id else { return };
        inc(&self.metrics.source.probe_requests);
        self.publish(
            device_topic(MessageKind::ProbeQueryRequest, device),
            encode::probe_request(&id),
            QoS::AtLeastOnce,
        );
    }

    fn retry_probes(&mut self, now: i64) {
        let base = self.options.probe_timeout_ms.max(1);
        let mut resend = Vec::new();
        let mut fall_back = Vec::new();
        for (id, d) in &mut self.devices {
            let Some(probe) = d.probe.as_mut().filter(|p| !p.given_up) else {
                continue;
            };
            let wait = base
                .saturating_mul(1 << d.probe_attempts.saturating_sub(1).min(16))
                .min(MAX_PROBE_WAIT_MS);
            if now - probe.sent_at < wait {
                continue;
            }
            if d.stale && d.probe_attempts >= STALE_FALLBACK_ATTEMPTS {
                tracing::warn!(device = %id, "device did not answer the probe after re-registering; keeping its previous model");
                d.stale = false;
                // A late answer is still taken; no more probes are sent.
                probe.given_up = true;
                fall_back.push(id.clone());
            } else {
                resend.push(id.clone());
            }
        }
        for id in resend {
            tracing::debug!(device = %id, "no probe answer yet; asking again");
            self.send_probe(&id, now);
        }
        for id in fall_back {
            self.release_pending(&id);
        }
    }

    /// Refuses a probe answer that no outstanding probe asked for: it must not replace a
    /// model, nor give a device one it was never asked for.
    fn check_solicited(&self, device: &Id, request_id: Option<&str>) -> Result<(), DecodeError> {
        let unsolicited = |why: &str| {
            Err(DecodeError::new(
                Reason::Unsolicited,
                format!("probe answer from {device}: {why}"),
            ))
        };
        let Some(probe) = self.devices.get(device).and_then(|d| d.probe.as_ref()) else {
            return unsolicited("no probe of this platform is waiting for one");
        };
        if probe.after_message >= self.message_no {
            return unsolicited("it arrived before the probe was sent");
        }
        let Some(request_id) = request_id else {
            // Devices that do not echo `@id` are answered by time alone.
            return Ok(());
        };
        let ours = probe.request_ids.iter().any(|id| id == request_id);
        // In a cluster the owner's probe is answered to every process (ids share the group's
        // client id); a recording carries the recorder's ids.
        let a_peers = self.options.shard.is_cluster()
            && request_id.starts_with(&format!("{}-", self.options.client_id));
        if ours || a_peers || self.options.recorded {
            Ok(())
        } else {
            unsolicited(&format!(
                "request id {} is not one this platform sent",
                shown(request_id)
            ))
        }
    }

    /// Builds and takes the model of a solicited probe answer of `bytes` bytes.
    fn take_model(
        &mut self,
        device: &Id,
        tree: serde_json::Value,
        bytes: usize,
    ) -> Result<(), DecodeError> {
        let limits = &self.options.limits;
        if bytes > limits.model_bytes {
            return Err(DecodeError::new(
                Reason::TooLarge,
                format!(
                    "probe answer of {bytes} bytes is over source.limits.model_bytes ({} bytes)",
                    limits.model_bytes
                ),
            ));
        }
        let d = self.devices.get_mut(device).expect("seen before");
        let held = self.models_bytes - d.model_bytes;
        if held.saturating_add(bytes) > limits.models_bytes {
            return Err(DecodeError::new(
                Reason::Overloaded,
                format!(
                    "models of all devices would take more than {} bytes (source.limits.models_bytes)",
                    limits.models_bytes
                ),
            ));
        }
        let model = DeviceModel::from_tree(tree, limits, &mut d.ids)?;
        self.models_bytes = held + bytes;
        d.model_bytes = bytes;
        self.set_model(device, model);
        Ok(())
    }

    fn set_model(&mut self, device: &Id, model: DeviceModel) {
        let Some(d) = self.devices.get_mut(device) else {
            return;
        };
        let changed = d.model.as_ref().is_none_or(|old| old.tree != model.tree);
        d.stale = false;
        d.probe = None;
        d.probe_attempts = 0;
        if changed {
            let model = Arc::new(model);
            d.model = Some(model.clone());
            inc(&self.metrics.source.models);
            tracing::info!(%device, items = model.items.len(), channels = model.channels.len(), "device model received");
            self.emit(SourceEvent::Model {
                device: device.clone(),
                model,
            });
        }
        self.release_pending(device);
    }

    /// Decodes the Sample messages that waited for `device`'s model, in arrival order.
    fn release_pending(&mut self, device: &Id) {
        self.releasing = self.held.remove(device);
        self.hold_expired.remove(device);
        for message in self.pending.take(device) {
            let result = parse_topic(&message.topic).and_then(|topic| {
                self.sample(
                    &topic,
                    device,
                    &message.topic,
                    &message.payload,
                    message.received_at,
                )
            });
            if let Err(error) = result {
                self.dead_letter(&message.topic, message.received_at, error, message.payload);
            }
        }
        // The hold now lives in the released samples' batches (or ends, if none decoded).
        self.releasing = None;
    }

    fn sample(
        &mut self,
        topic: &Topic<'_>,
        device: &Id,
        topic_text: &str,
        payload: &Bytes,
        received_at: i64,
    ) -> Result<(), DecodeError> {
        let Message::Sample(message) = decode(topic, payload)? else {
            return Err(DecodeError::new(Reason::UnknownTopic, "not a Sample topic"));
        };
        let d = self.devices.get(device);
        let model = d.filter(|d| !d.stale).and_then(|d| d.model.clone());
        let model_interval = model
            .as_ref()
            .and_then(|m| m.channel(&message.channel))
            .map(|c| c.sample_interval_ms);
        let mut samples = Vec::new();
        let times = TimeRange::for_message(&self.options.limits, received_at);
        if let Some(paths) = &message.paths {
            // NC-Link 3.0: the message names its items; the interval may come with it.
            let Some(interval) = message.interval.or(model_interval) else {
                return self.hold(device, topic_text, payload, received_at);
            };
            let d = self.devices.get_mut(device).expect("seen before");
            let ids = paths
                .iter()
                .map(|p| d.ids.intern(p))
                .collect::<Result<Vec<Id>, _>>()?;
            message.to_samples(
                device,
                ChannelLayout {
                    ids: &ids,
                    sample_interval_ms: interval,
                },
                times,
                &mut samples,
            )?;
        } else if let Some(model) = model {
            let Some(channel) = model.channel(&message.channel) else {
                return Err(DecodeError::new(
                    Reason::UnknownChannel,
                    format!(
                        "{device}'s model has no sample channel {:?}",
                        message.channel
                    ),
                ));
            };
            let layout = ChannelLayout {
                ids: &channel.ids,
                sample_interval_ms: message.interval.unwrap_or(channel.sample_interval_ms),
            };
            message.to_samples(device, layout, times, &mut samples)?;
        } else {
            return self.hold(device, topic_text, payload, received_at);
        }
        self.emit_samples(SampleBatch {
            ack: None,
            hold: None,
            device: device.clone(),
            kind: MessageKind::Sample,
            channel: Some(message.channel),
            request_id: None,
            received_at,
            samples,
        });
        Ok(())
    }

    /// Keeps a Sample message until `device`'s model arrives.
    fn hold(
        &mut self,
        device: &Id,
        topic: &str,
        payload: &Bytes,
        received_at: i64,
    ) -> Result<(), DecodeError> {
        let message = PendingMessage {
            topic: topic.to_string(),
            payload: payload.clone(),
            received_at,
        };
        let evicted = self.pending.push(device, message);
        let made_room = !evicted.is_empty();
        for (device, old) in evicted {
            let error = DecodeError::new(
                Reason::NoModel,
                format!("no model from {device} yet and source.pending is full"),
            );
            self.dead_letter(&old.topic, old.received_at, error, old.payload);
        }
        if let Some(holds) = &self.options.holds
            && !self.held.contains_key(device)
            && !self.hold_expired.contains(device)
            && self.pending.has(device)
        {
            self.held
                .insert(device.clone(), holds.hold(received_at.max(0) as u64));
        }
        // Only messages that made room can have emptied a device's queue.
        if made_room {
            self.end_holds_without_messages();
        }
        if self.devices.get(device).is_some_and(|d| d.probe.is_none()) {
            self.send_probe(device, received_at);
        }
        Ok(())
    }

    fn poll(&mut self, now: i64) {
        let Some(poll) = self.options.poll.clone() else {
            return;
        };
        let interval = poll.interval.as_millis().max(1) as i64;
        let timeout = poll.effective_timeout().as_millis() as i64;
        let before = self.queries.len();
        self.queries.retain(|_, q| now - q.sent_at < timeout);
        add(
            &self.metrics.source.query_timeouts,
            (before - self.queries.len()) as u64,
        );
        let due = *self.next_poll_at.get_or_insert(now);
        if now < due {
            return;
        }
        let mut devices: Vec<Id> = self
            .devices
            .keys()
            .filter(|d| poll.polls(d) && self.options.shard.owns(d))
            .cloned()
            .collect();
        devices.sort();
        for device in devices {
            self.send_query(&device, &poll.items, now);
        }
        let next = due + interval;
        self.next_poll_at = Some(if next <= now { now + interval } else { next });
    }

    fn send_query(&mut self, device: &str, items: &[String], now: i64) -> String {
        let id = self.ids.next_id();
        self.queries
            .insert(id.clone(), OutstandingQuery { sent_at: now });
        inc(&self.metrics.source.query_requests);
        self.publish(
            device_topic(MessageKind::QueryRequest, device),
            encode::query_request(&id, items),
            // A lost poll is just a timeout; a poll queued for an offline device is stale.
            QoS::AtMostOnce,
        );
        id
    }

    fn emit_samples(&mut self, mut batch: SampleBatch) {
        if batch.samples.is_empty() {
            return;
        }
        if batch.hold.is_none() {
            batch.hold = self.releasing.clone();
        }
        add(&self.metrics.source.samples, batch.samples.len() as u64);
        self.emit(SourceEvent::Samples(batch));
    }

    fn emit(&mut self, event: SourceEvent) {
        self.out.push(Action::Emit(event));
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, qos: QoS) {
        self.out.push(Action::Publish {
            topic,
            payload,
            qos,
        });
    }

    fn dead_letter(&mut self, topic: &str, received_at: i64, error: DecodeError, payload: Bytes) {
        tracing::debug!(topic = %shown(topic), reason = %error.reason, detail = %shown(&error.detail), "dead letter");
        self.out.push(Action::DeadLetter {
            topic: topic.to_string(),
            received_at,
            error,
            payload,
        });
    }

    fn update_gauges(&self) {
        self.metrics
            .source
            .pending_messages
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;
    use crate::nclink::encode::{QueryAnswer, WireValue};

    fn platform(poll: Option<PollConfig>) -> (Platform, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let options = PlatformOptions {
            poll,
            probe_timeout_ms: 1_000,
            // Live: probe answers must carry this platform's request ids.
            recorded: false,
            ..PlatformOptions::default()
        };
        (Platform::new(options, metrics.clone()), metrics)
    }

    fn model_payload() -> Bytes {
        let model: serde_json::Value =
            serde_json::from_str(include_str!("../../data/nc-link/lab-model.json")).unwrap();
        Bytes::from(encode::probe_response(None, &model))
    }

    fn publishes(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Publish { topic, .. } => Some(topic.as_str()),
                _ => None,
            })
            .collect()
    }

    fn samples(actions: &[Action]) -> Vec<&SampleBatch> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Emit(SourceEvent::Samples(b)) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn dead(actions: &[Action]) -> Vec<Reason> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::DeadLetter { error, .. } => Some(error.reason),
                _ => None,
            })
            .collect()
    }

    const SAMPLE: &str = r#"{"id":"sample_channel0","beginTime":"1000","data":[{"data":[1,1]},{"data":[5,5]},{"data":["O1","O1"]}]}"#;

    #[test]
    fn register_is_answered_and_probed() {
        let (mut p, _) = platform(None);
        let actions = p.on_message(
            "Register/Request",
            Bytes::from_static(br#"{"deviceid":"D1"}"#),
            10,
        );
        assert_eq!(
            publishes(&actions),
            vec!["Probe/Query/Request/D1", "Register/Response/D1"]
        );
        assert!(matches!(
            actions[0],
            Action::Emit(SourceEvent::DeviceDiscovered { .. })
        ));
    }

    #[test]
    fn samples_wait_for_the_model_then_decode_in_order() {
        let (mut p, metrics) = platform(None);
        let a1 = p.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            10,
        );
        assert_eq!(publishes(&a1), vec!["Probe/Query/Request/D1"]);
        assert!(samples(&a1).is_empty());
        let a2 = p.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            11,
        );
        assert!(publishes(&a2).is_empty(), "one probe outstanding is enough");
        assert_eq!(metrics.source.pending_messages.load(Ordering::Relaxed), 2);
        let a3 = p.on_message("Probe/Query/Response/D1", model_payload(), 20);
        let batches = samples(&a3);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].received_at, 10);
        assert_eq!(batches[0].samples.len(), 6);
        assert_eq!(
            batches[0].samples[1].ts, 3000,
            "lab channel samples every 2000 ms"
        );
        assert_eq!(metrics.source.pending_messages.load(Ordering::Relaxed), 0);
        // Now decoded immediately.
        let a4 = p.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            30,
        );
        assert_eq!(samples(&a4).len(), 1);
        // A channel the model does not declare.
        let a5 = p.on_message("Sample/D1/nope", Bytes::from_static(SAMPLE.as_bytes()), 31);
        assert_eq!(dead(&a5), vec![Reason::UnknownChannel]);
    }

    #[test]
    fn in_a_cluster_waiting_messages_hold_the_input_until_their_samples_are_handed_on() {
        let holds = crate::dataflow::Holds::default();
        let mut p = Platform::new(
            PlatformOptions {
                probe_timeout_ms: 1_000,
                holds: Some(holds.clone()),
                ..PlatformOptions::default()
            },
            Arc::new(Metrics::default()),
        );
        let sample = || Bytes::from_static(SAMPLE.as_bytes());
        p.on_message("Sample/D1/sample_channel0", sample(), 10);
        p.on_message("Sample/D1/sample_channel0", sample(), 11);
        p.on_message("Sample/D2/sample_channel0", sample(), 12);
        assert_eq!(
            (holds.len(), holds.limit()),
            (2, 10),
            "one hold per device, from its first message"
        );
        let released = p.on_message("Probe/Query/Response/D1", model_payload(), 20);
        let batches = samples(&released);
        assert_eq!(batches.len(), 2);
        assert!(
            batches
                .iter()
                .all(|b| b.hold.as_ref().is_some_and(|h| h.since() == 10))
        );
        assert_eq!(holds.len(), 2, "the released samples carry D1's hold on");
        drop(released);
        assert_eq!((holds.len(), holds.limit()), (1, 12));
        // Decoded at once now: no hold.
        let live = p.on_message("Sample/D1/sample_channel0", sample(), 30);
        assert!(samples(&live)[0].hold.is_none());
        assert_eq!(holds.len(), 1);
        // D2 never answers: its hold ends after two probe timeouts, while its message still
        // waits (until it expires), and its next messages do not hold again.
        p.on_tick(12 + 2 * 1_000 - 1);
        assert_eq!(holds.len(), 1);
        p.on_tick(12 + 2 * 1_000);
        assert!(holds.is_empty());
        assert_eq!(p.pending.len(), 1);
        p.on_message("Sample/D2/sample_channel0", sample(), 2_100);
        assert!(
            holds.is_empty(),
            "held again by a device that does not answer"
        );
        assert_eq!(p.pending.len(), 2);
        // Once it answers, its messages are released and it may be held again.
        p.on_message("Probe/Query/Response/D2", model_payload(), 2_200);
        assert_eq!(p.pending.len(), 0);
        assert!(p.hold_expired.is_empty());
        // A device whose messages all expire is forgotten too.
        p.on_message("Sample/D3/sample_channel0", sample(), 3_000);
        p.on_tick(3_000 + 2 * 1_000);
        assert!(holds.is_empty() && p.hold_expired.len() == 1);
        let max_age = PendingConfig::default().max_age.as_millis() as i64;
        let expired = p.on_tick(3_000 + max_age + 1);
        assert_eq!(dead(&expired), vec![Reason::NoModel]);
        assert!(p.hold_expired.is_empty());
    }

    #[test]
    fn paths_decode_without_a_model() {
        let (mut p, _) = platform(None);
        let payload = r#"{"beginTime":0,"interval":5,"paths":["a"],"data":[[1,2]]}"#;
        let actions = p.on_message("Sample/D1/c/cli", Bytes::from_static(payload.as_bytes()), 1);
        let batches = samples(&actions);
        assert_eq!(
            batches[0].samples.iter().map(|s| s.ts).collect::<Vec<_>>(),
            vec![0, 5]
        );
    }

    #[test]
    fn probes_are_retried_with_backoff() {
        let (mut p, metrics) = platform(None);
        p.on_message(
            "Probe/Version/D1",
            Bytes::from_static(br#"{"version":"1.1"}"#),
            0,
        );
        assert!(publishes(&p.on_tick(500)).is_empty());
        assert_eq!(publishes(&p.on_tick(1_000)), vec!["Probe/Query/Request/D1"]);
        assert!(
            publishes(&p.on_tick(2_500)).is_empty(),
            "second wait is 2 s"
        );
        assert_eq!(publishes(&p.on_tick(3_000)), vec!["Probe/Query/Request/D1"]);
        assert_eq!(metrics.source.probe_requests.load(Ordering::Relaxed), 3);
        p.on_message("Probe/Query/Response/D1", model_payload(), 3_100);
        assert!(
            publishes(&p.on_tick(100_000)).is_empty(),
            "no probing once the model is known"
        );
    }

    #[test]
    fn re_registration_holds_samples_until_the_new_model() {
        let (mut p, _) = platform(None);
        p.on_message(
            "Probe/Version/D1",
            Bytes::from_static(br#"{"version":"1.1"}"#),
            0,
        );
        p.on_message("Probe/Query/Response/D1", model_payload(), 1);
        let actions = p.on_message(
            "Register/Request",
            Bytes::from_static(br#"{"deviceid":"D1"}"#),
            5_000,
        );
        assert!(publishes(&actions).contains(&"Probe/Query/Request/D1"));
        let held = p.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            5_001,
        );
        assert!(samples(&held).is_empty());
        // No answer: after two probes it falls back to the model it had.
        p.on_tick(6_000);
        let fallback = p.on_tick(8_000);
        assert_eq!(samples(&fallback).len(), 1);
    }

    #[test]
    fn in_a_cluster_only_the_owner_answers_probes_and_polls_and_every_process_decodes() {
        let poll = PollConfig {
            interval: HumanDuration::from_millis(1_000),
            items: vec!["0103502202".into()],
            timeout: None,
            devices: Vec::new(),
        };
        let shards: Vec<crate::cluster::Shard> = (0..2)
            .map(|process| crate::cluster::Shard {
                processes: 2,
                process,
            })
            .collect();
        let owner = shards[0].owner("D1");
        let mut processes: Vec<Platform> = shards
            .iter()
            .map(|&shard| {
                let options = PlatformOptions {
                    poll: Some(poll.clone()),
                    probe_timeout_ms: 1_000,
                    shard,
                    ..PlatformOptions::default()
                };
                Platform::new(options, Arc::new(Metrics::default()))
            })
            .collect();
        for (process, p) in processes.iter_mut().enumerate() {
            let register = p.on_message(
                "Register/Request",
                Bytes::from_static(br#"{"deviceid":"D1"}"#),
                10,
            );
            let polls = p.on_tick(20);
            if process == owner {
                assert_eq!(
                    publishes(&register),
                    vec!["Probe/Query/Request/D1", "Register/Response/D1"]
                );
                assert_eq!(publishes(&polls), vec!["Query/Request/D1"]);
            } else {
                assert!(
                    publishes(&register).is_empty(),
                    "{:?}",
                    publishes(&register)
                );
                assert!(publishes(&polls).is_empty(), "{:?}", publishes(&polls));
            }
        }
        // The other process got a Sample message: it waits for the model the owner asked for.
        let other = &mut processes[1 - owner];
        let held = other.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            30,
        );
        assert!(samples(&held).is_empty() && publishes(&held).is_empty());
        let decoded = other.on_message("Probe/Query/Response/D1", model_payload(), 40);
        assert_eq!(samples(&decoded).len(), 1);

        // A process that missed the owner's answer asks itself after the probe timeout.
        let mut late = Platform::new(
            PlatformOptions {
                probe_timeout_ms: 1_000,
                shard: shards[1 - owner],
                ..PlatformOptions::default()
            },
            Arc::new(Metrics::default()),
        );
        let first = late.on_message(
            "Sample/D1/sample_channel0",
            Bytes::from_static(SAMPLE.as_bytes()),
            0,
        );
        assert!(publishes(&first).is_empty());
        assert_eq!(
            publishes(&late.on_tick(1_100)),
            vec!["Probe/Query/Request/D1"]
        );
    }

    #[test]
    fn polls_match_answers_and_count_timeouts() {
        let poll = PollConfig {
            interval: HumanDuration::from_millis(1_000),
            items: vec!["0103502202".into()],
            timeout: Some(HumanDuration::from_millis(500)),
            devices: Vec::new(),
        };
        let (mut p, metrics) = platform(Some(poll));
        p.on_message(
            "Probe/Version/D1",
            Bytes::from_static(br#"{"version":"1.1"}"#),
            0,
        );
        let actions = p.on_tick(0);
        let request = actions
            .iter()
            .find_map(|a| match a {
                Action::Publish { topic, payload, .. } if topic == "Query/Request/D1" => {
                    Some(payload.clone())
                }
                _ => None,
            })
            .unwrap();
        let request: serde_json::Value = serde_json::from_slice(&request).unwrap();
        let id = request["@id"].as_str().unwrap();
        let mut answer = Vec::new();
        encode::query_response(
            &mut answer,
            Some(id),
            &[("0103502202", QueryAnswer::Ok(vec![WireValue::Number(3.5)]))],
        );
        let actions = p.on_message("Query/Response/D1", Bytes::from(answer), 40);
        let batch = samples(&actions)[0];
        assert_eq!(batch.request_id.as_deref(), Some(id));
        assert_eq!(batch.samples[0].ts, 40);
        assert_eq!(batch.samples[0].value, Some(3.5));
        assert_eq!(metrics.source.query_answers.load(Ordering::Relaxed), 1);
        // The next poll goes unanswered.
        assert!(publishes(&p.on_tick(1_000)).contains(&"Query/Request/D1"));
        p.on_tick(1_600);
        assert_eq!(metrics.source.query_timeouts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bad_input_is_dead_lettered_by_reason() {
        let (mut p, metrics) = platform(None);
        let cases: [(&str, &[u8], Reason); 5] = [
            ("Query/Response/D1", b"not json", Reason::MalformedJson),
            ("Query/Response/D1", b"[1]", Reason::WrongShape),
            ("Nope/D1", b"{}", Reason::UnknownTopic),
            (
                "Query/Response/D1",
                &[0xde, 0xad, 0xbe, 0xef],
                Reason::MalformedJson,
            ),
            ("Query/Response/D1", &[b' '; 2 << 20], Reason::TooLarge),
        ];
        for (topic, payload, reason) in cases {
            let actions = p.on_message(topic, Bytes::copy_from_slice(payload), 1);
            assert_eq!(dead(&actions), vec![reason], "{topic}");
        }
        assert_eq!(metrics.source.messages.load(Ordering::Relaxed), 5);
    }

    fn probe_request_id(actions: &[Action]) -> String {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Publish { topic, payload, .. }
                    if topic.starts_with("Probe/Query/Request/") =>
                {
                    let request: serde_json::Value = serde_json::from_slice(payload).unwrap();
                    Some(request["@id"].as_str().unwrap().to_string())
                }
                _ => None,
            })
            .expect("a probe")
    }

    fn model_with_id(request_id: Option<&str>, item: &str) -> Bytes {
        let model = serde_json::json!({"devices":[{"dataItems":[{"id": item, "name": "n"}],
            "configs":[{"id":"sample_channel0","type":"SAMPLE_CHANNEL","sampleInterval":10,"ids":[item]}]}]});
        Bytes::from(encode::probe_response(request_id, &model))
    }

    #[test]
    fn only_answers_to_outstanding_probes_are_taken() {
        let (mut p, metrics) = platform(None);
        // A forged answer from a device never seen: its own arrival discovers the device and
        // sends the probe, which it cannot be the answer to.
        let forged = p.on_message("Probe/Query/Response/D1", model_with_id(None, "forged"), 0);
        assert_eq!(dead(&forged), vec![Reason::Unsolicited]);
        let id = probe_request_id(&forged);
        assert!(p.model("D1").is_none());
        // An answer naming a request this platform never sent.
        let wrong = p.on_message(
            "Probe/Query/Response/D1",
            model_with_id(Some("other-1"), "x"),
            1,
        );
        assert_eq!(dead(&wrong), vec![Reason::Unsolicited]);
        // The answer to our probe is taken.
        let right = p.on_message(
            "Probe/Query/Response/D1",
            model_with_id(Some(&id), "real"),
            2,
        );
        assert!(dead(&right).is_empty());
        assert!(p.model("D1").unwrap().item("real").is_some());
        // Once answered, nothing is outstanding: a later answer never replaces the model.
        let late = p.on_message("Probe/Query/Response/D1", model_with_id(None, "swap"), 3);
        assert_eq!(dead(&late), vec![Reason::Unsolicited]);
        assert!(p.model("D1").unwrap().item("real").is_some());
        assert_eq!(metrics.source.models.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn event_times_outside_the_limits_are_dead_lettered_as_bad_time() {
        let (mut p, _) = platform(None);
        for (begin, interval) in [
            ("9223372036854775000", 10),
            ("-5", 10),
            ("7258118399500", 10), // the 51st value reaches 2200-01-01
        ] {
            let payload = format!(
                r#"{{"beginTime":"{begin}","interval":{interval},"paths":["a"],"data":[[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]]}}"#
            );
            let actions = p.on_message("Sample/D1/c", Bytes::from(payload), 1);
            assert_eq!(dead(&actions), vec![Reason::BadTime], "{begin}");
            assert!(samples(&actions).is_empty());
        }
    }

    #[test]
    fn values_dated_ahead_of_their_arrival_are_bad_time() {
        let (mut p, _) = platform(None);
        let at = |begin: i64| {
            format!(r#"{{"beginTime":{begin},"interval":1000,"paths":["a"],"data":[[1,2,3]]}}"#)
        };
        let received = 1_700_000_000_000;
        // Up to a minute ahead is a clock slightly off: taken.
        let ok = p.on_message("Sample/D1/c", Bytes::from(at(received + 58_000)), received);
        assert!(dead(&ok).is_empty());
        let ahead = p.on_message("Sample/D1/c", Bytes::from(at(received + 59_000)), received);
        assert_eq!(dead(&ahead), vec![Reason::BadTime]);
        let Action::DeadLetter { error, .. } = &ahead[0] else {
            panic!("{ahead:?}")
        };
        assert!(
            error.detail.contains("ahead of its receive time"),
            "{error}"
        );
    }

    #[test]
    fn a_device_cannot_exhaust_the_id_table() {
        let metrics = Arc::new(Metrics::default());
        let limits = WireLimits {
            ids_per_device: 100,
            indexed_values: 10,
            ..WireLimits::default()
        };
        let mut p = Platform::new(
            PlatformOptions {
                limits,
                ..PlatformOptions::default()
            },
            metrics,
        );
        let mut refused = 0;
        for message in 0..50 {
            let paths: Vec<String> = (0..10)
                .map(|i| format!("\"quota-{message}-{i}\""))
                .collect();
            let payload = format!(
                r#"{{"beginTime":1000,"interval":10,"paths":[{}],"data":[{}]}}"#,
                paths.join(","),
                ["[1]"; 10].join(",")
            );
            let actions = p.on_message("Sample/Q1/c", Bytes::from(payload), 1);
            refused += dead(&actions)
                .iter()
                .filter(|r| **r == Reason::Overloaded)
                .count();
        }
        assert_eq!(
            refused, 40,
            "ten messages of new ids fit the quota, the rest are refused"
        );
        assert!(
            crate::id::Id::get("quota-10-0").is_none(),
            "refused ids are never interned"
        );
        // Another device is unaffected.
        let ok = p.on_message(
            "Sample/Q2/c",
            Bytes::from_static(
                br#"{"beginTime":1000,"interval":10,"paths":["quota-0-0"],"data":[[1]]}"#,
            ),
            2,
        );
        assert!(dead(&ok).is_empty());
        // Indexed values beyond the cap.
        let values: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let payload = format!(
            r#"{{"values":[{{"id":"r","code":"OK","values":[{}]}}]}}"#,
            values.join(",")
        );
        let actions = p.on_message("Query/Response/Q3", Bytes::from(payload), 3);
        assert_eq!(dead(&actions), vec![Reason::WrongShape]);
    }
}
