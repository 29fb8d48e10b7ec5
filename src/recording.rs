//! Recordings: raw MQTT traffic with receive times, as JSON Lines (DESIGN.md §3), optionally
//! zstd-compressed (`.zst`). One line per message:
//! `{"ts":<receive ms>,"topic":"…","payload":"…"}`; a payload that is not UTF-8 is written
//! base64-encoded as `"payload_b64"` instead of `"payload"`.
//!
//! The writer flushes on demand (the recorder does so every second and on exit); for `.zst` a
//! flush ends a zstd block, so everything flushed can be read back even if the process dies
//! before the frame is closed. The reader yields every complete line and reports a cut-off
//! tail as [`RecordingError::Truncated`] instead of failing the whole file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    /// Receive time, ms since the epoch.
    pub ts: i64,
    pub topic: String,
    pub payload: Bytes,
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    ts: i64,
    topic: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_b64: Option<String>,
}

fn is_zstd(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "zst")
}

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

/// Appends messages to a recording.
pub struct RecordingWriter {
    sink: Sink,
    messages: u64,
    line: Vec<u8>,
}

impl RecordingWriter {
    /// Creates (or truncates) `path`; compressed when it ends in `.zst`.
    pub fn create(path: &Path) -> io::Result<RecordingWriter> {
        let file = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        let sink = if is_zstd(path) {
            Sink::Zstd(zstd::stream::write::Encoder::new(file, 3)?)
        } else {
            Sink::Plain(file)
        };
        Ok(RecordingWriter {
            sink,
            messages: 0,
            line: Vec::with_capacity(4096),
        })
    }

    pub fn write(&mut self, ts: i64, topic: &str, payload: &[u8]) -> io::Result<()> {
        let line = match std::str::from_utf8(payload) {
            Ok(text) => Line {
                ts,
                topic: topic.into(),
                payload: Some(text.into()),
                payload_b64: None,
            },
            Err(_) => Line {
                ts,
                topic: topic.into(),
                payload: None,
                payload_b64: Some(base64::engine::general_purpose::STANDARD.encode(payload)),
            },
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line).map_err(io::Error::other)?;
        self.line.push(b'\n');
        match &mut self.sink {
            Sink::Plain(w) => w.write_all(&self.line)?,
            Sink::Zstd(w) => w.write_all(&self.line)?,
        }
        self.messages += 1;
        Ok(())
    }

    /// Messages written so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Makes everything written so far readable from the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Plain(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }

    /// Closes the recording (ends the zstd frame) and syncs it to disk.
    pub fn finish(self) -> io::Result<()> {
        let file = match self.sink {
            Sink::Plain(w) => w.into_inner().map_err(|e| e.into_error())?,
            Sink::Zstd(w) => w.finish()?.into_inner().map_err(|e| e.into_error())?,
        };
        file.sync_all()
    }
}

/// A problem reading a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read the recording: {0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {message}")]
    BadLine { line: u64, message: String },
    #[error(
        "the recording ends mid-write after line {line} (the recorder was killed?); the lines before are complete"
    )]
    Truncated { line: u64 },
    #[error(
        "the compressed data after line {line} is corrupt or cut off ({detail}); the lines before are complete"
    )]
    Corrupt { line: u64, detail: String },
}

/// Reads a recording line by line.
pub struct RecordingReader {
    lines: Box<dyn BufRead + Send>,
    line: u64,
    buf: String,
    done: bool,
}

impl RecordingReader {
    pub fn open(path: &Path) -> io::Result<RecordingReader> {
        RecordingReader::open_counted(path, Arc::default())
    }

    /// Opens `path` and counts the file bytes consumed (compressed bytes for `.zst`) in
    /// `read`, for progress reports.
    pub fn open_counted(path: &Path, read: Arc<AtomicU64>) -> io::Result<RecordingReader> {
        let file = Counted {
            inner: File::open(path)?,
            read,
        };
        // A zstd read that meets damage fails whole: small reads keep the lines decoded
        // before the damage.
        let (reader, capacity): (Box<dyn Read + Send>, usize) = if is_zstd(path) {
            (Box::new(zstd::stream::read::Decoder::new(file)?), 16 * 1024)
        } else {
            (Box::new(file), 256 * 1024)
        };
        Ok(RecordingReader {
            lines: Box::new(BufReader::with_capacity(capacity, reader)),
            line: 0,
            buf: String::new(),
            done: false,
        })
    }
}

impl Iterator for RecordingReader {
    type Item = Result<RecordedMessage, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        match self.lines.read_line(&mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) if !self.buf.ends_with('\n') => {
                self.done = true;
                Some(Err(RecordingError::Truncated { line: self.line }))
            }
            Ok(_) => {
                self.line += 1;
                Some(parse_line(&self.buf, self.line))
            }
            // The line was consumed up to its end: report it and go on.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.line += 1;
                Some(Err(RecordingError::BadLine {
                    line: self.line,
                    message: "not UTF-8 text".into(),
                }))
            }
            // A zstd frame cut off by a crash reads as an unexpected end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.done = true;
                Some(Err(RecordingError::Truncated { line: self.line }))
            }
            // Damaged compressed data: the decoder cannot go on past it.
            Err(e) if e.kind() == io::ErrorKind::Other => {
                self.done = true;
                Some(Err(RecordingError::Corrupt {
                    line: self.line,
                    detail: e.to_string(),
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e.into()))
            }
        }
    }
}

/// A reader that counts what it read.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn parse_line(text: &str, line: u64) -> Result<RecordedMessage, RecordingError> {
    let bad = |message: String| RecordingError::BadLine { line, message };
    let parsed: Line<'_> = serde_json::from_str(text.trim_end()).map_err(|e| bad(e.to_string()))?;
    let payload = match (parsed.payload, parsed.payload_b64) {
        (Some(text), None) => Bytes::from(text.into_owned()),
        (None, Some(b64)) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| bad(format!("payload_b64: {e}")))?,
        ),
        _ => return Err(bad("needs exactly one of payload and payload_b64".into())),
    };
    Ok(RecordedMessage {
        ts: parsed.ts,
        topic: parsed.topic.into_owned(),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(name: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let mut w = RecordingWriter::create(&path).unwrap();
        w.write(1, "Query/Response/D", br#"{"values":[]}"#).unwrap();
        w.write(2, "Sample/D/c", &[0xff, 0x00]).unwrap();
        w.write(3, "x", "中文\n\"q\"".as_bytes()).unwrap();
        w.finish().unwrap();
        let got: Vec<RecordedMessage> = RecordingReader::open(&path)
            .unwrap()
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].payload, Bytes::from_static(br#"{"values":[]}"#));
        assert_eq!(got[1].payload, Bytes::from_static(&[0xff, 0x00]));
        assert_eq!(got[2].payload, Bytes::from("中文\n\"q\""));
        assert_eq!((got[2].ts, got[2].topic.as_str()), (3, "x"));
    }

    #[test]
    fn plain_and_zstd_round_trip() {
        round_trip("r.jsonl");
        round_trip("r.jsonl.zst");
    }

    #[test]
    fn a_killed_zstd_recording_keeps_what_was_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl.zst");
        let mut w = RecordingWriter::create(&path).unwrap();
        for i in 0..100 {
            w.write(i, "t", b"{}").unwrap();
        }
        w.flush().unwrap();
        // Simulate kill -9: the frame is never finished.
        std::mem::forget(w);
        let mut ok = 0;
        let mut truncated = false;
        for m in RecordingReader::open(&path).unwrap() {
            match m {
                Ok(_) => ok += 1,
                Err(RecordingError::Truncated { .. } | RecordingError::Corrupt { .. }) => {
                    truncated = true
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(ok, 100);
        assert!(truncated);
    }
}
