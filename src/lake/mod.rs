//! The Parquet lake (DESIGN.md §5), which owns its format: writing files ([`writer`]: schemas,
//! writer properties, file and partition names), finding complete files by partition, reading
//! raw samples out of them, and the historical questions asked of it. The parquet sink
//! (`crate::sinks::parquet`) only feeds [`writer::Lake`] from its queue.
//!
//! Layout:
//! - [`writer`]: the lake's files written: schemas, partitions, hidden-then-renamed files;
//!   [`error`]: what can go wrong doing so.
//! - [`layout`]: partitions and complete files within a time range.
//! - [`sample_reader`]: raw samples out of one file, with clear errors for files that are not
//!   the lake's Parquet.
//! - `analyze`: windowed statistics, descriptions and state durations with polars (the
//!   default `analyze` feature).
//! - [`compact`]: merging the small files of closed partitions, `_SUCCESS` markers.
//! - [`row_set`]: rows recognised by content (copies dropped by compaction and replays).
//! - [`existing_rows`]: the rows a partition held before a replay wrote to it.
//! - [`upload`] and [`webhdfs`]: copying closed partitions to HDFS.

#[cfg(feature = "analyze")]
pub mod analyze;
pub mod compact;
pub mod error;
pub mod existing_rows;
pub mod layout;
pub mod row_set;
pub mod sample_reader;
pub mod upload;
pub mod webhdfs;
pub mod writer;
