//! Getting samples into the dataflow: a bounded channel from the async side to worker 0, whose
//! source operator drains it whenever a send activates it (no polling), stamps what it drained
//! with the current batch time, and advances. Closing the channel drops the operator's
//! capability: the dataflow then flushes and ends.

use std::sync::{Arc, Mutex};

use timely::dataflow::Scope;
use timely::dataflow::Stream;
use timely::dataflow::operators::generic::operator::source as timely_source;
use timely::scheduling::SyncActivator;
use tokio::sync::mpsc;

use crate::sample::Sample;

/// The input has been closed (the dataflow is ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the dataflow input is closed")]
pub struct InputClosed;

/// Most batches drained per activation before yielding to other operators.
const MAX_BATCHES_PER_ACTIVATION: usize = 256;

/// The sending side, usable from async code. Dropping every clone closes the input.
#[derive(Clone)]
pub struct DataflowInput {
    /// `None` only while dropping.
    sender: Option<mpsc::Sender<Vec<Sample>>>,
    activator: ActivatorSlot,
}

/// Where worker 0 puts the activator that senders use to wake it.
type ActivatorSlot = Arc<Mutex<Option<SyncActivator>>>;

/// The receiving side, taken by worker 0.
pub(super) struct Receiver {
    receiver: Mutex<Option<mpsc::Receiver<Vec<Sample>>>>,
    activator: ActivatorSlot,
}

impl Receiver {
    pub(super) fn take(&self) -> Option<(mpsc::Receiver<Vec<Sample>>, ActivatorSlot)> {
        let receiver = self.receiver.lock().expect("input lock").take()?;
        Some((receiver, self.activator.clone()))
    }
}

pub(super) fn channel(capacity: usize) -> (DataflowInput, Arc<Receiver>) {
    let (sender, receiver) = mpsc::channel(capacity);
    let activator = Arc::new(Mutex::new(None));
    (
        DataflowInput {
            sender: Some(sender),
            activator: activator.clone(),
        },
        Arc::new(Receiver {
            receiver: Mutex::new(Some(receiver)),
            activator,
        }),
    )
}

impl DataflowInput {
    /// Sends a batch (waits while the channel is full: back-pressure to the source).
    pub async fn send(&self, batch: Vec<Sample>) -> Result<(), InputClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let sender = self.sender.as_ref().ok_or(InputClosed)?;
        sender.send(batch).await.map_err(|_| InputClosed)?;
        self.wake();
        Ok(())
    }

    /// Sends a batch from a non-async thread.
    pub fn blocking_send(&self, batch: Vec<Sample>) -> Result<(), InputClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let sender = self.sender.as_ref().ok_or(InputClosed)?;
        sender.blocking_send(batch).map_err(|_| InputClosed)?;
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if let Some(activator) = self.activator.lock().expect("activator lock").as_ref() {
            let _ = activator.activate();
        }
    }

    /// Closes this handle; the input closes when every clone is closed or dropped.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for DataflowInput {
    /// The worker only notices a closed channel when it looks: release the sender, then wake it.
    fn drop(&mut self) {
        drop(self.sender.take());
        self.wake();
    }
}

/// The source operator. Only the worker holding `receiver` produces data; the others release
/// their capability at once.
pub(super) fn source<'scope>(
    scope: Scope<'scope, u64>,
    receiver: Option<Arc<Receiver>>,
) -> Stream<'scope, u64, Vec<Sample>> {
    timely_source::<_, timely::container::CapacityContainerBuilder<Vec<Sample>>, _, _>(
        scope,
        "Input",
        move |capability, info| {
            let taken = receiver.and_then(|r| r.take());
            let mut capability = taken.is_some().then_some(capability);
            let reactivate = scope.activator_for(info.address.clone());
            let mut receiver = None;
            if let Some((rx, activator)) = taken {
                *activator.lock().expect("activator lock") =
                    Some(scope.worker().sync_activator_for(info.address.to_vec()));
                receiver = Some(rx);
            }
            move |output| {
                let (Some(cap), Some(rx)) = (capability.as_mut(), receiver.as_mut()) else {
                    capability = None;
                    return;
                };
                let mut sent = false;
                let mut closed = false;
                for _ in 0..MAX_BATCHES_PER_ACTIVATION {
                    match rx.try_recv() {
                        Ok(mut batch) => {
                            output.session(&*cap).give_container(&mut batch);
                            sent = true;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    capability = None;
                    receiver = None;
                    return;
                }
                if sent {
                    let next = *cap.time() + 1;
                    cap.downgrade(&next);
                    // There may be more: come back after the other operators have run.
                    if !rx.is_empty() {
                        reactivate.activate();
                    }
                }
            }
        },
    )
}
