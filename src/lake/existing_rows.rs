//! The rows a lake partition held before this writer wrote to it, so a replay into a lake that
//! already holds the data adds nothing (issue 6; the SQL stores get the same from their primary
//! keys, InfluxDB from overwriting a series' point).
//!
//! A partition's rows are read the first time the writer flushes rows into it, from the complete
//! files of *other* writers (this writer's own files hold the replay's rows, which must all
//! stay, copies included, to match the live run). Memory is bounded by [`ExistingRows::new`]'s
//! row limit, over every partition held: a partition holding more is not checked (a warning
//! says so; `millstream lake compact` drops the copies once the partition is closed), and the
//! least recently used partitions' sets make room for a new one. The bound is on rows, not on
//! partitions, because a replay writes to several at once (the samples' hour and one per window
//! size): the small ones stay in memory instead of being read again at every flush.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::layout::is_data_file;
use super::row_set::RowSet;

/// Partitions remembered at once (those too large to check included, so their files are not
/// listed again at every flush).
const KEPT_PARTITIONS: usize = 64;

/// The pre-existing rows of the partitions a writer touches.
pub struct ExistingRows {
    /// This writer's id, as in its file names (`part-<ts>-<writer>-<seq>.parquet`).
    writer: String,
    max_rows: u64,
    /// Most recently used last; `None`: too large to check.
    partitions: Vec<(PathBuf, Option<RowSet>)>,
    /// Rows not written because the partition held them already.
    pub skipped: u64,
    /// Times a partition's files were read.
    pub partitions_read: u64,
}

impl ExistingRows {
    /// `max_rows`: the most rows held in memory, all partitions together (about 20 bytes each).
    pub fn new(writer: &str, max_rows: u64) -> ExistingRows {
        ExistingRows {
            writer: writer.to_string(),
            max_rows,
            partitions: Vec::new(),
            skipped: 0,
            partitions_read: 0,
        }
    }

    /// The rows of `batch`, bound for `partition`, that the partition did not hold already.
    pub fn keep_new(&mut self, partition: &Path, batch: RecordBatch) -> RecordBatch {
        match self.partitions.iter().position(|(p, _)| p == partition) {
            Some(i) => {
                let used = self.partitions.remove(i);
                self.partitions.push(used);
            }
            None => {
                let rows = self.load(partition);
                self.partitions.push((partition.to_path_buf(), rows));
                self.make_room();
            }
        }
        let Some(rows) = self.partitions.last().and_then(|(_, rows)| rows.as_ref()) else {
            return batch;
        };
        if rows.is_empty() {
            return batch;
        }
        match rows.drop_known(&batch) {
            Ok((kept, dropped)) => {
                self.skipped += dropped;
                kept
            }
            Err(e) => {
                tracing::warn!(partition = %partition.display(), error = %e, "cannot compare rows with the lake's; written as they are");
                batch
            }
        }
    }

    /// Forgets the least recently used partitions beyond the row and partition bounds (never
    /// the newest).
    fn make_room(&mut self) {
        let held = |p: &[(PathBuf, Option<RowSet>)]| -> u64 {
            p.iter()
                .filter_map(|(_, rows)| rows.as_ref())
                .map(|rows| rows.len() as u64)
                .sum()
        };
        while self.partitions.len() > 1
            && (self.partitions.len() > KEPT_PARTITIONS || held(&self.partitions) > self.max_rows)
        {
            self.partitions.remove(0);
        }
    }

    /// Reads the rows of the partition's complete files written by others.
    fn load(&mut self, partition: &Path) -> Option<RowSet> {
        self.partitions_read += 1;
        let mine = format!("-{}-", self.writer);
        let Ok(entries) = std::fs::read_dir(partition) else {
            return Some(RowSet::default());
        };
        let mut files = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_data_file(&name) || name.contains(&mine) {
                continue;
            }
            let path = entry.path();
            let builder = File::open(&path).map_err(|e| e.to_string()).and_then(|f| {
                ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string())
            });
            match builder {
                Ok(builder) => {
                    total += builder.metadata().file_metadata().num_rows().max(0) as u64;
                    files.push((path, builder));
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "not the lake's Parquet; its rows are not compared with the replay's")
                }
            }
        }
        if total > self.max_rows {
            tracing::warn!(
                partition = %partition.display(),
                rows = total,
                limit = self.max_rows,
                "the partition holds too many rows to check for copies; rows it holds already may be written again (`millstream lake compact` drops them once the partition is closed)"
            );
            return None;
        }
        let mut rows = RowSet::default();
        for (path, builder) in files {
            let read = builder
                .with_batch_size(65_536)
                .build()
                .map_err(super::error::LakeError::parquet(&path))
                .and_then(|reader| {
                    reader
                        .into_iter()
                        .try_for_each(|batch| rows.insert_all(&batch?))
                });
            if let Err(e) = read {
                tracing::warn!(file = %path.display(), error = %e, "cannot read every row; the rest of the file is not compared with the replay's");
            }
        }
        Some(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::lake::writer::{Lake, LakeOptions};
    use crate::sample::Sample;
    use std::time::Duration;

    /// A lake writer `writer` that wrote `samples` and finished.
    fn write(dir: &Path, writer: &str, skip_existing: Option<u64>, samples: &[Sample]) -> Lake {
        let options = LakeOptions {
            roll_rows: 1_000_000,
            roll_age: Duration::from_secs(60),
            writer: writer.into(),
            skip_existing,
        };
        let mut lake = Lake::new(dir.to_path_buf(), options);
        lake.write_samples(&samples.into()).unwrap();
        lake.finish().unwrap();
        lake
    }

    fn samples(from: i64, to: i64) -> Vec<Sample> {
        let (d, i): (Id, Id) = (Id::from("M1"), Id::from("X"));
        (from..to)
            .map(|k| Sample::number(d.clone(), i.clone(), 1_700_000_000_000 + k, k as f64))
            .collect()
    }

    fn lake_rows(dir: &Path) -> usize {
        crate::lake::layout::sample_files(dir, None, None)
            .unwrap()
            .iter()
            .map(|f| {
                ParquetRecordBatchReaderBuilder::try_new(File::open(&f.path).unwrap())
                    .unwrap()
                    .metadata()
                    .file_metadata()
                    .num_rows() as usize
            })
            .sum()
    }

    #[test]
    fn a_second_writer_adds_only_rows_the_lake_did_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "live", None, &samples(0, 1_000));

        // Half already there, half new; the replay's own copy of a row stays (a live run
        // would have stored it twice too).
        let mut batch = samples(500, 1_500);
        batch.push(samples(1_200, 1_201).remove(0));
        let replay = write(dir.path(), "replay", Some(1_000_000), &batch);
        assert_eq!(replay.rows_skipped(), 500);
        assert_eq!(lake_rows(dir.path()), 1_000 + 501);

        // Everything there already: no file at all.
        let again = write(dir.path(), "again", Some(1_000_000), &samples(0, 1_000));
        assert_eq!(again.rows_skipped(), 1_000);
        assert!(again.completed.is_empty(), "{:?}", again.completed);
        assert_eq!(lake_rows(dir.path()), 1_501);
    }

    #[test]
    fn a_partition_beyond_the_limit_is_written_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "live", None, &samples(0, 1_000));
        let replay = write(dir.path(), "replay", Some(999), &samples(0, 1_000));
        assert_eq!(replay.rows_skipped(), 0);
        assert_eq!(lake_rows(dir.path()), 2_000);
    }

    #[test]
    fn partitions_written_in_turn_are_read_once_each() {
        let dir = tempfile::tempdir().unwrap();
        // Six hours: six partitions, as a replay writing samples and five window sizes.
        const HOUR: i64 = 3_600_000;
        let live: Vec<Sample> = (0..6)
            .flat_map(|h| samples(h * HOUR, h * HOUR + 100))
            .collect();
        write(dir.path(), "live", None, &live);
        let files = crate::lake::layout::sample_files(dir.path(), None, None).unwrap();
        assert_eq!(files.len(), 6);
        let batches: Vec<(PathBuf, RecordBatch)> = files
            .iter()
            .map(|f| {
                let file = File::open(&f.path).unwrap();
                let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                (
                    f.path.parent().unwrap().to_path_buf(),
                    reader.next().unwrap().unwrap(),
                )
            })
            .collect();
        let mut existing = ExistingRows::new("replay", 1_000_000);
        for _ in 0..3 {
            for (partition, batch) in &batches {
                let kept = existing.keep_new(partition, batch.clone());
                assert_eq!(kept.num_rows(), 0, "every row is held already");
            }
        }
        assert_eq!(existing.skipped, 3 * 600);
        assert_eq!(existing.partitions_read, 6, "each partition read once");

        // A row bound below two partitions' rows: each flush reads its partition again, and
        // still skips what it holds.
        let mut tight = ExistingRows::new("replay", 150);
        for (partition, batch) in batches.iter().chain(&batches) {
            assert_eq!(tight.keep_new(partition, batch.clone()).num_rows(), 0);
        }
        assert_eq!(tight.partitions_read, 12);
    }
}
