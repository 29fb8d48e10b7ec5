//! The API's handle on the running source: switch to another broker, send an NC-Link query,
//! change polling, and cut the write-ahead log at a checkpoint. Each is a command to the
//! engine's ingest task, which owns the source (or the replay in its place) and answers it.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::config::{BrokerUrl, PollConfig};
use crate::dataflow::EpochMarker;

/// Why a command to the source was not carried out. The HTTP API answers each with its own
/// status (`crate::http::ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The engine is shutting down.
    #[error("the source is stopping")]
    Stopping,
    /// A replay runs in the source's place: there are no devices or broker to talk to.
    #[error("replaying: {0}")]
    Replaying(&'static str),
    /// No source stands behind this control (a state built for API tests).
    #[error("no source is running")]
    Detached,
    /// The request itself is refused (a switch that would send credentials in the clear).
    #[error("{0}")]
    Refused(String),
    /// The broker or the device did not do it (unreachable, no answer, an error answer).
    #[error("{0}")]
    Source(String),
}

/// A request to the ingest task.
pub enum SourceCommand {
    Reconnect {
        url: BrokerUrl,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Query {
        device: String,
        items: Vec<String>,
        reply: oneshot::Sender<Result<String, ControlError>>,
    },
    /// Replace the polling settings (`None` stops polling).
    SetPoll {
        poll: Option<PollConfig>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Cut the write-ahead log and the dataflow's input at the same point (a checkpoint).
    Cut {
        reply: oneshot::Sender<(Vec<u64>, Option<Arc<EpochMarker>>)>,
    },
}

/// The API's handle on the source.
#[derive(Clone)]
pub struct SourceControl {
    /// `None`: no source behind it ([`SourceControl::detached`]).
    commands: Option<mpsc::Sender<SourceCommand>>,
    /// The broker in use (passwords hidden).
    pub broker: Arc<RwLock<String>>,
    /// The polling settings in force.
    pub poll: Arc<RwLock<Option<PollConfig>>>,
}

impl SourceControl {
    /// A control for the task that answers `commands` (the engine's ingest).
    pub fn new(
        commands: mpsc::Sender<SourceCommand>,
        broker: String,
        poll: Option<PollConfig>,
    ) -> SourceControl {
        SourceControl {
            commands: Some(commands),
            broker: Arc::new(RwLock::new(broker)),
            poll: Arc::new(RwLock::new(poll)),
        }
    }

    /// A control with no source behind it (every command fails with
    /// [`ControlError::Detached`]), for API tests.
    pub fn detached(broker: &str) -> SourceControl {
        SourceControl {
            commands: None,
            broker: Arc::new(RwLock::new(broker.to_string())),
            poll: Arc::default(),
        }
    }

    /// Sends a command made around a reply channel and waits for the answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> SourceCommand,
    ) -> Result<T, ControlError> {
        let commands = self.commands.as_ref().ok_or(ControlError::Detached)?;
        let (reply, answer) = oneshot::channel();
        commands
            .send(command(reply))
            .await
            .map_err(|_| ControlError::Stopping)?;
        answer.await.map_err(|_| ControlError::Stopping)?
    }

    pub async fn reconnect(&self, url: BrokerUrl) -> Result<(), ControlError> {
        self.ask(|reply| SourceCommand::Reconnect { url, reply })
            .await
    }

    pub async fn query(&self, device: String, items: Vec<String>) -> Result<String, ControlError> {
        self.ask(|reply| SourceCommand::Query {
            device,
            items,
            reply,
        })
        .await
    }

    /// Replaces the polling settings of the running source (and of any it reconnects with).
    pub async fn set_poll(&self, poll: Option<PollConfig>) -> Result<(), ControlError> {
        self.ask(|reply| SourceCommand::SetPoll { poll, reply })
            .await
    }

    pub fn poll(&self) -> Option<PollConfig> {
        self.poll.read().expect("poll lock").clone()
    }

    /// Cuts the write-ahead log and marks the dataflow's input at the same point: the segments
    /// cut (those that held anything) and the marker telling when the dataflow has passed
    /// them. `None` when the source is stopping.
    pub async fn cut(&self) -> Option<(Vec<u64>, Option<Arc<EpochMarker>>)> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()?
            .send(SourceCommand::Cut { reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    pub fn broker(&self) -> String {
        self.broker.read().expect("broker lock").clone()
    }
}
