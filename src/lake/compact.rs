//! `millstream lake compact DIR`: merges the small files of closed partitions into large ones
//! (for Spark/HDFS, which prefer few big files) and marks closed partitions with `_SUCCESS`.
//!
//! A partition is closed when its time range ended at least `closed_after` ago and no writer
//! has a file open in it (no hidden `.part-…` file). Open partitions are never touched.
//!
//! Each merge is atomic for the lake's readers as far as a directory of plain files allows, and
//! safe across crashes: the merged file is written hidden (`.compact-…`) and synced; a journal
//! (`_COMPACTING`) naming it and its sources is written and synced; the file is renamed visible;
//! the sources are deleted; the journal is removed. A compaction that finds a journal finishes
//! (target visible: delete the sources) or rolls back (target hidden: delete it) the merge it
//! describes first. Between the rename and the deletes a reader listing the partition can see
//! rows twice; that window is a few milliseconds.
//!
//! Rows identical in every column to one already in the merged file are dropped: the lake is
//! written at least once (the write-ahead log replayed after a crash appends rows again, and so
//! does a replay into a partition too large to check), and compaction is where the copies go. SQL
//! and InfluxDB keep one row per key anyway; samples of one key and millisecond with
//! different values all stay.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::error::LakeError;
use super::layout::{is_data_file, partitions};
use super::row_set::RowSet;
use crate::lake::writer::writer_properties;

const JOURNAL: &str = "_COMPACTING";
const SUCCESS: &str = "_SUCCESS";

/// How to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Merged files grow up to about this many bytes (default 128 MiB).
    pub target_bytes: u64,
    /// A partition is closed this long after its time range ended (late samples, roll age).
    pub closed_after_ms: i64,
    /// Only partitions whose path (relative to the lake) contains one of these.
    pub partitions: Vec<String>,
    /// The current time, ms.
    pub now_ms: i64,
}

/// What a compaction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub partitions: usize,
    pub closed: usize,
    /// Partitions left alone because they are still written (or not closed yet).
    pub open: usize,
    pub files_merged: usize,
    pub files_written: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Rows dropped because an identical row was already in the merged file.
    pub duplicates: u64,
    /// Files that could not be merged, each with the reason.
    pub problems: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Journal {
    hidden: String,
    visible: String,
    sources: Vec<String>,
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Finishes or rolls back a merge a crashed compaction left in `dir`.
fn recover(dir: &Path) -> Result<(), LakeError> {
    let path = dir.join(JOURNAL);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let journal: Journal = serde_json::from_str(&text).map_err(|source| LakeError::Journal {
        path: path.clone(),
        source,
    })?;
    if dir.join(&journal.visible).exists() {
        for source in &journal.sources {
            let _ = fs::remove_file(dir.join(source));
        }
        tracing::info!(dir = %dir.display(), "finished a merge an earlier compaction left half done");
    } else {
        let _ = fs::remove_file(dir.join(&journal.hidden));
        tracing::info!(dir = %dir.display(), "rolled back a merge an earlier compaction left half done");
    }
    sync_dir(dir);
    fs::remove_file(&path).map_err(LakeError::io("", &path))
}

/// Compacts every closed partition of `lake`; `progress` hears each partition's path.
pub fn compact(
    lake: &Path,
    options: &CompactOptions,
    mut progress: impl FnMut(&str),
) -> Result<CompactReport, LakeError> {
    if !lake.join("samples").is_dir() && !lake.join("windows").is_dir() {
        return Err(LakeError::NotALake(lake.to_path_buf()));
    }
    let mut report = CompactReport::default();
    for partition in partitions(lake) {
        if !options.partitions.is_empty()
            && !options
                .partitions
                .iter()
                .any(|p| partition.relative.contains(p.as_str()))
        {
            continue;
        }
        report.partitions += 1;
        progress(&partition.relative);
        recover(&partition.dir)?;
        let mut files: Vec<(String, u64)> = Vec::new();
        let mut writing = false;
        for entry in fs::read_dir(&partition.dir).map_err(LakeError::io("", &partition.dir))? {
            let entry = entry.map_err(LakeError::io("", &partition.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".part-") {
                writing = true;
            } else if is_data_file(&name) {
                files.push((name, entry.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
        if writing || partition.end_ms + options.closed_after_ms > options.now_ms {
            report.open += 1;
            continue;
        }
        report.closed += 1;
        // Its files are in HDFS as they are: merging them now would upload the rows twice.
        if !partition.dir.join(super::upload::MARKER).exists() {
            files.sort_by_key(|(name, _)| (first_ts(name), name.clone()));
            merge_partition(&partition.dir, files, options.target_bytes, &mut report)?;
        }
        mark_success(&partition.dir)?;
    }
    Ok(report)
}

/// Writes `_SUCCESS` into a closed partition (for Spark and Hadoop tools).
pub fn mark_success(dir: &Path) -> Result<(), LakeError> {
    let success = dir.join(SUCCESS);
    if !success.exists() {
        File::create(&success).map_err(LakeError::io("", &success))?;
    }
    Ok(())
}

/// Whether a writer has a file open in `dir`, or a merge is under way.
pub fn is_being_written(dir: &Path) -> bool {
    fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with(".part-") || name.as_ref() == JOURNAL
    })
}

/// Merges the small files of one closed partition (for the uploader, which compacts before
/// it uploads).
pub fn compact_partition(dir: &Path, target_bytes: u64) -> Result<CompactReport, LakeError> {
    let mut report = CompactReport::default();
    recover(dir)?;
    let mut files: Vec<(String, u64)> = fs::read_dir(dir)
        .map_err(LakeError::io("", dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            is_data_file(&name).then(|| (name, e.metadata().map(|m| m.len()).unwrap_or(0)))
        })
        .collect();
    files.sort_by_key(|(name, _)| (first_ts(name), name.clone()));
    merge_partition(dir, files, target_bytes, &mut report)?;
    Ok(report)
}

fn first_ts(name: &str) -> i64 {
    name.strip_prefix("part-")
        .and_then(|n| n.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(i64::MAX)
}

/// Merges runs of small files into files of up to `target` bytes.
fn merge_partition(
    dir: &Path,
    files: Vec<(String, u64)>,
    target: u64,
    report: &mut CompactReport,
) -> Result<(), LakeError> {
    // Files already at half the target stay as they are.
    let mut group: Vec<(String, u64)> = Vec::new();
    let mut group_bytes = 0;
    let mut groups = Vec::new();
    for (name, bytes) in files {
        if bytes >= target / 2 {
            continue;
        }
        if group_bytes + bytes > target && !group.is_empty() {
            groups.push(std::mem::take(&mut group));
            group_bytes = 0;
        }
        group_bytes += bytes;
        group.push((name, bytes));
    }
    groups.push(group);
    let stamp = crate::lake::writer::default_writer_id();
    for (n, group) in groups.into_iter().enumerate() {
        if group.len() < 2 {
            continue;
        }
        merge(dir, &group, &format!("compact{stamp}-{n:04}"), report)?;
    }
    Ok(())
}

fn merge(
    dir: &Path,
    group: &[(String, u64)],
    id: &str,
    report: &mut CompactReport,
) -> Result<(), LakeError> {
    // Readable sources only: a file that is not the lake's Parquet stays where it is.
    let mut readers = Vec::new();
    let mut sources = Vec::new();
    let mut schema = None;
    for (name, bytes) in group {
        let path = dir.join(name);
        let builder = File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()));
        match builder {
            Ok(builder) => {
                let file_schema = builder.schema().clone();
                if schema.as_ref().is_some_and(|s| s != &file_schema) {
                    report.problems.push(format!(
                        "{}: columns differ from the other files; not merged",
                        path.display()
                    ));
                    continue;
                }
                schema = Some(file_schema);
                readers.push((path, builder));
                sources.push((name.clone(), *bytes));
            }
            Err(e) => report.problems.push(format!(
                "{}: not a readable Parquet file ({e}); not merged",
                path.display()
            )),
        }
    }
    if sources.len() < 2 {
        return Ok(());
    }
    let schema = schema.expect("two readable sources");
    let first = sources.iter().map(|(n, _)| first_ts(n)).min().unwrap_or(0);
    let visible = format!("part-{first}-{id}.parquet");
    let hidden = format!(".compact-{first}-{id}.parquet");
    let hidden_path = dir.join(&hidden);
    let out = File::create(&hidden_path).map_err(LakeError::io("", &hidden_path))?;
    let mut writer = ArrowWriter::try_new(out, schema, Some(writer_properties()))
        .map_err(LakeError::parquet(&hidden_path))?;
    let fail = |e: LakeError, writer_path: &Path| {
        let _ = fs::remove_file(writer_path);
        e
    };
    let mut seen = RowSet::default();
    for (path, builder) in readers {
        let reader = builder
            .with_batch_size(65_536)
            .build()
            .map_err(|e| fail(LakeError::parquet(&path)(e), &hidden_path))?;
        for batch in reader {
            let batch =
                batch.map_err(|e| fail(LakeError::in_file(&path)(e.into()), &hidden_path))?;
            let (batch, dropped) = seen
                .keep_new(&batch)
                .map_err(|e| fail(LakeError::in_file(&path)(e), &hidden_path))?;
            report.duplicates += dropped;
            writer
                .write(&batch)
                .map_err(|e| fail(LakeError::parquet(&hidden_path)(e), &hidden_path))?;
        }
    }
    let file = writer
        .into_inner()
        .map_err(|e| fail(LakeError::parquet(&hidden_path)(e), &hidden_path))?;
    file.sync_all().map_err(LakeError::io("", &hidden_path))?;
    let bytes_after = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);

    let journal = Journal {
        hidden: hidden.clone(),
        visible: visible.clone(),
        sources: sources.iter().map(|(n, _)| n.clone()).collect(),
    };
    let journal_path = dir.join(JOURNAL);
    let mut out = File::create(&journal_path).map_err(LakeError::io("", &journal_path))?;
    out.write_all(
        serde_json::to_string(&journal)
            .expect("serializable")
            .as_bytes(),
    )
    .and_then(|_| out.sync_all())
    .map_err(LakeError::io("", &journal_path))?;
    sync_dir(dir);
    fs::rename(&hidden_path, dir.join(&visible)).map_err(LakeError::io("", &hidden_path))?;
    for (name, _) in &sources {
        fs::remove_file(dir.join(name)).map_err(LakeError::io("", &dir.join(name)))?;
    }
    sync_dir(dir);
    fs::remove_file(&journal_path).map_err(LakeError::io("", &journal_path))?;
    report.files_merged += sources.len();
    report.files_written += 1;
    report.bytes_before += sources.iter().map(|(_, b)| b).sum::<u64>();
    report.bytes_after += bytes_after;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::lake::writer::{Lake, LakeOptions};
    use crate::nclink::intern::Interner;
    use crate::sample::Sample;
    use std::time::Duration;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00Z

    fn samples(from: i64, n: i64) -> std::sync::Arc<[Sample]> {
        let (d, i): (Id, Id) = ("D".into(), "I".into());
        (0..n)
            .map(|k| Sample::number(d.clone(), i.clone(), from + k * 10, k as f64))
            .collect()
    }

    fn rows(dir: &Path) -> Vec<(i64, Option<f64>)> {
        let mut out = Vec::new();
        let mut interner = Interner::default();
        for file in crate::lake::layout::sample_files(dir, None, None).unwrap() {
            crate::lake::sample_reader::read_samples(&file.path, None, None, &mut interner, |s| {
                out.extend(s.iter().map(|s| (s.ts, s.value)));
                true
            })
            .unwrap();
        }
        out.sort_by(|a, b| a.partial_cmp(b).unwrap());
        out
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn closed_partitions_merge_and_open_ones_stay_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let lake_dir = dir.path().to_path_buf();
        let options = |writer: &str| LakeOptions {
            roll_rows: 100,
            roll_age: Duration::from_secs(3600),
            writer: writer.into(),
            skip_existing: None,
        };
        // Hour 0: many small complete files. Hour 5: one complete file and one still open.
        let mut lake = Lake::new(lake_dir.clone(), options("a"));
        // One call per file: files roll between calls.
        for k in 0..11 {
            lake.write_samples(&samples(T0 + k * 1_000, if k < 10 { 100 } else { 50 }))
                .unwrap();
        }
        lake.finish().unwrap();
        let mut open = Lake::new(lake_dir.clone(), options("b"));
        open.write_samples(&samples(T0 + 5 * HOUR, 100)).unwrap();
        open.write_samples(&samples(T0 + 5 * HOUR + 5_000, 30))
            .unwrap();
        let hour0 = lake_dir.join("samples/date=2026-01-01/hour=00");
        let hour5 = lake_dir.join("samples/date=2026-01-01/hour=05");
        assert_eq!(names(&hour0).len(), 11);
        let open_before = names(&hour5);
        assert!(
            open_before.iter().any(|n| n.starts_with(".part-")),
            "{open_before:?}"
        );
        let before = rows(&lake_dir);

        let report = compact(
            &lake_dir,
            &CompactOptions {
                target_bytes: 128 << 20,
                closed_after_ms: HOUR,
                partitions: Vec::new(),
                now_ms: T0 + 6 * HOUR + HOUR,
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(
            (report.closed, report.open, report.files_written),
            (1, 1, 1),
            "{report:?}"
        );
        assert_eq!(report.files_merged, 11);
        let merged = names(&hour0);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert!(merged.contains(&"_SUCCESS".to_string()));
        assert!(
            merged
                .iter()
                .any(|n| n.starts_with(&format!("part-{T0}-compact"))),
            "{merged:?}"
        );
        assert_eq!(
            names(&hour5),
            open_before,
            "the open partition is untouched"
        );
        open.finish().unwrap();
        assert_eq!(rows(&lake_dir).len(), before.len() + 30);
        let hour0_rows: Vec<_> = rows(&lake_dir)
            .into_iter()
            .filter(|(ts, _)| *ts < T0 + HOUR)
            .collect();
        assert_eq!(
            hour0_rows,
            before
                .iter()
                .copied()
                .filter(|(ts, _)| *ts < T0 + HOUR)
                .collect::<Vec<_>>()
        );

        // The same rows written again (a replay into this lake): compaction drops the copies.
        let mut replay = Lake::new(lake_dir.clone(), options("c"));
        for k in 0..3 {
            replay.write_samples(&samples(T0 + k * 1_000, 100)).unwrap();
        }
        replay.finish().unwrap();
        assert_eq!(rows(&lake_dir).len(), before.len() + 30 + 300);
        let report = compact(
            &lake_dir,
            &CompactOptions {
                target_bytes: 128 << 20,
                closed_after_ms: HOUR,
                partitions: vec!["hour=00".into()],
                now_ms: T0 + 6 * HOUR + HOUR,
            },
            |_| {},
        )
        .unwrap();
        // The compacted file and the replay's three.
        assert_eq!(
            (report.files_merged, report.duplicates),
            (4, 300),
            "{report:?}"
        );
        assert_eq!(rows(&lake_dir).len(), before.len() + 30);

        // Nothing left to do; the (now complete) hour 5 is too recent to be closed.
        let again = compact(
            &lake_dir,
            &CompactOptions {
                target_bytes: 128 << 20,
                closed_after_ms: HOUR,
                partitions: vec!["hour=00".into()],
                now_ms: T0 + 6 * HOUR + HOUR / 2,
            },
            |_| {},
        )
        .unwrap();
        assert_eq!((again.partitions, again.files_written), (1, 0));
    }

    #[test]
    fn a_merge_cut_short_is_finished_or_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("part-1-a-1.parquet"), b"x").unwrap();
        fs::write(p.join("part-2-a-2.parquet"), b"y").unwrap();
        fs::write(p.join(".compact-1-c.parquet"), b"merged").unwrap();
        let journal = Journal {
            hidden: ".compact-1-c.parquet".into(),
            visible: "part-1-c.parquet".into(),
            sources: vec!["part-1-a-1.parquet".into(), "part-2-a-2.parquet".into()],
        };
        fs::write(p.join(JOURNAL), serde_json::to_string(&journal).unwrap()).unwrap();
        // Crashed before the rename: roll back.
        recover(p).unwrap();
        assert_eq!(names(p), ["part-1-a-1.parquet", "part-2-a-2.parquet"]);
        // Crashed after the rename: finish.
        fs::write(p.join("part-1-c.parquet"), b"merged").unwrap();
        fs::write(p.join(JOURNAL), serde_json::to_string(&journal).unwrap()).unwrap();
        recover(p).unwrap();
        assert_eq!(names(p), ["part-1-c.parquet"]);
    }
}
