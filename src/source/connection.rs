//! The MQTT connection: one task that does nothing but poll rumqttc's event loop, so the
//! connection keeps breathing (pings, acks, reconnects) whatever the rest of the engine does.
//!
//! Received messages go to the platform driver through an unbounded channel whose bytes are
//! accounted: QoS 1 traffic is bounded by the broker's in-flight window, because millstream
//! acknowledges only after processing (manual acks); QoS 0 messages, which no window bounds,
//! are refused as `overloaded` once `source.buffer` bytes are waiting. The event loop is never
//! blocked on the consumer, so the consumer's acknowledgements can always get through.
//!
//! On any connection error the task waits with capped, jittered backoff and polls again, which
//! makes rumqttc reconnect; the subscriptions are renewed on every ConnAck.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode, Transport,
};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::config::{BrokerUrl, Secret, TlsConfig};
use crate::metrics::{Metrics, inc};
use crate::sample::now_ms;

/// Everything needed to reach a broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub url: BrokerUrl,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<TlsConfig>,
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// Largest packet accepted or sent.
    pub max_packet_size: usize,
    /// rumqttc's request queue (publishes and acks waiting for the event loop).
    pub request_capacity: usize,
    /// Manual acknowledgement of received QoS 1 messages.
    pub manual_acks: bool,
}

/// rumqttc options for a broker.
pub fn mqtt_options(b: &BrokerOptions) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(b.client_id.clone(), b.url.host.clone(), b.url.port);
    o.set_keep_alive(b.keep_alive.max(Duration::from_secs(1)))
        .set_clean_session(b.clean_session || b.client_id.is_empty())
        .set_max_packet_size(b.max_packet_size, b.max_packet_size)
        .set_request_channel_capacity(b.request_capacity)
        .set_manual_acks(b.manual_acks);
    let username = b.username.as_deref().or(b.url.username.as_deref());
    let password = b.password.as_ref().or(b.url.password.as_ref());
    if let Some(user) = username {
        o.set_credentials(user, password.map(Secret::expose).unwrap_or(""));
    }
    if b.url.tls {
        let config = crate::tls::client_config(b.tls.as_ref())?;
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    Ok(o)
}

/// What the connection task passes on.
#[derive(Debug)]
pub enum Incoming {
    Connected {
        session_present: bool,
    },
    Disconnected {
        error: String,
    },
    Publish {
        publish: rumqttc::Publish,
        received_at: i64,
    },
    /// A QoS 0 message refused because the buffer was full; its first bytes are kept.
    Overloaded {
        topic: String,
        received_at: i64,
        size: usize,
        head: Bytes,
    },
}

/// Bytes kept of a message refused as `overloaded`.
const OVERLOADED_HEAD: usize = 1024;

/// Starts the connection task. It ends when `stop` turns true or the client disconnects.
pub fn spawn(
    broker: &BrokerOptions,
    subscriptions: Vec<String>,
    buffer_limit: usize,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<
    (
        AsyncClient,
        mpsc::UnboundedReceiver<Incoming>,
        tokio::task::JoinHandle<()>,
    ),
    String,
> {
    let options = mqtt_options(broker)?;
    let (client, eventloop) = AsyncClient::new(options, broker.request_capacity);
    let (tx, rx) = mpsc::unbounded_channel();
    let url = broker.url.to_string();
    let owner = metrics
        .source
        .connection_owner
        .fetch_add(1, Ordering::SeqCst)
        + 1;
    let task = tokio::spawn(run(
        owner,
        eventloop,
        client.clone(),
        subscriptions,
        buffer_limit,
        metrics,
        tx,
        stop,
        url,
    ));
    Ok((client, rx, task))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    owner: u64,
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<String>,
    buffer_limit: usize,
    metrics: Arc<Metrics>,
    tx: mpsc::UnboundedSender<Incoming>,
    mut stop: watch::Receiver<bool>,
    url: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut failures_in_a_row = 0u32;
    // This connection's own state; the shared gauge follows it while this is the newest one.
    let mut connected = false;
    let report = |up: bool| {
        if metrics.source.connection_owner.load(Ordering::SeqCst) == owner {
            metrics.source.connected.store(up, Ordering::Relaxed);
        }
    };
    let filters: Vec<SubscribeFilter> = subscriptions
        .iter()
        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
        .collect();
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            // Only taken while the connection is down (see below); a live connection is
            // closed by the client's disconnect request, which flushes pending acks first.
            _ = crate::stop::stopped(&mut stop), if !connected => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                report(true);
                inc(&metrics.source.connects);
                backoff.reset();
                if failures_in_a_row > 0 {
                    tracing::info!(broker = %url, "reconnected to the broker");
                } else {
                    tracing::info!(broker = %url, session_present = ack.session_present, "connected to the broker");
                }
                failures_in_a_row = 0;
                if !filters.is_empty()
                    && let Err(e) = client.try_subscribe_many(filters.clone())
                {
                    tracing::error!(error = %e, "cannot queue the subscriptions");
                }
                let _ = tx.send(Incoming::Connected {
                    session_present: ack.session_present,
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let received_at = now_ms();
                let size = publish.payload.len();
                let buffered = metrics.source.buffered_bytes.load(Ordering::Relaxed) as usize;
                let message = if publish.qos == QoS::AtMostOnce && buffered + size > buffer_limit {
                    Incoming::Overloaded {
                        received_at,
                        size,
                        head: publish.payload.slice(..size.min(OVERLOADED_HEAD)),
                        topic: publish.topic,
                    }
                } else {
                    metrics
                        .source
                        .buffered_bytes
                        .fetch_add(size as u64, Ordering::Relaxed);
                    Incoming::Publish {
                        publish,
                        received_at,
                    }
                };
                if tx.send(message).is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    tracing::error!(refused, "the broker refused subscriptions (check its ACLs)");
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                let was_connected = std::mem::replace(&mut connected, false);
                report(false);
                inc(&metrics.source.connection_errors);
                failures_in_a_row += 1;
                if was_connected {
                    tracing::warn!(broker = %url, error = %e, "lost the broker connection; reconnecting");
                    let _ = tx.send(Incoming::Disconnected {
                        error: e.to_string(),
                    });
                } else if failures_in_a_row == 1 || failures_in_a_row.is_multiple_of(30) {
                    tracing::warn!(broker = %url, error = %e, attempts = failures_in_a_row, "cannot connect to the broker; retrying");
                }
                let stopping = *stop.borrow();
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = crate::stop::stopped(&mut stop) => break,
                }
            }
        }
    }
    report(false);
}
