//! Historical questions over the lake with polars (`millstream analyze`, `GET /api/v1/history`):
//! windowed statistics for any `every`, a description of each item, and time per machine state.
//!
//! Partitions are pruned by their `date=`/`hour=` names before polars sees a file; device, item
//! and time filters are pushed down into the Parquet scan. The work runs in chunks of whole
//! windows (a chunk spans `lcm(every, 1 h)`, so no window straddles two chunks): memory stays
//! bounded by one chunk, and progress is reported per chunk. Statistics match the live windows'
//! definitions (DESIGN.md §6): only numeric samples count, `stddev` is the sample standard
//! deviation (null below two values), `first`/`last` are by event time; percentiles here are
//! exact (linear interpolation between closest ranks), where live windows estimate them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::layout::{SampleFile, sample_files};
use crate::id::Id;
use crate::nclink::status::{MachineState, STATUS_ITEM};
use crate::window::WindowRow;

const HOUR_MS: i64 = 3_600_000;

/// What to look at.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub device: Option<String>,
    pub item: Option<String>,
    /// Event times `from <= ts < to`, ms.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Progress of a long scan: chunks done of chunks total, and input bytes so far.
pub trait Progress {
    fn chunk_done(&mut self, done: usize, total: usize, bytes: u64);
}

impl Progress for () {
    fn chunk_done(&mut self, _: usize, _: usize, _: u64) {}
}

/// An analysis failure, naming what could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("cannot list the lake {lake}: {error}")]
    Listing {
        lake: PathBuf,
        error: std::io::Error,
    },
    #[error("reading {files}: {error}")]
    Polars { files: String, error: PolarsError },
}

/// Per (device, item): when it was seen, how often, and its value range.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemDescription {
    pub device: String,
    pub item: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    /// Share of samples without a numeric value (text samples).
    pub null_share: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Time one machine spent in one state (from STATUS samples: each lasts until the next).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StateDuration {
    pub device: String,
    pub state: MachineState,
    pub ms: i64,
    /// Share of the device's observed time.
    pub share: f64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Hour partitions grouped so that no window of `every` ms crosses a group boundary.
fn chunks(files: Vec<SampleFile>, every: i64) -> Vec<Vec<SampleFile>> {
    let span = (every / gcd(every, HOUR_MS)).saturating_mul(HOUR_MS);
    let mut out: Vec<Vec<SampleFile>> = Vec::new();
    let mut current: Option<i64> = None;
    for file in files {
        let chunk = file.hour_start.div_euclid(span);
        if current != Some(chunk) {
            out.push(Vec::new());
            current = Some(chunk);
        }
        out.last_mut().expect("pushed").push(file);
    }
    out
}

fn describe_files(files: &[SampleFile]) -> String {
    match files {
        [one] => one.path.display().to_string(),
        [first, ..] => format!(
            "{} and {} other files",
            first.path.display(),
            files.len() - 1
        ),
        [] => "no files".into(),
    }
}

/// A scan of `files` with the selection's filters pushed down.
fn scan(files: &[SampleFile], selection: &Selection) -> PolarsResult<LazyFrame> {
    let paths = files
        .iter()
        .map(|f| PlRefPath::try_from_path(&f.path))
        .collect::<PolarsResult<Vec<_>>>()?;
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_disabled(),
        glob: false,
        ..Default::default()
    };
    let mut frame = LazyFrame::scan_parquet_files(paths.into(), args)?
        .with_column(col("ts").cast(DataType::Int64).alias("ts"));
    if let Some(device) = &selection.device {
        frame = frame.filter(col("device").eq(lit(device.as_str())));
    }
    if let Some(item) = &selection.item {
        frame = frame.filter(col("item").eq(lit(item.as_str())));
    }
    if let Some(from) = selection.from {
        frame = frame.filter(col("ts").gt_eq(lit(from)));
    }
    if let Some(to) = selection.to {
        frame = frame.filter(col("ts").lt(lit(to)));
    }
    Ok(frame)
}

fn files_of(lake: &Path, selection: &Selection) -> Result<Vec<SampleFile>, AnalyzeError> {
    sample_files(lake, selection.from, selection.to).map_err(|error| AnalyzeError::Listing {
        lake: lake.to_path_buf(),
        error,
    })
}

/// Runs `each` over the chunks; a chunk that fails is checked file by file, files that are not
/// readable Parquet are skipped (named in the returned list) and the chunk is run again.
fn run_chunks(
    groups: Vec<Vec<SampleFile>>,
    progress: &mut dyn Progress,
    mut each: impl FnMut(&[SampleFile]) -> PolarsResult<()>,
) -> Result<Vec<String>, AnalyzeError> {
    let total = groups.len();
    let mut skipped = Vec::new();
    let mut bytes = 0;
    for (n, group) in groups.into_iter().enumerate() {
        bytes += group.iter().map(|f| f.bytes).sum::<u64>();
        if let Err(error) = each(&group) {
            let (good, bad): (Vec<SampleFile>, Vec<SampleFile>) = group
                .iter()
                .cloned()
                .partition(|f| readable(&f.path).is_ok());
            if bad.is_empty() {
                return Err(AnalyzeError::Polars {
                    files: describe_files(&group),
                    error,
                });
            }
            for file in &bad {
                let why = readable(&file.path).err().unwrap_or_default();
                tracing::warn!("{why}; file skipped");
                skipped.push(why);
            }
            if !good.is_empty() {
                each(&good).map_err(|error| AnalyzeError::Polars {
                    files: describe_files(&good),
                    error,
                })?;
            }
        }
        progress.chunk_done(n + 1, total, bytes);
    }
    Ok(skipped)
}

/// Whether a file is Parquet with the lake's sample columns; the error names the file.
fn readable(path: &Path) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("{}: not a readable Parquet file: {e}", path.display()))?;
    let schema = builder.schema();
    for column in ["device", "item", "ts", "value", "text"] {
        if schema.field_with_name(column).is_err() {
            return Err(format!(
                "{}: no `{column}` column: not a samples file of a millstream lake",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Results, and the files that could not be read (each message names its file).
#[derive(Debug, Clone)]
pub struct Analysis<T> {
    pub rows: Vec<T>,
    pub skipped: Vec<String>,
}

/// Windowed statistics of every selected (device, item) for windows of `every` ms aligned to
/// the epoch, ordered by device, item and start.
pub fn windows(
    lake: &Path,
    selection: &Selection,
    every: i64,
    progress: &mut dyn Progress,
) -> Result<Analysis<WindowRow>, AnalyzeError> {
    assert!(every > 0, "every must be positive");
    let groups = chunks(files_of(lake, selection)?, every);
    let mut rows = Vec::new();
    let skipped = run_chunks(groups, progress, |files| {
        let frame = windows_of(files, selection, every)?;
        append_windows(&frame, every, &mut rows)
    })?;
    Ok(Analysis { rows, skipped })
}

fn windows_of(files: &[SampleFile], selection: &Selection, every: i64) -> PolarsResult<DataFrame> {
    let by_ts = || SortMultipleOptions::default().with_maintain_order(true);
    scan(files, selection)?
        .filter(col("value").is_not_null())
        .with_column((col("ts") - col("ts") % lit(every)).alias("start"))
        .group_by([col("device"), col("item"), col("start")])
        .agg([
            col("value").count().alias("count"),
            col("value").min().alias("min"),
            col("value").max().alias("max"),
            col("value").mean().alias("mean"),
            col("value").std(1).alias("stddev"),
            col("value")
                .quantile(lit(0.5), QuantileMethod::Linear)
                .alias("p50"),
            col("value")
                .quantile(lit(0.95), QuantileMethod::Linear)
                .alias("p95"),
            col("value")
                .quantile(lit(0.99), QuantileMethod::Linear)
                .alias("p99"),
            col("value")
                .sort_by([col("ts")], by_ts())
                .first()
                .alias("first"),
            col("value")
                .sort_by([col("ts")], by_ts())
                .last()
                .alias("last"),
        ])
        .sort(["device", "item", "start"], SortMultipleOptions::default())
        .collect()
}

fn append_windows(frame: &DataFrame, every: i64, rows: &mut Vec<WindowRow>) -> PolarsResult<()> {
    let device = frame.column("device")?.str()?;
    let item = frame.column("item")?.str()?;
    let start = frame.column("start")?.i64()?;
    let count = frame.column("count")?.cast(&DataType::UInt64)?;
    let count = count.u64()?;
    let f = |name: &str| -> PolarsResult<Float64Chunked> {
        Ok(frame.column(name)?.cast(&DataType::Float64)?.f64()?.clone())
    };
    // The statistics in `STATS` order, as the aggregation above names them.
    let stats: Vec<Float64Chunked> = crate::window::STATS
        .iter()
        .map(|name| f(name))
        .collect::<PolarsResult<_>>()?;
    let mut interned: Option<(Id, Id)> = None;
    for i in 0..frame.height() {
        let (Some(d), Some(it), Some(s)) = (device.get(i), item.get(i), start.get(i)) else {
            continue;
        };
        let key = match &interned {
            Some((a, b)) if &**a == d && &**b == it => (a.clone(), b.clone()),
            _ => (Id::from(d), Id::from(it)),
        };
        interned = Some(key.clone());
        let v: [f64; 9] = std::array::from_fn(|k| stats[k].get(i).unwrap_or(f64::NAN));
        rows.push(WindowRow::from_stats(
            key.0,
            key.1,
            every,
            s,
            count.get(i).unwrap_or(0),
            v,
            stats[3].get(i).is_some(),
        ));
    }
    Ok(())
}

/// Per selected (device, item): first and last seen, count, share without a numeric value, and
/// the value range.
pub fn describe(
    lake: &Path,
    selection: &Selection,
    progress: &mut dyn Progress,
) -> Result<Analysis<ItemDescription>, AnalyzeError> {
    // Days are independent chunks here: partial descriptions merge exactly.
    let groups = chunks(files_of(lake, selection)?, 86_400_000);
    let mut merged: BTreeMap<(String, String), ItemDescription> = BTreeMap::new();
    let skipped = run_chunks(groups, progress, |files| {
        let frame = scan(files, selection)?
            .group_by([col("device"), col("item")])
            .agg([
                col("ts").min().alias("first_seen"),
                col("ts").max().alias("last_seen"),
                len().cast(DataType::UInt64).alias("count"),
                col("value")
                    .null_count()
                    .cast(DataType::UInt64)
                    .alias("nulls"),
                col("value").min().alias("min"),
                col("value").max().alias("max"),
            ])
            .collect()?;
        merge_descriptions(&frame, &mut merged)
    })?;
    Ok(Analysis {
        rows: merged.into_values().collect(),
        skipped,
    })
}

fn merge_descriptions(
    frame: &DataFrame,
    merged: &mut BTreeMap<(String, String), ItemDescription>,
) -> PolarsResult<()> {
    let device = frame.column("device")?.str()?;
    let item = frame.column("item")?.str()?;
    let first = frame.column("first_seen")?.i64()?;
    let last = frame.column("last_seen")?.i64()?;
    let count = frame.column("count")?.u64()?;
    let nulls = frame.column("nulls")?.u64()?;
    let min = frame.column("min")?.f64()?;
    let max = frame.column("max")?.f64()?;
    for i in 0..frame.height() {
        let (Some(d), Some(it), Some(f), Some(l)) =
            (device.get(i), item.get(i), first.get(i), last.get(i))
        else {
            continue;
        };
        let (n, z) = (count.get(i).unwrap_or(0), nulls.get(i).unwrap_or(0));
        let entry = merged
            .entry((d.to_string(), it.to_string()))
            .or_insert_with(|| ItemDescription {
                device: d.to_string(),
                item: it.to_string(),
                first_seen: f,
                last_seen: l,
                count: 0,
                null_share: 0.0,
                min: None,
                max: None,
            });
        let nulls_before = entry.null_share * entry.count as f64;
        entry.first_seen = entry.first_seen.min(f);
        entry.last_seen = entry.last_seen.max(l);
        entry.count += n;
        entry.null_share = if entry.count == 0 {
            0.0
        } else {
            (nulls_before + z as f64) / entry.count as f64
        };
        entry.min = option_fold(entry.min, min.get(i), f64::min);
        entry.max = option_fold(entry.max, max.get(i), f64::max);
    }
    Ok(())
}

fn option_fold(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

/// Time per machine state for each selected device: every STATUS sample (`010302`) lasts until
/// the device's next one; the last lasts until `selection.to` when given, else it is not
/// counted.
pub fn status_durations(
    lake: &Path,
    selection: &Selection,
    progress: &mut dyn Progress,
) -> Result<Analysis<StateDuration>, AnalyzeError> {
    let selection = Selection {
        item: Some(STATUS_ITEM.to_string()),
        ..selection.clone()
    };
    let groups = chunks(files_of(lake, &selection)?, HOUR_MS);
    // Per device: the state in force and since when, and the time per state so far.
    let mut open: BTreeMap<String, (MachineState, i64)> = BTreeMap::new();
    let mut spent: BTreeMap<(String, MachineState), i64> = BTreeMap::new();
    let skipped = run_chunks(groups, progress, |files| {
        let frame = scan(files, &selection)?
            .select([col("device"), col("ts"), col("value"), col("text")])
            .sort(
                ["device", "ts"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()?;
        walk_states(&frame, &mut open, &mut spent)
    })?;
    if let Some(to) = selection.to {
        for (device, (state, since)) in &open {
            *spent.entry((device.clone(), *state)).or_default() += (to - since).max(0);
        }
    }
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for ((device, _), ms) in &spent {
        *totals.entry(device.as_str()).or_default() += ms;
    }
    let rows = spent
        .iter()
        .map(|((device, state), ms)| StateDuration {
            device: device.clone(),
            state: *state,
            ms: *ms,
            share: match totals[device.as_str()] {
                0 => 0.0,
                total => *ms as f64 / total as f64,
            },
        })
        .collect();
    Ok(Analysis { rows, skipped })
}

fn walk_states(
    frame: &DataFrame,
    open: &mut BTreeMap<String, (MachineState, i64)>,
    spent: &mut BTreeMap<(String, MachineState), i64>,
) -> PolarsResult<()> {
    let device = frame.column("device")?.str()?;
    let ts = frame.column("ts")?.i64()?;
    let value = frame.column("value")?.f64()?;
    let text = frame.column("text")?.str()?;
    for i in 0..frame.height() {
        let (Some(d), Some(t)) = (device.get(i), ts.get(i)) else {
            continue;
        };
        let state = MachineState::from_sample(value.get(i), text.get(i));
        if let Some((previous, since)) = open.insert(d.to_string(), (state, t)) {
            *spent.entry((d.to_string(), previous)).or_default() += (t - since).max(0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hour: i64) -> SampleFile {
        SampleFile {
            path: PathBuf::from(format!("h{hour}")),
            hour_start: hour * HOUR_MS,
            bytes: 1,
        }
    }

    #[test]
    fn chunks_never_split_a_window() {
        let files: Vec<SampleFile> = (0..48).map(file).collect();
        // 1 min windows: an hour per chunk.
        assert_eq!(chunks(files.clone(), 60_000).len(), 48);
        // 7 min windows: lcm(7 min, 1 h) = 7 h.
        let sevens = chunks(files.clone(), 7 * 60_000);
        assert_eq!(sevens.len(), 48usize.div_ceil(7));
        assert!(sevens.iter().all(|c| c.len() <= 7));
        // 1 day windows: a day per chunk.
        assert_eq!(chunks(files, 86_400_000).len(), 2);
    }
}
