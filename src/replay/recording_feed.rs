//! A recording decoded as the live source decodes a broker's traffic: every line goes through an
//! NC-Link [`Platform`] with its recorded receive time, decode failures become dead letters, and
//! the platform's requests to devices (probes, Register answers) are not sent anywhere: the
//! recording already holds the answers the recorder got. Damaged lines are reported with the
//! file and line and skipped; the rest is replayed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::ReplayProgress;
use super::pacer::{Pacer, Speed};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::metrics::Metrics;
use crate::recording::{RecordingError, RecordingReader};
use crate::source::platform::{Action, Platform, PlatformOptions};
use crate::source::{SourceEvent, SourceOptions};

/// The platform's timers (pending-model expiry) run every this much recorded time.
const TICK_MS: i64 = 100;

pub(super) struct RecordingFeed {
    path: PathBuf,
    reader: RecordingReader,
    platform: Platform,
    dead_letters: DeadLetters,
    pacer: Pacer,
    progress: Arc<ReplayProgress>,
    events: mpsc::Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
}

impl RecordingFeed {
    pub fn open(
        path: &Path,
        options: &SourceOptions,
        metrics: Arc<Metrics>,
        speed: Speed,
        progress: Arc<ReplayProgress>,
        events: mpsc::Sender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<RecordingFeed, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the recording {}: {e}", path.display()))?
            .len();
        progress.total_bytes.store(size, Ordering::Relaxed);
        let reader = RecordingReader::open_counted(path, progress.read_bytes.clone())
            .map_err(|e| format!("cannot open the recording {}: {e}", path.display()))?;
        let config = &options.config;
        let platform = Platform::new(
            PlatformOptions {
                client_id: config.client_id.clone(),
                poll: None,
                probe_timeout_ms: config.probe_timeout.as_millis() as i64,
                pending: config.pending.clone(),
                max_payload: config.max_payload.bytes(),
                raw: false,
                shard: crate::cluster::Shard::default(),
                holds: None,
                limits: config.limits.wire(),
                recorded: true,
            },
            metrics.clone(),
        );
        let dead_letters = match &options.dead_letter_dir {
            Some(dir) => DeadLetters::new(dir, options.dead_letters.clone(), metrics),
            None => DeadLetters::counting_only(metrics),
        };
        Ok(RecordingFeed {
            path: path.to_path_buf(),
            reader,
            platform,
            dead_letters,
            pacer: Pacer::new(speed),
            progress,
            events,
            stop,
        })
    }

    pub fn run(mut self) {
        let mut next_tick = i64::MIN;
        let mut last_ts = i64::MIN;
        while let Some(line) = self.reader.next() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let message = match line {
                Ok(message) => message,
                Err(RecordingError::BadLine { line, message }) => {
                    self.progress.problem(format!(
                        "{}:{line}: {message}; line skipped",
                        self.path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    self.progress
                        .problem(format!("{}: {e}", self.path.display()));
                    break;
                }
            };
            self.pacer.wait(message.ts, &self.stop);
            self.progress.messages.fetch_add(1, Ordering::Relaxed);
            last_ts = last_ts.max(message.ts);
            let actions = self
                .platform
                .on_message(&message.topic, message.payload, message.ts);
            if !self.perform(actions) {
                return;
            }
            if message.ts >= next_tick {
                next_tick = message.ts + TICK_MS;
                let actions = self.platform.on_tick(message.ts);
                if !self.perform(actions) {
                    return;
                }
            }
        }
        // Samples still waiting for a model that never came are dead letters now, as they
        // would have been live once `source.pending.max_age` passed.
        if last_ts > i64::MIN {
            let actions = self.platform.on_tick(last_ts.saturating_add(i64::MAX / 4));
            self.perform(actions);
        }
        self.dead_letters.flush();
    }

    /// Hands on the platform's events; false when nobody takes them any more.
    fn perform(&mut self, mut actions: Vec<Action>) -> bool {
        let mut alive = true;
        for action in actions.drain(..) {
            match action {
                // Requests to devices: the recording holds the answers the recorder got.
                Action::Publish { .. } => {}
                Action::Emit(event) => {
                    if alive && self.events.blocking_send(event).is_err() {
                        alive = false;
                    }
                }
                Action::DeadLetter {
                    topic,
                    received_at,
                    error,
                    payload,
                } => self.dead_letters.write(DeadLetter {
                    topic: &topic,
                    received_at,
                    reason: error.reason,
                    detail: &error.detail,
                    payload: &payload,
                }),
            }
        }
        self.platform.recycle(actions);
        alive
    }
}
