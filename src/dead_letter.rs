//! Dead letters: messages millstream refused, kept on disk so nothing received is lost silently
//! (DESIGN.md §7).
//!
//! Each refused message is counted by reason (in [`crate::metrics`]) and appended as one JSON
//! line to `state_dir/dead-letters/dead-letters-<first ms>.jsonl`:
//! `{"ts":…,"topic":…,"reason":…,"detail":…,"payload":…,"payload_bytes":…,"truncated":…}`.
//! A payload that is not UTF-8 is written base64-encoded as `payload_b64` instead of `payload`.
//! Files roll at `max_file_size`; beyond `max_files` the oldest is deleted. A disk problem is
//! logged and counted; it never stops ingestion.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;

use crate::config::DeadLetterConfig;
use crate::metrics::{Metrics, inc};
use crate::nclink::Reason;
use crate::rotating::RotatingFiles;

/// A refused message.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    /// Receive time, ms since the epoch.
    pub received_at: i64,
    pub reason: Reason,
    pub detail: &'a str,
    pub payload: &'a [u8],
}

#[derive(Serialize)]
struct Record<'a> {
    ts: i64,
    topic: &'a str,
    reason: &'static str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_b64: Option<String>,
    payload_bytes: usize,
    truncated: bool,
}

/// Appends dead letters to rotating JSON Lines files.
pub struct DeadLetters {
    /// `None`: count only (the recorder keeps raw messages itself).
    files: Option<RotatingFiles>,
    config: DeadLetterConfig,
    metrics: Arc<Metrics>,
    /// A letter could not be written since the last [`DeadLetters::commit`].
    failed: bool,
}

const PREFIX: &str = "dead-letters-";
const SUFFIX: &str = ".jsonl";

impl DeadLetters {
    /// Dead letters go to `dir` (created when the first one arrives).
    pub fn new(
        dir: impl Into<PathBuf>,
        config: DeadLetterConfig,
        metrics: Arc<Metrics>,
    ) -> DeadLetters {
        DeadLetters {
            files: Some(RotatingFiles::new(
                dir,
                PREFIX,
                SUFFIX,
                config.max_file_size.0,
                config.max_files,
            )),
            config,
            metrics,
            failed: false,
        }
    }

    /// Counts dead letters without writing them anywhere.
    pub fn counting_only(metrics: Arc<Metrics>) -> DeadLetters {
        DeadLetters {
            files: None,
            config: DeadLetterConfig::default(),
            metrics,
            failed: false,
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.files.as_ref().map(RotatingFiles::dir)
    }

    /// Counts and writes one dead letter.
    pub fn write(&mut self, letter: DeadLetter<'_>) {
        self.metrics.source.dead_letter(letter.reason);
        if self.files.is_none() {
            return;
        }
        if let Err(e) = self.append(letter) {
            self.failed = true;
            inc(&self.metrics.source.dead_letter_write_errors);
            let dir = self
                .dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            tracing::warn!(%dir, error = %e, "cannot write dead letter");
        }
    }

    /// Hands the letters written since the last commit to the OS, so that they survive the
    /// process (a `kill -9`): their messages may be acknowledged then. `false` when one of them
    /// could not be written (a full disk): its message must not be acknowledged.
    pub fn commit(&mut self) -> bool {
        self.flush();
        !std::mem::replace(&mut self.failed, false)
    }

    /// Pushes buffered records to the OS.
    pub fn flush(&mut self) {
        if let Some(files) = &mut self.files
            && let Err(e) = files.flush()
        {
            self.failed = true;
            inc(&self.metrics.source.dead_letter_write_errors);
            tracing::warn!(error = %e, "cannot flush dead letters");
        }
    }

    fn append(&mut self, letter: DeadLetter<'_>) -> io::Result<()> {
        let limit = self.config.max_payload.bytes();
        let cut = cut_at_char(letter.payload, limit);
        let kept = &letter.payload[..cut];
        let (payload, payload_b64) = match std::str::from_utf8(kept) {
            Ok(text) => (Some(text), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(kept)),
            ),
        };
        let record = Record {
            ts: letter.received_at,
            topic: letter.topic,
            reason: letter.reason.as_str(),
            detail: letter.detail,
            payload,
            payload_b64,
            payload_bytes: letter.payload.len(),
            truncated: cut < letter.payload.len(),
        };
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.files
            .as_mut()
            .expect("checked by write")
            .append(letter.received_at, &line)
    }
}

impl Drop for DeadLetters {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Dead-letter files in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    crate::rotating::list(dir, PREFIX, SUFFIX)
}

/// The largest prefix length ≤ `limit` that does not split a UTF-8 character (for text payloads).
fn cut_at_char(payload: &[u8], limit: usize) -> usize {
    if payload.len() <= limit {
        return payload.len();
    }
    let mut cut = limit;
    // Step back over UTF-8 continuation bytes (at most 3).
    while cut > 0 && limit - cut < 3 && (payload[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    if std::str::from_utf8(&payload[..cut]).is_ok() {
        cut
    } else {
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;
    use std::fs;

    fn letter<'a>(payload: &'a [u8], ts: i64) -> DeadLetter<'a> {
        DeadLetter {
            topic: "Query/Response/D",
            received_at: ts,
            reason: Reason::MalformedJson,
            detail: "expected value",
            payload,
        }
    }

    #[test]
    fn writes_truncates_rotates_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let config = DeadLetterConfig {
            max_payload: ByteSize(8),
            max_file_size: ByteSize(300),
            max_files: 2,
        };
        let mut dl = DeadLetters::new(dir.path(), config, metrics.clone());
        dl.write(letter("héllo wörld".as_bytes(), 1));
        dl.write(letter(&[0xff, 0x00, 0x01], 2));
        dl.flush();
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let text = fs::read_to_string(&files[0]).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0]["payload"], "héllo w",
            "cut at a character boundary within 8 bytes"
        );
        assert_eq!(lines[0]["truncated"], true);
        assert_eq!(lines[0]["payload_bytes"], 13);
        assert_eq!(lines[0]["reason"], "malformed_json");
        assert_eq!(lines[1]["payload_b64"], "/wAB");
        assert_eq!(lines[1]["truncated"], false);
        for ts in 3..40 {
            dl.write(letter(b"{}", ts));
        }
        dl.flush();
        assert_eq!(list(dir.path()).unwrap().len(), 2, "old files are deleted");
        assert_eq!(metrics.source.dead_letters_total(), 39);
    }

    #[test]
    fn a_disk_problem_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file-not-dir");
        fs::write(&blocked, b"x").unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut dl = DeadLetters::new(&blocked, DeadLetterConfig::default(), metrics.clone());
        dl.write(letter(b"x", 1));
        assert_eq!(metrics.source.dead_letters_total(), 1);
        assert_eq!(
            metrics
                .source
                .dead_letter_write_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
