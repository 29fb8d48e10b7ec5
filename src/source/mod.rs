//! The MQTT source: connects to the broker as an NC-Link platform and turns its traffic into
//! [`SourceEvent`]s (decoded samples with provenance, device discoveries and models).
//!
//! Layout:
//! - [`connection`]: the rumqttc event loop, reconnects, subscriptions, input bounds.
//! - [`platform`]: the NC-Link platform logic (discovery, probe, poll, decode), free of I/O.
//! - [`pending`]: Sample messages waiting for their device's model.
//! - [`event`]: what the source emits.
//! - [`control`]: the API's handle on the running source (commands to the engine's ingest).
//! - this file: the driver task that joins them, performs the platform's actions, writes dead
//!   letters and acknowledges each message to the broker once its events were handed on.
//!
//! Subscriptions are QoS 1 on a persistent session (unless `clean_session`), with manual acks:
//! a message is acknowledged only after everything derived from it was accepted by the
//! consumer's bounded channel, so a slow consumer slows the broker, not memory.

pub mod ack;
pub mod connection;
pub mod control;
pub mod event;
pub mod pending;
pub mod platform;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use connection::BrokerOptions;
use connection::Incoming;
pub use event::{RawMessage, SampleBatch, SourceEvent};
use platform::{Action, Platform, PlatformOptions};

use crate::config::{DeadLetterConfig, SourceConfig};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::metrics::{Metrics, inc};
use crate::nclink::{DecodeError, Reason};
use crate::sample::now_ms;

/// The source settings for a switch to the broker at `url` (`POST /api/v1/source`), from the
/// configured ones: the configured credentials and client certificate go only to the
/// configured host, never elsewhere (a URL with its own user and password brings those), and a
/// switch from TLS to plain TCP is refused unless the URL brings its own credentials (the
/// configured ones would cross the network in the clear).
pub fn switched(
    configured: &SourceConfig,
    current: &SourceConfig,
    url: crate::config::BrokerUrl,
) -> Result<SourceConfig, String> {
    let own_credentials = url.username.is_some() || url.password.is_some();
    let same_host = url.host.eq_ignore_ascii_case(&configured.url.host);
    if configured.url.tls && !url.tls && !own_credentials {
        return Err(format!(
            "refusing to switch from TLS ({}) to plain TCP ({url}) with the configured \
             credentials; give the new URL its own user and password, or use mqtts://",
            configured.url
        ));
    }
    let mut config = current.clone();
    config.url = url;
    if own_credentials {
        // The URL's own: the keys of the file would override them.
        config.username = None;
        config.password = None;
    } else if same_host {
        config.username = configured.username.clone();
        config.password = configured.password.clone();
        config.url.username = configured.url.username.clone();
        config.url.password = configured.url.password.clone();
    } else {
        config.username = None;
        config.password = None;
    }
    config.tls = configured.tls.clone();
    if !same_host && let Some(tls) = &mut config.tls {
        // The client certificate proves who we are to the configured broker only.
        tls.client_cert = None;
        tls.client_key = None;
    }
    if !config.url.tls {
        config.tls = None;
    }
    Ok(config)
}

/// How often the platform's timers (probe retries, polls, timeouts) run.
const TICK: Duration = Duration::from_millis(100);

/// How the source is run.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub config: SourceConfig,
    /// Where dead letters go (`state_dir/dead-letters`); `None` counts them only.
    pub dead_letter_dir: Option<std::path::PathBuf>,
    pub dead_letters: DeadLetterConfig,
    /// Emit raw messages too (for the recorder).
    pub raw: bool,
    /// Only listen: never publish (no Register answers, probes or polls), e.g. to record
    /// beside a running platform.
    pub passive: bool,
    /// Subscriptions; `None` for the NC-Link platform's (every device → platform topic).
    pub subscriptions: Option<Vec<String>>,
    /// Capacity of the output channel, in events.
    pub capacity: usize,
    /// Messages whose samples the write-ahead log already replayed: when the broker delivers
    /// them again (redelivery of what was not acknowledged before a crash), they are only
    /// acknowledged.
    pub replayed: Arc<std::sync::Mutex<std::collections::HashSet<ack::MessageId>>>,
    /// The devices this process speaks to (cluster mode: it shares Sample traffic with the
    /// other processes and sends control traffic only to the devices it owns).
    pub shard: crate::cluster::Shard,
    /// Cluster mode: the input's holds, taken while messages wait for a model.
    pub holds: Option<crate::dataflow::Holds>,
}

impl SourceOptions {
    pub fn new(config: SourceConfig, state_dir: &std::path::Path) -> SourceOptions {
        SourceOptions {
            config,
            dead_letter_dir: Some(state_dir.join("dead-letters")),
            dead_letters: DeadLetterConfig::default(),
            raw: false,
            passive: false,
            subscriptions: None,
            capacity: 1024,
            replayed: Arc::default(),
            shard: crate::cluster::Shard::default(),
            holds: None,
        }
    }

    /// The shared-subscription group of a cluster's processes: their common client id.
    pub fn share_group(&self) -> String {
        let id = self.config.client_id.trim();
        let group: String = id
            .chars()
            .map(|c| {
                if c == '/' || c == '+' || c == '#' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if group.is_empty() {
            "millstream".into()
        } else {
            group
        }
    }

    /// The broker settings of this source. In a cluster each process connects with its own
    /// client id (`<client_id>-p<process>`): the broker keeps one persistent session per
    /// process.
    pub fn broker(&self) -> BrokerOptions {
        let c = &self.config;
        let client_id = if self.shard.is_cluster() && !c.client_id.is_empty() {
            format!("{}-p{}", c.client_id, self.shard.process)
        } else {
            c.client_id.clone()
        };
        BrokerOptions {
            url: c.url.clone(),
            client_id,
            username: c.username.clone(),
            password: c.password.clone(),
            tls: c.tls.clone(),
            clean_session: c.clean_session,
            keep_alive: c.keep_alive.get(),
            max_packet_size: c.max_packet_size.bytes(),
            request_capacity: 4096,
            manual_acks: true,
        }
    }
}

/// Failure to start the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source: {0}")]
    Setup(String),
    #[error("source is not running")]
    Stopped,
}

enum Command {
    Query {
        device: String,
        items: Vec<String>,
        reply: oneshot::Sender<String>,
    },
    SetPoll {
        poll: Option<crate::config::PollConfig>,
        reply: oneshot::Sender<()>,
    },
}

/// A running source.
pub struct SourceHandle {
    client: AsyncClient,
    commands: mpsc::Sender<Command>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<()>,
    connection: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

/// Starts the source. Events arrive on the returned receiver until the source is shut down
/// (the receiver then ends).
pub fn start(
    options: SourceOptions,
    metrics: Arc<Metrics>,
) -> Result<(SourceHandle, mpsc::Receiver<SourceEvent>), SourceError> {
    let subscriptions = options.subscriptions.clone().unwrap_or_else(|| {
        if options.shard.is_cluster() {
            crate::nclink::topic::shared_platform_subscriptions(&options.share_group())
        } else {
            crate::nclink::topic::platform_subscriptions()
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (client, incoming, connection) = connection::spawn(
        &options.broker(),
        subscriptions,
        options.config.buffer.bytes(),
        metrics.clone(),
        stop_rx,
    )
    .map_err(SourceError::Setup)?;
    let (events_tx, events_rx) = mpsc::channel(options.capacity.max(1));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let platform = Platform::new(
        PlatformOptions {
            client_id: options.config.client_id.clone(),
            poll: options.config.poll.clone(),
            probe_timeout_ms: options.config.probe_timeout.as_millis() as i64,
            pending: options.config.pending.clone(),
            max_payload: options.config.max_payload.bytes(),
            raw: options.raw,
            shard: options.shard,
            holds: options.holds.clone(),
            limits: options.config.limits.wire(),
            recorded: false,
        },
        metrics.clone(),
    );
    let dead_letters = match &options.dead_letter_dir {
        Some(dir) => DeadLetters::new(dir, options.dead_letters.clone(), metrics.clone()),
        None => DeadLetters::counting_only(metrics.clone()),
    };
    let driver = Driver {
        platform,
        client: client.clone(),
        dead_letters,
        events: events_tx,
        metrics: metrics.clone(),
        passive: options.passive,
        replayed: options.replayed.clone(),
    };
    let driver = tokio::spawn(driver.run(incoming, commands_rx));
    Ok((
        SourceHandle {
            client,
            commands: commands_tx,
            stop: stop_tx,
            driver,
            connection,
            metrics,
        },
        events_rx,
    ))
}

impl SourceHandle {
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn is_connected(&self) -> bool {
        self.metrics.source.connected.load(Ordering::Relaxed)
    }

    /// Publishes an NC-Link `Query/Request` for `items` of `device`; returns its request id.
    /// The answer arrives as a [`SampleBatch`] carrying that id.
    pub async fn query(&self, device: &str, items: Vec<String>) -> Result<String, SourceError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Query {
                device: device.to_string(),
                items,
                reply,
            })
            .await
            .map_err(|_| SourceError::Stopped)?;
        answer.await.map_err(|_| SourceError::Stopped)
    }

    /// Replaces the polling settings (`None` stops polling).
    pub async fn set_poll(
        &self,
        poll: Option<crate::config::PollConfig>,
    ) -> Result<(), SourceError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::SetPoll { poll, reply })
            .await
            .map_err(|_| SourceError::Stopped)?;
        answer.await.map_err(|_| SourceError::Stopped)
    }

    /// Stops gracefully: acknowledges what was processed, disconnects, processes what was
    /// already received, flushes dead letters. The event receiver ends after the last event.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Queued after every ack, so the acks reach the broker before the DISCONNECT; a
        // connection that is down stops on the stop signal instead. (Not conditional on the
        // shared `connected` gauge: while switching brokers it describes the new connection.)
        let _ = self.client.try_disconnect();
        let mut connection = self.connection;
        if tokio::time::timeout(Duration::from_secs(5), &mut connection)
            .await
            .is_err()
        {
            tracing::warn!("the broker connection did not close within 5 s; dropping it");
            connection.abort();
        }
        let _ = self.driver.await;
    }
}

struct Driver {
    platform: Platform,
    client: AsyncClient,
    dead_letters: DeadLetters,
    events: mpsc::Sender<SourceEvent>,
    metrics: Arc<Metrics>,
    passive: bool,
    replayed: Arc<std::sync::Mutex<std::collections::HashSet<ack::MessageId>>>,
}

impl Driver {
    async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<Incoming>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = incoming.recv() => match message {
                    Some(message) => {
                        if !self.on_incoming(message).await {
                            break;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let actions = self.platform.on_tick(now_ms());
                    if !self.perform(actions).await {
                        break;
                    }
                    self.dead_letters.flush();
                }
                Some(command) = commands.recv() => match command {
                    Command::Query { device, items, reply } => {
                        let (id, actions) = self.platform.query(&device, &items, now_ms());
                        let _ = reply.send(id);
                        if !self.perform(actions).await {
                            break;
                        }
                    }
                    Command::SetPoll { poll, reply } => {
                        self.platform.set_poll(poll);
                        let _ = reply.send(());
                    }
                },
            }
        }
        self.dead_letters.flush();
    }

    /// Returns false when the consumer is gone.
    async fn on_incoming(&mut self, message: Incoming) -> bool {
        match message {
            Incoming::Publish {
                publish,
                received_at,
            } => {
                let size = publish.payload.len() as u64;
                if publish.dup && self.is_replayed(&publish) {
                    self.metrics
                        .source
                        .buffered_bytes
                        .fetch_sub(size, Ordering::Relaxed);
                    if self.client.try_ack(&publish).is_err() {
                        inc(&self.metrics.source.ack_failures);
                    }
                    return true;
                }
                let mut actions =
                    self.platform
                        .on_message(&publish.topic, publish.payload.clone(), received_at);
                let ack = (publish.qos != QoS::AtMostOnce).then(|| {
                    Arc::new(ack::Ack::new(
                        self.client.clone(),
                        publish,
                        self.metrics.clone(),
                    ))
                });
                // The message is acknowledged when its samples are durable (whoever holds the
                // last reference drops it); a message without samples, once handled.
                if let Some(ack) = &ack {
                    for action in actions.iter_mut() {
                        if let Action::Emit(SourceEvent::Samples(batch)) = action {
                            batch.ack = Some(ack.clone());
                        }
                    }
                }
                let dead_lettered = actions
                    .iter()
                    .any(|a| matches!(a, Action::DeadLetter { .. }));
                let alive = self.perform(actions).await;
                self.metrics
                    .source
                    .buffered_bytes
                    .fetch_sub(size, Ordering::Relaxed);
                // A refused message is acknowledged once its dead letter is out of the
                // process; one that could not be written (a full disk) comes again instead.
                let kept = !dead_lettered || self.dead_letters.commit();
                if !kept && ack.is_some() {
                    inc(&self.metrics.source.dead_letters_unacknowledged);
                }
                if (!alive || !kept)
                    && let Some(ack) = ack
                {
                    // Nobody took the samples: no ack, the broker delivers the message again.
                    ack.disarm();
                }
                alive
            }
            Incoming::Overloaded {
                topic,
                received_at,
                size,
                head,
            } => {
                inc(&self.metrics.source.messages);
                let error = DecodeError::new(
                    Reason::Overloaded,
                    format!("QoS 0 message of {size} bytes arrived while source.buffer was full"),
                );
                self.write_dead_letter(&topic, received_at, &error, &head);
                true
            }
            Incoming::Connected { .. } => self
                .events
                .send(SourceEvent::Connection { connected: true })
                .await
                .is_ok(),
            Incoming::Disconnected { .. } => self
                .events
                .send(SourceEvent::Connection { connected: false })
                .await
                .is_ok(),
        }
    }

    /// Whether the write-ahead log already replayed this redelivered message (once only).
    fn is_replayed(&self, publish: &rumqttc::Publish) -> bool {
        let mut replayed = self.replayed.lock().expect("replayed lock");
        !replayed.is_empty() && replayed.remove(&ack::message_id(publish))
    }

    async fn perform(&mut self, mut actions: Vec<Action>) -> bool {
        let mut alive = true;
        for action in actions.drain(..) {
            match action {
                Action::Publish { .. } if self.passive => {}
                Action::Publish {
                    topic,
                    payload,
                    qos,
                } => {
                    if let Err(e) = self.client.try_publish(topic, qos, false, payload) {
                        inc(&self.metrics.source.publish_failures);
                        tracing::debug!(error = %e, "cannot queue a request to a device");
                    }
                }
                Action::Emit(event) => {
                    if alive && self.events.send(event).await.is_err() {
                        alive = false;
                    }
                }
                Action::DeadLetter {
                    topic,
                    received_at,
                    error,
                    payload,
                } => {
                    self.write_dead_letter(&topic, received_at, &error, &payload);
                }
            }
        }
        self.platform.recycle(actions);
        alive
    }

    fn write_dead_letter(
        &mut self,
        topic: &str,
        received_at: i64,
        error: &DecodeError,
        payload: &[u8],
    ) {
        self.dead_letters.write(DeadLetter {
            topic,
            received_at,
            reason: error.reason,
            detail: &error.detail,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerUrl, Secret, TlsConfig};

    fn configured(url: &str) -> SourceConfig {
        let mut config = SourceConfig::for_url(url.parse().unwrap());
        config.username = Some("plant".into());
        config.password = Some(Secret::new("switch-test-password"));
        config.tls = url.starts_with("mqtts").then(|| TlsConfig {
            ca: Some("ca.pem".into()),
            client_cert: Some("c.pem".into()),
            client_key: Some("k.pem".into()),
        });
        config
    }

    fn url(text: &str) -> BrokerUrl {
        text.parse().unwrap()
    }

    #[test]
    fn a_switch_never_takes_the_configured_credentials_elsewhere() {
        let plant = configured("mqtts://broker.plant.example:8883");
        // Another host: no configured user, password or client certificate goes there.
        let other = switched(&plant, &plant, url("mqtts://evil.example:8883")).unwrap();
        assert_eq!(
            (other.username.as_deref(), other.password.is_some()),
            (None, false)
        );
        assert!(other.effective_password().is_none());
        let tls = other.tls.as_ref().unwrap();
        assert!(tls.client_cert.is_none() && tls.client_key.is_none());
        assert!(tls.ca.is_some(), "the CA to trust is no secret");
        // Back to the configured host (from wherever the source is now): they come back.
        let back = switched(&plant, &other, url("mqtts://BROKER.plant.example:8884")).unwrap();
        assert_eq!(back.username.as_deref(), Some("plant"));
        assert!(back.password.is_some());
        assert!(back.tls.unwrap().client_cert.is_some());
        // The URL's own credentials are used as given.
        let own = switched(&plant, &plant, url("mqtt://me:mine@other.example:1883")).unwrap();
        assert_eq!(own.effective_username(), Some("me"));
        assert_eq!(own.effective_password().unwrap().expose(), "mine");
        assert!(own.tls.is_none());
    }

    #[test]
    fn a_switch_from_tls_to_plain_needs_the_urls_own_credentials() {
        let plant = configured("mqtts://broker.plant.example:8883");
        let refused =
            switched(&plant, &plant, url("mqtt://broker.plant.example:1883")).unwrap_err();
        assert!(refused.contains("TLS"), "{refused}");
        assert!(!refused.contains("switch-test-password"));
        assert!(switched(&plant, &plant, url("mqtt://u:p@broker.plant.example:1883")).is_ok());
        // Plain to plain is no downgrade.
        let plain = configured("mqtt://127.0.0.1:1883");
        let moved = switched(&plain, &plain, url("mqtt://127.0.0.1:1884")).unwrap();
        assert_eq!(moved.username.as_deref(), Some("plant"));
    }
}
