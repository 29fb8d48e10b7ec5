//! Rows recognised by content: a set of 128-bit hashes over every column of a lake row. The
//! lake is append-only files, so "this row is already there" has no primary key to lean on;
//! compaction drops copies with it, and a replay skips rows a partition already holds.
//!
//! Two independent 64-bit hashes make a false match (a genuine row taken for a copy and
//! dropped) as likely as a 128-bit collision: negligible at any lake size.

use super::error::LakeError;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use arrow_array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};

/// A set of rows, by content.
#[derive(Default)]
pub struct RowSet {
    seen: HashSet<u128>,
}

impl RowSet {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Remembers every row of `batch`.
    pub fn insert_all(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.seen.extend(fingerprints(batch)?);
        Ok(())
    }

    /// The rows of `batch` not seen before (and remembers them), and how many were dropped.
    pub fn keep_new(&mut self, batch: &RecordBatch) -> Result<(RecordBatch, u64), LakeError> {
        let keep: BooleanArray = fingerprints(batch)?
            .into_iter()
            .map(|f| Some(self.seen.insert(f)))
            .collect();
        filter(batch, keep)
    }

    /// The rows of `batch` not in the set (which is left as it is), and how many were dropped.
    pub fn drop_known(&self, batch: &RecordBatch) -> Result<(RecordBatch, u64), LakeError> {
        let keep: BooleanArray = fingerprints(batch)?
            .into_iter()
            .map(|f| Some(!self.seen.contains(&f)))
            .collect();
        filter(batch, keep)
    }
}

fn filter(batch: &RecordBatch, keep: BooleanArray) -> Result<(RecordBatch, u64), LakeError> {
    let dropped = keep.false_count() as u64;
    if dropped == 0 {
        return Ok((batch.clone(), 0));
    }
    let kept = arrow_select::filter::filter_record_batch(batch, &keep)?;
    Ok((kept, dropped))
}

/// One 128-bit hash per row, over every column (a null differs from every value).
fn fingerprints(batch: &RecordBatch) -> Result<Vec<u128>, LakeError> {
    let rows = batch.num_rows();
    let mut hashers: Vec<(
        rustc_hash::FxHasher,
        std::collections::hash_map::DefaultHasher,
    )> = (0..rows).map(|_| Default::default()).collect();
    for column in batch.columns() {
        let mut feed = |row: usize, bytes: &[u8], valid: bool| {
            // What a null slot holds is unspecified (a builder and a reader may differ).
            let bytes = if valid { bytes } else { &[] };
            let (a, b) = &mut hashers[row];
            valid.hash(a);
            valid.hash(b);
            bytes.hash(a);
            bytes.hash(b);
        };
        let any = column.as_any();
        if let Some(c) = any.downcast_ref::<StringArray>() {
            (0..rows).for_each(|r| feed(r, c.value(r).as_bytes(), c.is_valid(r)));
        } else if let Some(c) = any.downcast_ref::<Float64Array>() {
            (0..rows).for_each(|r| feed(r, &c.value(r).to_bits().to_le_bytes(), c.is_valid(r)));
        } else if let Some(c) = any.downcast_ref::<Int64Array>() {
            (0..rows).for_each(|r| feed(r, &c.value(r).to_le_bytes(), c.is_valid(r)));
        } else if let Some(c) = any.downcast_ref::<TimestampMillisecondArray>() {
            (0..rows).for_each(|r| feed(r, &c.value(r).to_le_bytes(), c.is_valid(r)));
        } else {
            return Err(LakeError::UnexpectedColumn(column.data_type().clone()));
        }
    }
    Ok(hashers
        .into_iter()
        .map(|(a, b)| (u128::from(a.finish()) << 64) | u128::from(b.finish()))
        .collect())
}
