//! What the source hands on: decoded samples with their provenance, device discoveries and
//! models, and (for the recorder) the raw messages themselves.

use std::sync::Arc;

use bytes::Bytes;

use crate::id::Id;
use crate::nclink::decode::SetResponse;
use crate::nclink::model::DeviceModel;
use crate::nclink::topic::MessageKind;
use crate::sample::Sample;

/// One thing the source observed.
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// A message exactly as received (only when raw output is enabled): what `record` writes.
    Raw(RawMessage),
    /// The samples of one message.
    Samples(SampleBatch),
    /// A device seen for the first time.
    DeviceDiscovered { device: Id, at: i64 },
    /// A device's model, the first time or when it changed.
    Model { device: Id, model: Arc<DeviceModel> },
    /// The NC-Link version a device announced.
    Version { device: Id, version: String },
    /// A device's answer to a `Set/Request`.
    SetResult { device: Id, response: SetResponse },
    /// The broker connection went up or down.
    Connection { connected: bool },
}

/// A message as received from the broker.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Receive time, ms since the epoch.
    pub received_at: i64,
    pub topic: String,
    pub payload: Bytes,
}

/// The samples decoded from one message.
#[derive(Debug, Clone)]
pub struct SampleBatch {
    pub device: Id,
    /// `Sample` or `QueryResponse`.
    pub kind: MessageKind,
    /// The sample channel (Sample messages).
    pub channel: Option<String>,
    /// The request id a Query answer carried.
    pub request_id: Option<String>,
    /// Receive time, ms since the epoch.
    pub received_at: i64,
    pub samples: Vec<Sample>,
    /// The acknowledgement of the message these samples came from: drop it once they are
    /// durable (QoS 1 messages only).
    pub ack: Option<Arc<super::ack::Ack>>,
    /// Cluster mode: these samples were kept back (waiting for the device's model) under this
    /// hold on the input's time, which ends once they are in the dataflow.
    pub hold: Option<Arc<crate::dataflow::Hold>>,
}
