//! `millstream lake compact DIR`: housekeeping of a Parquet lake for Spark/HDFS (DESIGN.md §5):
//! merges the small files of closed partitions and marks them `_SUCCESS`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Failure, parse_duration};
use crate::config::{ByteSize, HumanDuration};
use crate::lake::compact::{CompactOptions, compact};

#[derive(Debug, Args)]
pub struct LakeArgs {
    #[command(subcommand)]
    command: LakeCommand,
}

#[derive(Debug, Subcommand)]
enum LakeCommand {
    /// Merge the small files of closed partitions; write `_SUCCESS` into closed partitions.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
struct CompactArgs {
    /// The lake directory (a parquet sink's `dir`).
    dir: PathBuf,
    /// Only partitions whose path contains this (e.g. `date=2026-11-27`); repeatable.
    #[arg(long = "partition")]
    partitions: Vec<String>,
    /// Merged files grow up to about this size.
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    target_size: ByteSize,
    /// A partition is closed this long after its time range ended (leave room for late
    /// samples and for writers' roll age).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    closed_after: HumanDuration,
}

fn parse_size(text: &str) -> Result<ByteSize, String> {
    text.parse()
}

pub fn run(args: LakeArgs) -> Result<(), Failure> {
    let LakeCommand::Compact(args) = args.command;
    let options = CompactOptions {
        target_bytes: args.target_size.bytes() as u64,
        closed_after_ms: args.closed_after.as_millis() as i64,
        partitions: args.partitions,
        now_ms: crate::sample::now_ms(),
    };
    let report = compact(&args.dir, &options, |partition| {
        tracing::debug!(partition, "compacting");
    })?;
    for problem in &report.problems {
        eprintln!("skipped: {problem}");
    }
    eprintln!(
        "{} partitions: {} closed, {} open (left alone); merged {} files into {} ({} → {} bytes, {} duplicate rows dropped)",
        report.partitions,
        report.closed,
        report.open,
        report.files_merged,
        report.files_written,
        report.bytes_before,
        report.bytes_after,
        report.duplicates
    );
    Ok(())
}
