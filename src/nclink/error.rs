//! Why a message could not be decoded.
//!
//! Every way a message from the wire can be refused has one `Reason`; the reason is the label
//! of the dead-letter counter (`millstream_dead_letters_total{reason}`) and of the dead-letter
//! record, so the set is small, stable and documented in DESIGN.md §7.

use std::fmt;

/// The class of a decode failure; its `as_str` form is a stable public label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not JSON at all (syntax error, truncated, not UTF-8).
    MalformedJson,
    /// Valid JSON, but not the shape NC-Link prescribes for this topic.
    WrongShape,
    /// A topic that is not one of the NC-Link topics of DESIGN.md §2.
    UnknownTopic,
    /// A payload above the configured application limit (`source.max_payload`).
    TooLarge,
    /// A Sample message for a channel the device's model does not declare.
    UnknownChannel,
    /// A Sample message kept waiting for the device's model until the wait bound was reached.
    NoModel,
    /// A QoS 0 message that arrived while the engine's input buffer was full, or one beyond
    /// a bound on devices, ids or models (`source.limits`).
    Overloaded,
    /// An event time outside `source.limits` (by default before 1970 or from 2200 on).
    BadTime,
    /// A probe answer no probe of this platform asked for.
    Unsolicited,
}

impl Reason {
    /// Every reason, in a fixed order (for counters and status output).
    pub const ALL: [Reason; 9] = [
        Reason::MalformedJson,
        Reason::WrongShape,
        Reason::UnknownTopic,
        Reason::TooLarge,
        Reason::UnknownChannel,
        Reason::NoModel,
        Reason::Overloaded,
        Reason::BadTime,
        Reason::Unsolicited,
    ];

    /// The stable label (`malformed_json`, `wrong_shape`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::WrongShape => "wrong_shape",
            Reason::UnknownTopic => "unknown_topic",
            Reason::TooLarge => "too_large",
            Reason::UnknownChannel => "unknown_channel",
            Reason::NoModel => "no_model",
            Reason::Overloaded => "overloaded",
            Reason::BadTime => "bad_time",
            Reason::Unsolicited => "unsolicited",
        }
    }

    /// Position in [`Reason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the reason class plus a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    pub reason: Reason,
    pub detail: String,
}

impl DecodeError {
    pub fn new(reason: Reason, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }

    pub fn wrong_shape(detail: impl Into<String>) -> DecodeError {
        DecodeError::new(Reason::WrongShape, detail)
    }

    /// Classifies a serde_json failure: syntax problems are `malformed_json`, type and
    /// structure problems are `wrong_shape`.
    pub fn from_json(err: &serde_json::Error) -> DecodeError {
        use serde_json::error::Category;
        let reason = match err.classify() {
            Category::Data => Reason::WrongShape,
            Category::Syntax | Category::Eof | Category::Io => Reason::MalformedJson,
        };
        DecodeError::new(reason, err.to_string())
    }
}
