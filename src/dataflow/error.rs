//! Why the dataflow could not start or did not end well, typed so the engine can say which.

/// A failure of the timely computation.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// timely refused to start (in cluster mode: an address could not be bound or reached).
    #[error("cannot start the dataflow: {0}")]
    Start(String),
    /// A worker panicked or lost its peers; its outputs are incomplete.
    #[error("dataflow worker failed: {0}")]
    Worker(String),
}
