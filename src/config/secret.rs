//! A password or token: usable by the code that needs it, invisible everywhere else (logs,
//! errors, `check` output, `/api/v1/status`), because its `Debug` and `Display` print `***`.
//!
//! Services sometimes echo what they were sent (a URL with a password, a rejected login), so
//! every secret's value is also remembered, and [`redact_secrets`] scrubs any message taken
//! from outside before it is logged or shown.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};

/// A secret string. Read it with [`Secret::expose`] only where it is sent to a service.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Every secret value seen, longest first (so a secret containing another is scrubbed whole).
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Shorter values are not scrubbed from messages: they would mangle ordinary words.
const MIN_SCRUBBED: usize = 4;

fn remember(value: &str) {
    if value.len() < MIN_SCRUBBED {
        return;
    }
    let mut known = KNOWN.lock().expect("secrets lock");
    if !known.iter().any(|k| k == value) {
        known.push(value.to_string());
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` with every known secret replaced by `***`, and any password in a URL too.
pub fn redact_secrets(text: &str) -> String {
    let mut text = super::broker::redact(text);
    for secret in KNOWN.lock().expect("secrets lock").iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        remember(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn messages_from_services_are_scrubbed() {
        let _ = Secret::new("s3cr3t-token-value");
        let message = "401: token s3cr3t-token-value rejected for mysql://u:pw@h/db";
        assert_eq!(
            redact_secrets(message),
            "401: token *** rejected for mysql://u:***@h/db"
        );
    }
}
