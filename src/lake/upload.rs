//! Copying closed partitions of the lake to HDFS over WebHDFS (`upload = "webhdfs://…"` on a
//! parquet sink), for Spark/Hadoop jobs that read HDFS: the classroom's "distributed platform"
//! step, which uploaded a CSV. A partition is closed `closed_after` past the end of its time
//! range when no writer has a file open in it; it is compacted first (few large files suit
//! HDFS), then each file is written under the same relative path, then `_SUCCESS`.
//!
//! The local `_UPLOADED` file lists what was uploaded, one name per line: a round uploads only
//! files not listed (late samples can add a file to a closed partition), and a partition with
//! the list is never compacted again, which would upload its rows a second time.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compact::{compact_partition, is_being_written, mark_success};
use super::layout::{is_data_file, partitions};
use super::webhdfs::WebHdfs;

/// How often closed partitions are looked for to upload.
pub const UPLOAD_EVERY: Duration = Duration::from_secs(60);

/// What a partition holds that is already in HDFS.
pub const MARKER: &str = "_UPLOADED";

/// The uploads of one lake.
pub struct Uploader {
    pub lake: PathBuf,
    pub client: WebHdfs,
    pub closed_after_ms: i64,
    pub target_bytes: u64,
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadReport {
    pub partitions: usize,
    pub files: usize,
    pub bytes: u64,
    pub failures: Vec<String>,
}

fn uploaded(dir: &Path) -> BTreeSet<String> {
    fs::read_to_string(dir.join(MARKER))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

impl Uploader {
    /// Uploads what closed partitions hold and HDFS does not, as of `now_ms`.
    pub async fn round(&self, now_ms: i64) -> UploadReport {
        let mut report = UploadReport::default();
        for partition in partitions(&self.lake) {
            if partition.end_ms + self.closed_after_ms > now_ms || is_being_written(&partition.dir)
            {
                continue;
            }
            let done = uploaded(&partition.dir);
            if done.is_empty()
                && let Err(e) = compact_partition(&partition.dir, self.target_bytes)
            {
                tracing::warn!(partition = partition.relative, error = %e, "cannot compact before uploading; uploading as is");
            }
            let mut names: Vec<String> = fs::read_dir(&partition.dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| is_data_file(n) && !done.contains(n))
                .collect();
            if names.is_empty() {
                continue;
            }
            names.sort();
            match self
                .upload_partition(&partition.dir, &partition.relative, &names)
                .await
            {
                Ok(bytes) => {
                    report.partitions += 1;
                    report.files += names.len();
                    report.bytes += bytes;
                    tracing::info!(
                        partition = partition.relative,
                        files = names.len(),
                        bytes,
                        "uploaded to HDFS"
                    );
                }
                Err(e) => {
                    tracing::warn!(partition = partition.relative, error = %e, "upload to HDFS failed; retried next round");
                    report.failures.push(format!("{}: {e}", partition.relative));
                }
            }
        }
        report
    }

    async fn upload_partition(
        &self,
        dir: &Path,
        relative: &str,
        names: &[String],
    ) -> Result<u64, String> {
        let mut bytes = 0;
        for name in names {
            let body = fs::read(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
            bytes += body.len() as u64;
            self.client
                .create(&format!("{relative}/{name}"), body)
                .await?;
            let mut marker = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(MARKER))
                .map_err(|e| format!("{}: {e}", dir.join(MARKER).display()))?;
            writeln!(marker, "{name}")
                .map_err(|e| format!("{}: {e}", dir.join(MARKER).display()))?;
        }
        mark_success(dir).map_err(|e| e.to_string())?;
        self.client
            .create(&format!("{relative}/_SUCCESS"), Vec::new())
            .await?;
        Ok(bytes)
    }

    /// Runs a round every `every` until the task is dropped.
    /// The uploads a parquet sink's configuration asks for (`None`: it asks for none).
    pub fn for_sink(config: &crate::config::ParquetConfig) -> Result<Option<Uploader>, String> {
        let Some(upload) = &config.upload else {
            return Ok(None);
        };
        let client = WebHdfs::new(
            upload.url.as_str(),
            upload.username.clone(),
            upload.retries.unwrap_or(5),
        )?;
        Ok(Some(Uploader {
            lake: config.dir.clone(),
            client,
            closed_after_ms: upload
                .closed_after
                .map_or(3_600_000, |d| d.as_millis() as i64),
            target_bytes: 128 << 20,
        }))
    }

    /// A round every `every` until `stop` turns true. A round cut short by the stop is
    /// redone next time (files are overwritten, `_SUCCESS` comes last).
    pub fn spawn(
        self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                tokio::select! {
                    _ = self.round(crate::sample::now_ms()) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }
}
