//! The Parquet lake's format, written (DESIGN.md §5): Hive-partitioned by event time,
//! readable as-is by Spark, DuckDB, pyarrow and polars. [`Lake`] writes it; the parquet sink
//! (`crate::sinks::parquet`) feeds it from its queue, compaction and the readers in this module
//! share its schemas, names and writer properties.
//!
//! ```text
//! <dir>/samples/date=YYYY-MM-DD/hour=HH/part-<first ts>-<writer>-<seq>.parquet
//! <dir>/windows/size=<10s>/date=YYYY-MM-DD/part-<first start>-<writer>-<seq>.parquet
//! ```
//!
//! One file is open per partition receiving data; rows are buffered per partition and written
//! as record batches. A file is written under a hidden name (a leading `.`) and renamed into
//! place only when complete — rolled after `roll_rows` rows or `roll_age` — so a reader never
//! sees a partial file. Partition columns are not repeated inside files; timestamps are
//! millisecond `TIMESTAMP(UTC)`; strings are dictionary-encoded; pages are zstd-compressed.
//! When the input ends every open file is completed.
//!
//! A file is durable once completed: synced, renamed, and its directory synced. Until then the
//! lake holds on to the rows it was given for the file (shared with the batches they came
//! in, not copied). A write that fails (a full disk, an I/O error) abandons the file; its rows
//! are counted as failed and become *pending*: written again, into new files, when
//! [`Lake::write_pending`] is called (the sink does so every second and at each checkpoint),
//! so the lake recovers by itself once there is room. While rows are pending the lake is not
//! [settled](Lake::is_settled) and the sink passes no checkpoint barrier, so the write-ahead
//! log keeps them too. Held and pending rows together are bounded ([`MAX_HELD_ROWS`]): the
//! oldest open file is completed early to stay within it, and pending rows beyond it are
//! given up to the write-ahead log alone, which the next start replays.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::HumanDuration;
use crate::lake::error::LakeError;
use crate::lake::existing_rows::ExistingRows;
use crate::sample::Sample;
use crate::time::Utc;
use crate::window::WindowRow;
use arrow_array::builder::{
    ArrayBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows buffered per partition before they are encoded as a record batch.
const BATCH_ROWS: usize = 65_536;
/// Most files open at once; the least recently written is completed beyond this.
const MAX_OPEN_FILES: usize = 64;
/// Most rows held for open files and pending after a failed write, together (~56 bytes a
/// sample): beyond it the oldest open file is completed early, and pending rows are given up
/// to the write-ahead log.
pub const MAX_HELD_ROWS: u64 = 2_000_000;

/// A hidden file untouched for its roll age plus this long belongs to no live writer.
pub const STALE_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes incomplete files a crashed writer left behind. Their rows are not lost: the
/// write-ahead log kept them until the lake completed a file holding them, and replays them
/// after the crash. Files of live writers (other processes sharing the lake) are recent.
pub fn remove_stale_hidden(dir: &Path, older_than: std::time::Duration) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().starts_with(".part-")
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age >= older_than)
            {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed an incomplete Parquet file left by a crash (its rows were replayed from the write-ahead log)")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale incomplete Parquet file")
                    }
                }
            }
        }
    }
}

/// A writer id unique to this process run: the process id and start time, base 36.
pub fn default_writer_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    format!(
        "{}{}",
        base36(u64::from(std::process::id())),
        base36(nanos % 36u64.pow(6))
    )
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// How the lake's files are written (DESIGN.md §5): zstd level 3, dictionary-encoded strings,
/// row groups up to 1,000,000 rows. Compaction writes the same way.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(1_000_000))
        .build()
}

/// How files roll.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    pub roll_rows: u64,
    pub roll_age: Duration,
    /// Part of every file name, so several writers can share a lake.
    pub writer: String,
    /// Skip rows the lake held before this writer (a replay): `Some(most rows held in memory
    /// to compare, all partitions together)`.
    pub skip_existing: Option<u64>,
}

/// The schema of `samples` files.
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, true),
        Field::new("text", DataType::Utf8, true),
    ]))
}

/// The schema of `windows` files.
pub fn windows_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("device", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("start", ts.clone(), false),
        Field::new("end", ts, false),
        Field::new("count", DataType::Int64, false),
    ];
    for name in crate::window::STATS {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    Arc::new(Schema::new(fields))
}

/// Rows waiting to be encoded, column by column.
enum Buffer {
    Samples {
        device: StringBuilder,
        item: StringBuilder,
        ts: TimestampMillisecondBuilder,
        value: Float64Builder,
        text: StringBuilder,
    },
    Windows {
        device: StringBuilder,
        item: StringBuilder,
        start: TimestampMillisecondBuilder,
        end: TimestampMillisecondBuilder,
        count: Int64Builder,
        floats: Vec<Float64Builder>,
    },
}

impl Buffer {
    fn samples() -> Buffer {
        Buffer::Samples {
            device: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 17),
            item: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 10),
            ts: TimestampMillisecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            value: Float64Builder::with_capacity(BATCH_ROWS),
            text: StringBuilder::new(),
        }
    }

    fn windows() -> Buffer {
        Buffer::Windows {
            device: StringBuilder::new(),
            item: StringBuilder::new(),
            start: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            end: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            count: Int64Builder::new(),
            floats: (0..9).map(|_| Float64Builder::new()).collect(),
        }
    }

    fn push_sample(&mut self, s: &Sample) {
        if let Buffer::Samples {
            device,
            item,
            ts,
            value,
            text,
        } = self
        {
            device.append_value(&s.device);
            item.append_value(&s.item);
            ts.append_value(s.ts);
            value.append_option(s.value);
            text.append_option(s.text.as_deref());
        }
    }

    fn push_window(&mut self, w: &WindowRow) {
        if let Buffer::Windows {
            device,
            item,
            start,
            end,
            count,
            floats,
        } = self
        {
            device.append_value(&w.device);
            item.append_value(&w.item);
            start.append_value(w.start);
            end.append_value(w.end);
            count.append_value(w.count as i64);
            for (builder, v) in floats.iter_mut().zip(w.stats()) {
                builder.append_option(v.is_finite().then_some(v));
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Buffer::Samples { ts, .. } => ts.len(),
            Buffer::Windows { count, .. } => count.len(),
        }
    }

    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
        let columns: Vec<ArrayRef> = match self {
            Buffer::Samples {
                device,
                item,
                ts,
                value,
                text,
            } => vec![
                Arc::new(device.finish()),
                Arc::new(item.finish()),
                Arc::new(ts.finish()),
                Arc::new(value.finish()),
                Arc::new(text.finish()),
            ],
            Buffer::Windows {
                device,
                item,
                start,
                end,
                count,
                floats,
            } => {
                let mut columns: Vec<ArrayRef> = vec![
                    Arc::new(device.finish()),
                    Arc::new(item.finish()),
                    Arc::new(start.finish()),
                    Arc::new(end.finish()),
                    Arc::new(count.finish()),
                ];
                columns.extend(floats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
                columns
            }
        };
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Rows given to an open file — a range of a shared batch, all of one partition — kept until
/// the file is complete, to write them again if it fails.
#[derive(Debug, Clone)]
struct Held {
    rows: HeldRows,
    range: Range<usize>,
    /// Written before, into a file that failed (and counted as failed then).
    again: bool,
}

#[derive(Debug, Clone)]
enum HeldRows {
    Samples(Arc<[Sample]>),
    Windows(Arc<[WindowRow]>),
}

impl Held {
    fn rows(&self) -> u64 {
        self.range.len() as u64
    }
}

/// One file being written.
struct OpenFile {
    hidden: PathBuf,
    visible: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    buffer: Buffer,
    rows: u64,
    /// Its rows as given, to write again if the file fails.
    held: Vec<Held>,
    /// Rows handed to the Parquet writer.
    written: u64,
    opened: Instant,
    last_write: Instant,
}

impl OpenFile {
    fn flush_buffer(&mut self, existing: Option<&mut ExistingRows>) -> Result<(), LakeError> {
        if self.buffer.len() == 0 {
            return Ok(());
        }
        let mut batch = self.buffer.take(&self.schema)?;
        if let Some(existing) = existing {
            let partition = self.hidden.parent().expect("a file in a partition");
            batch = existing.keep_new(partition, batch);
        }
        self.written += batch.num_rows() as u64;
        self.writer
            .write(&batch)
            .map_err(LakeError::parquet(&self.hidden))
    }

    /// Deletes the file (it failed); returns the rows it was given.
    fn abandon(self) -> Vec<Held> {
        drop(self.writer);
        if let Err(e) = fs::remove_file(&self.hidden) {
            tracing::warn!(path = %self.hidden.display(), error = %e, "cannot remove an abandoned Parquet file");
        }
        self.held
    }

    /// Finishes the file and makes it visible (`None`: it holds no row and is deleted). A file
    /// that cannot be finished is deleted, and the rows it was given are returned with the
    /// error.
    fn complete(
        mut self,
        existing: Option<&mut ExistingRows>,
    ) -> Result<Option<PathBuf>, (LakeError, Vec<Held>)> {
        let held = std::mem::take(&mut self.held);
        let hidden = self.hidden.clone();
        self.finish(existing).map_err(|e| {
            let _ = fs::remove_file(&hidden);
            (e, held)
        })
    }

    fn finish(mut self, existing: Option<&mut ExistingRows>) -> Result<Option<PathBuf>, LakeError> {
        self.flush_buffer(existing)?;
        if self.written == 0 {
            drop(self.writer);
            fs::remove_file(&self.hidden).map_err(LakeError::io("removing ", &self.hidden))?;
            return Ok(None);
        }
        let file = self
            .writer
            .into_inner()
            .map_err(LakeError::parquet(&self.hidden))?;
        file.sync_all().map_err(LakeError::io("", &self.hidden))?;
        fs::rename(&self.hidden, &self.visible)
            .map_err(LakeError::io("renaming ", &self.hidden))?;
        // The new name must survive a crash too.
        let partition = self.visible.parent().expect("a file in a partition");
        File::open(partition)
            .and_then(|dir| dir.sync_all())
            .map_err(LakeError::io("syncing ", partition))?;
        Ok(Some(self.visible))
    }
}

/// The lake writer.
pub struct Lake {
    dir: PathBuf,
    options: LakeOptions,
    open: HashMap<PathBuf, OpenFile>,
    seq: u64,
    samples_schema: SchemaRef,
    windows_schema: SchemaRef,
    properties: WriterProperties,
    /// The rows partitions held before (when skipping them).
    existing: Option<ExistingRows>,
    /// Files completed so far (for tests and logs).
    pub completed: Vec<PathBuf>,
    /// Rows that failed to write since last asked ([`Lake::take_lost`]), each counted once.
    lost_rows: u64,
    /// Rows of failed files, oldest first, to write again.
    pending: VecDeque<Held>,
    pending_rows: u64,
    /// Rows given up beyond [`MAX_HELD_ROWS`]: only the write-ahead log has them now.
    gave_up: u64,
    max_held_rows: u64,
}

impl Lake {
    pub fn new(dir: PathBuf, options: LakeOptions) -> Lake {
        let properties = writer_properties();
        let existing = options
            .skip_existing
            .map(|max_rows| ExistingRows::new(&options.writer, max_rows));
        Lake {
            existing,
            dir,
            options,
            open: HashMap::new(),
            seq: 0,
            samples_schema: samples_schema(),
            windows_schema: windows_schema(),
            properties,
            completed: Vec::new(),
            lost_rows: 0,
            pending: VecDeque::new(),
            pending_rows: 0,
            gave_up: 0,
            max_held_rows: MAX_HELD_ROWS,
        }
    }

    /// Rows that failed to write since the last call (each counted once, however often it
    /// is written again).
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost_rows)
    }

    /// Rows of failed files waiting to be written again.
    pub fn pending_rows(&self) -> u64 {
        self.pending_rows
    }

    /// Rows given up beyond [`MAX_HELD_ROWS`] (only the write-ahead log has them).
    pub fn rows_given_up(&self) -> u64 {
        self.gave_up
    }

    /// Whether every row given is in a complete file or an open one: none pending after a
    /// failure, none given up.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty() && self.gave_up == 0
    }

    /// Rows of a failed file become pending (counted as failed the first time).
    fn failed(&mut self, held: Vec<Held>) {
        for mut h in held {
            if !h.again {
                self.lost_rows += h.rows();
                h.again = true;
            }
            self.pending_rows += h.rows();
            self.pending.push_back(h);
        }
        self.bound_pending();
    }

    /// Gives up the oldest pending rows beyond [`MAX_HELD_ROWS`].
    fn bound_pending(&mut self) {
        while self.pending_rows > self.max_held_rows {
            let oldest = self.pending.pop_front().expect("rows pending");
            if self.gave_up == 0 {
                tracing::error!(dir = %self.dir.display(), "the lake cannot write and holds too many rows; the oldest are left to the write-ahead log, which the next start replays");
            }
            self.pending_rows -= oldest.rows();
            self.gave_up += oldest.rows();
        }
    }

    /// Completes `file`; its rows become pending if that fails.
    fn complete_file(&mut self, file: OpenFile) -> Result<(), LakeError> {
        match file.complete(self.existing.as_mut()) {
            Ok(path) => {
                self.completed.extend(path);
                Ok(())
            }
            Err((e, held)) => {
                self.failed(held);
                Err(e)
            }
        }
    }

    /// Writes the rows of failed files again, into new files (which complete as any do). Their
    /// failing again makes them pending again.
    pub fn write_pending(&mut self) -> Result<(), LakeError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let mut first_error = None;
        for held in pending {
            if let Err(e) = self.write(held) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.bound_held() {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn write_samples(&mut self, samples: &Arc<[Sample]>) -> Result<(), LakeError> {
        // Consecutive samples mostly share a partition: one run of them goes at once.
        let mut i = 0;
        let mut first_error = None;
        while i < samples.len() {
            let hour = samples[i].ts.div_euclid(3_600_000);
            let run = samples[i..]
                .iter()
                .take_while(|s| s.ts.div_euclid(3_600_000) == hour)
                .count();
            let held = Held {
                rows: HeldRows::Samples(samples.clone()),
                range: i..i + run,
                again: false,
            };
            if let Err(e) = self.write(held) {
                first_error.get_or_insert(e);
            }
            i += run;
        }
        if let Err(e) = self.bound_held() {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn write_windows(&mut self, windows: &Arc<[WindowRow]>) -> Result<(), LakeError> {
        let mut first_error = None;
        for i in 0..windows.len() {
            let held = Held {
                rows: HeldRows::Windows(windows.clone()),
                range: i..i + 1,
                again: false,
            };
            if let Err(e) = self.write(held) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.bound_held() {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes rows of one partition into its open file, which then holds them.
    fn write(&mut self, held: Held) -> Result<(), LakeError> {
        let (partition, first_ts, samples) = match &held.rows {
            HeldRows::Samples(samples) => {
                let first = samples[held.range.start].ts;
                let utc = Utc::from_ms(first);
                let partition = self
                    .dir
                    .join("samples")
                    .join(format!("date={}", utc.date()))
                    .join(format!("hour={:02}", utc.hour));
                (partition, first, true)
            }
            HeldRows::Windows(windows) => {
                let w = &windows[held.range.start];
                let size = HumanDuration::from_millis(w.size_ms.max(0) as u64);
                let partition = self
                    .dir
                    .join("windows")
                    .join(format!("size={size}"))
                    .join(format!("date={}", Utc::from_ms(w.start).date()));
                (partition, w.start, false)
            }
        };
        match self.file(&partition, first_ts, samples) {
            Ok(file) => {
                match &held.rows {
                    HeldRows::Samples(samples) => samples[held.range.clone()]
                        .iter()
                        .for_each(|s| file.buffer.push_sample(s)),
                    HeldRows::Windows(windows) => windows[held.range.clone()]
                        .iter()
                        .for_each(|w| file.buffer.push_window(w)),
                }
                file.rows += held.rows();
                file.held.push(held);
                self.settle(&partition)
            }
            Err(e) => {
                self.failed(vec![held]);
                Err(e)
            }
        }
    }

    /// Keeps the rows held for open files and pending within [`MAX_HELD_ROWS`]: completes the
    /// oldest open files early while there are too many.
    fn bound_held(&mut self) -> Result<(), LakeError> {
        let mut first_error = None;
        loop {
            let open: u64 = self.open.values().map(|f| f.rows).sum();
            if open + self.pending_rows <= self.max_held_rows || self.open.is_empty() {
                break;
            }
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.opened)
                .map(|(p, _)| p.clone())
                .expect("non-empty");
            let file = self.open.remove(&oldest).expect("exists");
            if let Err(e) = self.complete_file(file) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// After a write to `partition`: encodes a full buffer, completes a full file.
    fn settle(&mut self, partition: &Path) -> Result<(), LakeError> {
        let Some(file) = self.open.get_mut(partition) else {
            return Ok(());
        };
        if file.rows >= self.options.roll_rows {
            let file = self.open.remove(partition).expect("present");
            self.complete_file(file)?;
        } else if file.buffer.len() >= BATCH_ROWS
            && let Err(e) = file.flush_buffer(self.existing.as_mut())
        {
            // The file cannot be trusted any more: the next write opens a new one.
            let file = self.open.remove(partition).expect("present");
            self.failed(file.abandon());
            return Err(e);
        }
        Ok(())
    }

    /// The open file of `partition`, opening one (named after `first_ts`) if needed.
    fn file(
        &mut self,
        partition: &Path,
        first_ts: i64,
        samples: bool,
    ) -> Result<&mut OpenFile, LakeError> {
        if !self.open.contains_key(partition) {
            if self.open.len() >= MAX_OPEN_FILES {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_write)
                    .map(|(p, _)| p.clone())
                    .expect("non-empty");
                let file = self.open.remove(&oldest).expect("exists");
                self.complete_file(file)?;
            }
            fs::create_dir_all(partition).map_err(LakeError::io("cannot create ", partition))?;
            self.seq += 1;
            let name = format!(
                "part-{first_ts}-{}-{:06}.parquet",
                self.options.writer, self.seq
            );
            let hidden = partition.join(format!(".{name}"));
            let visible = partition.join(&name);
            let (schema, buffer) = if samples {
                (self.samples_schema.clone(), Buffer::samples())
            } else {
                (self.windows_schema.clone(), Buffer::windows())
            };
            let out = File::create(&hidden).map_err(LakeError::io("cannot create ", &hidden))?;
            let writer = ArrowWriter::try_new(out, schema.clone(), Some(self.properties.clone()))
                .map_err(LakeError::parquet(&hidden))?;
            let now = Instant::now();
            self.open.insert(
                partition.to_path_buf(),
                OpenFile {
                    hidden,
                    visible,
                    writer,
                    schema,
                    buffer,
                    rows: 0,
                    held: Vec::new(),
                    written: 0,
                    opened: now,
                    last_write: now,
                },
            );
        }
        let file = self.open.get_mut(partition).expect("inserted above");
        file.last_write = Instant::now();
        Ok(file)
    }

    /// Completes files older than `roll_age`.
    pub fn roll_aged(&mut self) -> Result<(), LakeError> {
        let age = self.options.roll_age;
        let aged: Vec<PathBuf> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= age)
            .map(|(p, _)| p.clone())
            .collect();
        let mut first_error = None;
        for partition in aged {
            let file = self.open.remove(&partition).expect("listed above");
            if let Err(e) = self.complete_file(file) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Completes every open file.
    pub fn finish(&mut self) -> Result<(), LakeError> {
        let mut first_error = None;
        let open: Vec<OpenFile> = self.open.drain().map(|(_, file)| file).collect();
        for file in open {
            if let Err(e) = self.complete_file(file) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows not written because the lake held them before (when skipping them).
    pub fn rows_skipped(&self) -> u64 {
        self.existing.as_ref().map_or(0, |e| e.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn options() -> LakeOptions {
        LakeOptions {
            roll_rows: 1_000_000,
            roll_age: Duration::from_secs(3_600),
            writer: "t".into(),
            skip_existing: None,
        }
    }

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00Z

    fn batch(from: i64, n: i64) -> Arc<[Sample]> {
        let (d, i): (Id, Id) = ("D".into(), "I".into());
        (from..from + n)
            .map(|k| Sample::number(d.clone(), i.clone(), T0 + k, k as f64))
            .collect::<Vec<_>>()
            .into()
    }

    /// The sample times of every complete file, sorted.
    fn times(dir: &Path) -> Vec<i64> {
        let mut out = Vec::new();
        for found in crate::lake::layout::sample_files(dir, None, None).unwrap() {
            let file = File::open(&found.path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let ts = batch
                    .column_by_name("ts")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow_array::TimestampMillisecondArray>()
                    .unwrap();
                out.extend(ts.values().iter().map(|t| t - T0));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn rows_of_a_file_that_fails_are_written_again_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = Lake::new(dir.path().to_path_buf(), options());
        lake.write_samples(&batch(0, 100)).unwrap();
        // The open file's partition disappears under it: completing it fails (a real failed
        // rename), and a file cannot be made where the partitions go.
        fs::remove_dir_all(dir.path().join("samples")).unwrap();
        fs::write(dir.path().join("samples"), b"not a directory").unwrap();
        assert!(lake.finish().is_err());
        assert_eq!(lake.take_lost(), 100);
        assert_eq!(lake.pending_rows(), 100);
        assert!(!lake.is_settled());
        // New rows go on failing (pending too, in order); retries fail and are not counted
        // as failed again.
        assert!(lake.write_samples(&batch(100, 50)).is_err());
        assert!(lake.write_pending().is_err());
        assert_eq!(lake.take_lost(), 50);
        assert_eq!(lake.pending_rows(), 150);
        // Room again.
        fs::remove_file(dir.path().join("samples")).unwrap();
        lake.write_pending().unwrap();
        lake.write_samples(&batch(150, 50)).unwrap();
        lake.finish().unwrap();
        assert!(lake.is_settled());
        assert_eq!(lake.take_lost(), 0);
        assert_eq!(
            times(dir.path()),
            (0..200).collect::<Vec<_>>(),
            "every row exactly once"
        );
    }

    #[test]
    fn held_rows_are_bounded_and_the_oldest_pending_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = Lake::new(dir.path().to_path_buf(), options());
        lake.max_held_rows = 1_000;
        // Within the bound: open files are completed early, before they reach it.
        for k in 0..5 {
            lake.write_samples(&batch(k * 300, 300)).unwrap();
        }
        assert!(lake.open.values().map(|f| f.rows).sum::<u64>() <= 1_000);
        assert!(!lake.completed.is_empty(), "completed early");
        lake.finish().unwrap();
        assert_eq!(times(dir.path()), (0..1_500).collect::<Vec<_>>());
        // Failing: pending rows beyond the bound are given up (the write-ahead log has them).
        fs::rename(dir.path().join("samples"), dir.path().join("kept")).unwrap();
        fs::write(dir.path().join("samples"), b"").unwrap();
        for k in 5..10 {
            assert!(lake.write_samples(&batch(k * 300, 300)).is_err());
        }
        assert_eq!(lake.pending_rows(), 900);
        assert_eq!(lake.rows_given_up(), 600);
        assert!(!lake.is_settled(), "rows given up keep the log");
    }

    #[test]
    fn only_stale_incomplete_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("samples/date=2026-01-01/hour=00");
        fs::create_dir_all(&partition).unwrap();
        let stale = partition.join(".part-1-crashed-000001.parquet");
        let live = partition.join(".part-2-live-000001.parquet");
        let complete = partition.join("part-1-crashed-000000.parquet");
        for path in [&stale, &live, &complete] {
            fs::write(path, b"x").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for path in [&stale, &complete] {
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        remove_stale_hidden(dir.path(), std::time::Duration::from_secs(120));
        assert!(!stale.exists());
        assert!(live.exists(), "a live writer's file is recent");
        assert!(complete.exists(), "complete files are never touched");
    }
}
