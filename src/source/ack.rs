//! Acknowledging a QoS 1 message when what it carried is safe, not when it was read.
//!
//! The source attaches an [`Ack`] to the samples of each message; whoever makes those samples
//! durable (the write-ahead log, or the dataflow's input when the log is off) drops it, and the
//! drop sends the PUBACK. Until then the broker keeps the message and counts it against the
//! client's inflight window (Mosquitto: 20), so acks must come back within milliseconds: the
//! log commits in small groups. If millstream dies before the drop, no ack is sent and the
//! broker delivers the message again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rumqttc::{AsyncClient, Publish};

use crate::metrics::Metrics;

/// A received message's identity: packet id, CRC-32 of topic and payload.
pub type MessageId = (u16, u32);

pub fn message_id(publish: &Publish) -> MessageId {
    let mut crc = flate2::Crc::new();
    crc.update(publish.topic.as_bytes());
    crc.update(&publish.payload);
    (publish.pkid, crc.sum())
}

/// The pending acknowledgement of one received message; sent when dropped.
pub struct Ack {
    client: AsyncClient,
    publish: Publish,
    metrics: Arc<Metrics>,
    /// Cleared when the samples were not taken: then no ack is sent and the broker redelivers.
    armed: AtomicBool,
}

impl Ack {
    pub(super) fn new(client: AsyncClient, publish: Publish, metrics: Arc<Metrics>) -> Ack {
        Ack {
            client,
            publish,
            metrics,
            armed: AtomicBool::new(true),
        }
    }

    /// The message's identity across a crash: its packet id and a checksum of topic and
    /// payload. A broker redelivering an unacknowledged message uses the same packet id.
    pub fn id(&self) -> MessageId {
        message_id(&self.publish)
    }

    /// Never acknowledge this message (its samples were not taken).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ack(pkid {})", self.publish.pkid)
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        // A failed ack (connection gone) means redelivery: the sinks are idempotent.
        if self.client.try_ack(&self.publish).is_err() {
            self.metrics
                .source
                .ack_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
