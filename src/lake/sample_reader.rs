//! Raw samples out of one lake file (`device`, `item`, `ts`, `value`, `text`; DESIGN.md §5), in
//! batches, filtered to an event-time range. A file that is not Parquet, or not the lake's
//! columns, is an error naming the file (and the row group for damage inside it).

use std::fs::File;
use std::path::Path;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::id::Id;
use crate::nclink::intern::Interner;
use crate::sample::Sample;

/// Rows read per batch.
const BATCH_ROWS: usize = 65_536;

/// Reads the samples of `path` with `from <= ts < to` and hands them to `each` in batches
/// (stopping early when it returns false). Returns the number of samples handed on.
pub fn read_samples(
    path: &Path,
    from: Option<i64>,
    to: Option<i64>,
    interner: &mut Interner,
    mut each: impl FnMut(Vec<Sample>) -> bool,
) -> Result<u64, String> {
    let name = path.display();
    let file = File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("{name}: not a readable Parquet file: {e}"))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("{name}: not a readable Parquet file: {e}"))?;
    let mut total = 0u64;
    let mut rows_before = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| format!("{name}: damaged after row {rows_before}: {e}"))?;
        rows_before += batch.num_rows() as u64;
        let samples = samples_of(&batch, from, to, interner).map_err(|e| format!("{name}: {e}"))?;
        total += samples.len() as u64;
        if !samples.is_empty() && !each(samples) {
            break;
        }
    }
    Ok(total)
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    expected: &str,
) -> Result<&'a T, String> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| format!("no `{name}` column: not a samples file of a millstream lake"))?;
    column.as_any().downcast_ref::<T>().ok_or_else(|| {
        format!(
            "column `{name}` is {}, expected {expected}",
            column.data_type()
        )
    })
}

fn samples_of(
    batch: &RecordBatch,
    from: Option<i64>,
    to: Option<i64>,
    interner: &mut Interner,
) -> Result<Vec<Sample>, String> {
    let device = column::<StringArray>(batch, "device", "utf8")?;
    let item = column::<StringArray>(batch, "item", "utf8")?;
    let ts = column::<TimestampMillisecondArray>(batch, "ts", "timestamp(ms)")?;
    let value = column::<Float64Array>(batch, "value", "float64")?;
    let text = column::<StringArray>(batch, "text", "utf8")?;
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut last: Option<(Id, Id)> = None;
    for row in 0..batch.num_rows() {
        let t = ts.value(row);
        if from.is_some_and(|f| t < f)
            || to.is_some_and(|e| t >= e)
            || device.is_null(row)
            || item.is_null(row)
        {
            continue;
        }
        let (d, i) = (device.value(row), item.value(row));
        // Rows of one key often follow each other: skip the interner's hash then.
        let key = match &last {
            Some((ld, li)) if &**ld == d && &**li == i => (ld.clone(), li.clone()),
            _ => (interner.intern_trusted(d), interner.intern_trusted(i)),
        };
        last = Some(key.clone());
        out.push(Sample {
            device: key.0,
            item: key.1,
            ts: t,
            value: (!value.is_null(row)).then(|| value.value(row)),
            text: (!text.is_null(row)).then(|| text.value(row).into()),
        });
    }
    Ok(out)
}
