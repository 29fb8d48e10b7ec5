//! Ingest: runs the MQTT source, hands its samples to the dataflow in batches (draining what is
//! already waiting, so batches grow with load), keeps the device registry, publishes live sample
//! events, and carries out source commands from the API (reconnect to another broker, send an
//! NC-Link query). A replay takes the MQTT source's place and goes through the same path.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};

use crate::config::PollConfig;
use crate::dataflow::DataflowInput;
use crate::live::bus::Bus;
use crate::live::registry::Registry;
use crate::metrics::Metrics;
use crate::replay::{ReplayHandle, ReplaySource};
use crate::sample::Sample;
use crate::source::ack::Ack;
use crate::source::control::{ControlError, SourceCommand, SourceControl};
use crate::source::{self, SourceEvent, SourceHandle, SourceOptions};
use crate::wal::Wal;

/// What feeds the engine: the MQTT source, or a replay in its place.
enum Upstream {
    Broker(SourceHandle),
    Replay(ReplayHandle),
}

impl Upstream {
    async fn query(&self, device: &str, items: Vec<String>) -> Result<String, ControlError> {
        match self {
            Upstream::Broker(handle) => handle
                .query(device, items)
                .await
                .map_err(|e| ControlError::Source(e.to_string())),
            Upstream::Replay(_) => Err(ControlError::Replaying("there are no devices to ask")),
        }
    }

    async fn set_poll(&self, poll: Option<PollConfig>) -> Result<(), ControlError> {
        match self {
            Upstream::Broker(handle) => handle
                .set_poll(poll)
                .await
                .map_err(|e| ControlError::Source(e.to_string())),
            Upstream::Replay(_) => Err(ControlError::Replaying("there are no devices to poll")),
        }
    }

    async fn shutdown(self) {
        match self {
            Upstream::Broker(handle) => handle.shutdown().await,
            Upstream::Replay(handle) => handle.shutdown().await,
        }
    }
}

/// Most samples put in one dataflow batch.
const MAX_BATCH: usize = 16_384;

pub(super) struct Ingest {
    pub options: SourceOptions,
    pub metrics: Arc<Metrics>,
    pub input: DataflowInput,
    pub registry: Arc<Registry>,
    pub bus: Bus,
    /// The write-ahead log; `None` when disabled (messages are then acknowledged once handed
    /// to the dataflow).
    pub wal: Option<Wal>,
    /// Acknowledgements of the samples in `pending`.
    pub acks: Vec<Arc<Ack>>,
    /// Holds on the input's time that end with the samples in `pending` (cluster mode).
    pub holds: Vec<Arc<crate::dataflow::Hold>>,
    /// Cluster mode: batches enter the dataflow at their receive time, so a batch holds only
    /// messages received within [`crate::dataflow::ARRIVAL_STEP`] of its first.
    pub by_arrival: bool,
    /// Receive time of the first message in `pending`.
    pub first_received: Option<i64>,
    /// Publish received samples as SSE events (not in cluster mode: see the observer).
    pub sse_samples: bool,
    /// Samples of redelivered messages whose first delivery reached the dataflow but not the
    /// log (a failed write): they go to the log alone, with their acknowledgements.
    pub log_only: (Vec<Sample>, Vec<Arc<Ack>>),
    /// The source as configured: a switch to another broker starts from it (and never takes
    /// its credentials elsewhere).
    pub configured: crate::config::SourceConfig,
}

/// How often the ingest checks whether unlogged messages need the broker to send them again.
const REDELIVERY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// Least time between two reconnects made to have unlogged messages sent again.
const REDELIVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Ingest {
    /// Starts the source (or the replay in its place); returns the control handle and the
    /// task, which ends after `stop` (or at the end of a replay) once everything received was
    /// handed to the dataflow and its input closed.
    pub fn start(
        self,
        replay: Option<ReplaySource>,
        stop: watch::Receiver<bool>,
    ) -> Result<(SourceControl, tokio::task::JoinHandle<()>), String> {
        let (handle, events, name) = match replay {
            None => {
                let (handle, events) = source::start(self.options.clone(), self.metrics.clone())
                    .map_err(|e| e.to_string())?;
                (
                    Upstream::Broker(handle),
                    events,
                    self.options.config.url.to_string(),
                )
            }
            Some(replay) => {
                let name = replay.input.describe();
                let (handle, events) =
                    crate::replay::start(replay, &self.options, self.metrics.clone())?;
                (Upstream::Replay(handle), events, name)
            }
        };
        let (commands_tx, commands) = mpsc::channel(16);
        let control = SourceControl::new(commands_tx, name, self.options.config.poll.clone());
        let broker = control.broker.clone();
        let poll = control.poll.clone();
        let task = tokio::spawn(self.run(handle, events, commands, stop, broker, poll));
        Ok((control, task))
    }

    async fn run(
        mut self,
        mut handle: Upstream,
        mut events: mpsc::Receiver<SourceEvent>,
        mut commands: mpsc::Receiver<SourceCommand>,
        mut stop: watch::Receiver<bool>,
        broker: Arc<RwLock<String>>,
        poll: Arc<RwLock<Option<PollConfig>>>,
    ) {
        let mut pending: Vec<Sample> = Vec::new();
        let mut redelivery = tokio::time::interval(REDELIVERY_CHECK);
        redelivery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_redelivery = None;
        // Unacknowledged refusals (dead letters not written) at the last reconnect.
        let mut refused_before = 0;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.forward(event, &mut events, &mut pending).await,
                    None => break,
                },
                Some(command) = commands.recv() => match command {
                    SourceCommand::Cut { reply } => {
                        self.flush(&mut pending).await;
                        let segments = match &self.wal {
                            Some(wal) => wal.cut().await,
                            None => Vec::new(),
                        };
                        let marker = self.input.mark().await.ok();
                        let _ = reply.send((segments, marker));
                    }
                    SourceCommand::Query { device, items, reply } => {
                        let _ = reply.send(handle.query(&device, items).await);
                    }
                    SourceCommand::SetPoll { poll: new, reply } => {
                        let result = handle.set_poll(new.clone()).await;
                        if result.is_ok() {
                            self.options.config.poll = new.clone();
                            *poll.write().expect("poll lock") = new;
                        }
                        let _ = reply.send(result);
                    }
                    SourceCommand::Reconnect { reply, .. } if matches!(handle, Upstream::Replay(_)) => {
                        let _ = reply.send(Err(ControlError::Replaying("there is no broker to switch")));
                    }
                    SourceCommand::Reconnect { url, reply } => {
                        let result = match source::switched(&self.configured, &self.options.config, url.clone()) {
                            Ok(config) => {
                                let mut options = self.options.clone();
                                options.config = config;
                                self.switch(options, &mut handle, &mut events, &mut pending)
                                    .await
                                    .map_err(ControlError::Source)
                            }
                            Err(e) => Err(ControlError::Refused(e)),
                        };
                        if result.is_ok() {
                            *broker.write().expect("broker lock") = url.to_string();
                            tracing::info!(broker = %url, "source switched to another broker");
                        }
                        let _ = reply.send(result);
                    }
                },
                _ = redelivery.tick() => {
                    // Messages whose write to the log failed are not acknowledged; the broker
                    // holds them (and, its in-flight window full, the rest) until this client
                    // reconnects. Reconnect, so they come again once the log can take them.
                    let due = last_redelivery.is_none_or(|t: std::time::Instant| t.elapsed() >= REDELIVERY_INTERVAL);
                    let refused = self.metrics.source.dead_letters_unacknowledged.load(std::sync::atomic::Ordering::Relaxed);
                    if due
                        && matches!(handle, Upstream::Broker(_))
                        && (self.wal.as_ref().is_some_and(Wal::has_unlogged) || refused != refused_before)
                    {
                        last_redelivery = Some(std::time::Instant::now());
                        refused_before = refused;
                        tracing::warn!("reconnecting to the broker: messages not acknowledged because the write-ahead log or the dead letters could not take them are to be sent again");
                        let options = self.options.clone();
                        if let Err(e) = self.switch(options, &mut handle, &mut events, &mut pending).await {
                            tracing::error!(error = %e, "cannot reconnect to the broker");
                        }
                    }
                }
                _ = crate::stop::stopped(&mut stop) => {
                    self.retire(handle, events, &mut pending).await;
                    break;
                }
            }
        }
        self.flush(&mut pending).await;
        // Dropping the input (with `self`) closes the dataflow's input once every clone is gone.
    }

    /// Starts a source with `options` in place of the running one, which is retired once the
    /// new one runs (if the new one cannot start, the old one is kept).
    async fn switch(
        &mut self,
        options: SourceOptions,
        handle: &mut Upstream,
        events: &mut mpsc::Receiver<SourceEvent>,
        pending: &mut Vec<Sample>,
    ) -> Result<(), String> {
        let (new_handle, new_events) =
            source::start(options.clone(), self.metrics.clone()).map_err(|e| e.to_string())?;
        let old = std::mem::replace(handle, Upstream::Broker(new_handle));
        let old_events = std::mem::replace(events, new_events);
        self.options = options;
        self.retire(old, old_events, pending).await;
        Ok(())
    }

    /// Stops a source and forwards everything it still delivers.
    async fn retire(
        &mut self,
        handle: Upstream,
        mut events: mpsc::Receiver<SourceEvent>,
        pending: &mut Vec<Sample>,
    ) {
        let shutdown = tokio::spawn(handle.shutdown());
        while let Some(event) = events.recv().await {
            self.forward(event, &mut events, pending).await;
        }
        let _ = shutdown.await;
    }

    async fn forward(
        &mut self,
        first: SourceEvent,
        events: &mut mpsc::Receiver<SourceEvent>,
        pending: &mut Vec<Sample>,
    ) {
        let mut next = Some(first);
        while let Some(event) = next.take() {
            if self.starts_a_batch(&event) {
                self.flush(pending).await;
            }
            self.apply(event, pending);
            if pending.len() >= MAX_BATCH {
                break;
            }
            next = events.try_recv().ok();
        }
        self.flush(pending).await;
    }

    /// Whether `event` was received too long after (or before: a released backlog) the first
    /// message of the pending batch to enter the dataflow with it.
    fn starts_a_batch(&self, event: &SourceEvent) -> bool {
        match (self.by_arrival, self.first_received, event) {
            (true, Some(first), SourceEvent::Samples(batch)) => {
                (batch.received_at - first).unsigned_abs() >= crate::dataflow::ARRIVAL_STEP
            }
            _ => false,
        }
    }

    fn apply(&mut self, event: SourceEvent, pending: &mut Vec<Sample>) {
        match event {
            SourceEvent::Samples(batch)
                if self
                    .wal
                    .as_ref()
                    .zip(batch.ack.as_ref())
                    .is_some_and(|(wal, ack)| wal.take_unlogged(&ack.id())) =>
            {
                // Its samples reached the dataflow the first time; now the log takes them.
                self.log_only.0.extend(batch.samples);
                self.log_only.1.extend(batch.ack);
            }
            SourceEvent::Samples(batch) => {
                self.registry.seen(&batch.device, batch.received_at);
                if self.sse_samples {
                    self.bus.samples(&batch.device, &batch.samples);
                }
                if pending.is_empty() {
                    self.first_received = Some(batch.received_at);
                }
                pending.extend(batch.samples);
                self.acks.extend(batch.ack);
                if let Some(hold) = batch.hold
                    && !self.holds.iter().any(|h| Arc::ptr_eq(h, &hold))
                {
                    self.holds.push(hold);
                }
            }
            SourceEvent::DeviceDiscovered { device, at } => self.registry.seen(&device, at),
            SourceEvent::Model { device, model } => self.registry.set_model(&device, model),
            SourceEvent::Version { device, version } => self.registry.set_version(&device, version),
            SourceEvent::SetResult { device, response } => {
                tracing::info!(%device, request = ?response.request_id, results = ?response.results, "Set answered");
            }
            SourceEvent::Connection { .. } | SourceEvent::Raw(_) => {}
        }
    }

    /// Hands the pending samples to the write-ahead log (which acknowledges their messages
    /// once they are on disk) and to the dataflow.
    async fn flush(&mut self, pending: &mut Vec<Sample>) {
        if let Some(wal) = &self.wal
            && !self.log_only.1.is_empty()
        {
            let (samples, acks) = std::mem::take(&mut self.log_only);
            wal.append(samples.into(), acks).await;
        }
        if pending.is_empty() {
            return;
        }
        let batch: Arc<[Sample]> = std::mem::take(pending).into();
        let acks = std::mem::take(&mut self.acks);
        let arrival = crate::dataflow::Arrival {
            received_at: self.first_received.take(),
            holds: std::mem::take(&mut self.holds),
        };
        if let Some(wal) = &self.wal {
            wal.append(batch.clone(), acks).await;
            if self.input.send_arrived(batch, arrival).await.is_err() {
                tracing::error!("the dataflow stopped; samples cannot be processed");
            }
        } else if self.input.send_arrived(batch, arrival).await.is_err() {
            tracing::error!("the dataflow stopped; samples cannot be processed");
            acks.iter().for_each(|a| a.disarm());
        }
    }
}
