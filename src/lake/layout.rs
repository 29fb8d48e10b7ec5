//! Where the lake's files are: `samples/date=YYYY-MM-DD/hour=HH/part-<first ts>-….parquet`
//! (DESIGN.md §5). Only complete files count: a writer keeps its file hidden (`.part-…`) until
//! it is complete, and names starting with `_` are markers (`_SUCCESS`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::time::days_from_civil;

const HOUR_MS: i64 = 3_600_000;

/// One complete file of raw samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    pub path: PathBuf,
    /// Start of its hour partition, ms since the epoch.
    pub hour_start: i64,
    pub bytes: u64,
}

/// `date=YYYY-MM-DD` → days since the epoch.
pub fn parse_date_dir(name: &str) -> Option<i64> {
    let date = name.strip_prefix("date=")?;
    let mut parts = date.splitn(3, '-');
    let year = parts.next()?.parse::<i64>().ok()?;
    let month = parts
        .next()?
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let day = parts
        .next()?
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    Some(days_from_civil(year, month, day))
}

/// `hour=HH` → the hour.
pub fn parse_hour_dir(name: &str) -> Option<i64> {
    name.strip_prefix("hour=")?
        .parse::<i64>()
        .ok()
        .filter(|h| (0..24).contains(h))
}

/// Whether a file name is a complete data file (not hidden, not a marker).
pub fn is_data_file(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_')
}

/// The first event time in a `part-<first ts>-<writer>-<seq>.parquet` name, for ordering.
fn first_ts(name: &str) -> Option<i64> {
    name.strip_prefix("part-")?.split('-').next()?.parse().ok()
}

fn entries(dir: &Path) -> io::Result<Vec<(String, PathBuf, std::fs::FileType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((name, entry.path(), entry.file_type()?));
    }
    Ok(out)
}

/// A partition directory and when its time range ends.
pub struct Partition {
    pub dir: PathBuf,
    /// Relative to the lake, e.g. `samples/date=2026-01-01/hour=03`.
    pub relative: String,
    /// End of its time range, ms.
    pub end_ms: i64,
}

fn dirs(path: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

/// Every partition of the lake (samples hours, windows days), in name order.
pub fn partitions(lake: &Path) -> Vec<Partition> {
    let mut out = Vec::new();
    for (date, date_dir) in dirs(&lake.join("samples")) {
        let Some(days) = parse_date_dir(&date) else {
            continue;
        };
        for (hour, dir) in dirs(&date_dir) {
            let Some(h) = parse_hour_dir(&hour) else {
                continue;
            };
            out.push(Partition {
                dir,
                relative: format!("samples/{date}/{hour}"),
                end_ms: days * 86_400_000 + (h + 1) * 3_600_000,
            });
        }
    }
    for (size, size_dir) in dirs(&lake.join("windows")) {
        if !size.starts_with("size=") {
            continue;
        }
        for (date, dir) in dirs(&size_dir) {
            let Some(days) = parse_date_dir(&date) else {
                continue;
            };
            out.push(Partition {
                dir,
                relative: format!("windows/{size}/{date}"),
                end_ms: (days + 1) * 86_400_000,
            });
        }
    }
    out
}

/// The complete sample files of `lake` whose hour overlaps `[from, to)`, oldest hour first and,
/// within an hour, by first event time. Directories that are not partitions are skipped.
pub fn sample_files(
    lake: &Path,
    from: Option<i64>,
    to: Option<i64>,
) -> io::Result<Vec<SampleFile>> {
    let root = lake.join("samples");
    let mut files = Vec::new();
    let dates = match entries(&root) {
        Ok(dates) => dates,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "{} has no samples/ directory: is it a millstream lake?",
                    lake.display()
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    for (date_name, date_path, kind) in dates {
        let Some(days) = parse_date_dir(&date_name).filter(|_| kind.is_dir()) else {
            continue;
        };
        for (hour_name, hour_path, kind) in entries(&date_path)? {
            let Some(hour) = parse_hour_dir(&hour_name).filter(|_| kind.is_dir()) else {
                continue;
            };
            let hour_start = days * 86_400_000 + hour * HOUR_MS;
            if from.is_some_and(|f| hour_start + HOUR_MS <= f)
                || to.is_some_and(|t| hour_start >= t)
            {
                continue;
            }
            for (name, path, kind) in entries(&hour_path)? {
                if kind.is_file() && is_data_file(&name) {
                    let bytes = std::fs::metadata(&path)?.len();
                    files.push((
                        hour_start,
                        first_ts(&name),
                        name,
                        SampleFile {
                            path,
                            hour_start,
                            bytes,
                        },
                    ));
                }
            }
        }
    }
    files.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    Ok(files.into_iter().map(|(.., f)| f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_by_hour_and_ordered_hidden_ones_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path();
        let make = |rel: &str| {
            let path = lake.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        };
        make("samples/date=2026-01-01/hour=01/part-1767229200500-a-1.parquet");
        make("samples/date=2026-01-01/hour=01/part-1767229200100-b-1.parquet");
        make("samples/date=2026-01-01/hour=01/.part-1767229200900-a-2.parquet");
        make("samples/date=2026-01-01/hour=01/_SUCCESS");
        make("samples/date=2026-01-01/hour=00/part-1767225600000-a-1.parquet");
        make("samples/date=2026-01-02/hour=00/part-1767312000000-a-1.parquet");
        make("samples/notes/readme.parquet");
        let names = |from, to| -> Vec<String> {
            sample_files(lake, from, to)
                .unwrap()
                .iter()
                .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(None, None),
            [
                "part-1767225600000-a-1.parquet",
                "part-1767229200100-b-1.parquet",
                "part-1767229200500-a-1.parquet",
                "part-1767312000000-a-1.parquet"
            ]
        );
        // 2026-01-01T01:30Z .. 2026-01-02T00:00Z: only hour 01 of the first day.
        assert_eq!(
            names(Some(1_767_231_000_000), Some(1_767_312_000_000)).len(),
            2
        );
        let e = sample_files(&lake.join("nope"), None, None).unwrap_err();
        assert!(e.to_string().contains("no samples/ directory"), "{e}");
    }
}
