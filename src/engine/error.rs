//! Why the engine did not start: which of its steps failed, and why (each reason names what
//! it was about: the sink, the file, the address).

use crate::dataflow::DataflowError;

/// A step of [`super::Engine::start`] that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A sink, or its spool, could not start.
    #[error("{0}")]
    Sinks(String),
    /// A lake's upload to HDFS is not usable as configured.
    #[error("{0}")]
    Upload(String),
    #[error(transparent)]
    Dataflow(#[from] DataflowError),
    /// The write-ahead log could not be opened or replayed.
    #[error("{0}")]
    Log(String),
    /// The source (or the replay in its place) could not start.
    #[error("{0}")]
    Ingest(String),
    /// The HTTP API could not listen, or would listen beyond loopback without a token.
    #[error("{0}")]
    Http(String),
}
