//! What can go wrong writing the lake, typed so that a caller can tell the disk refusing
//! (a full disk, an I/O error: worth retrying) from the encoder failing; every message names
//! the file or directory, as the logs and `last_error` show it.

use std::io;
use std::path::{Path, PathBuf};

use parquet::errors::ParquetError;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A filesystem call failed; `what` says which ("cannot create ", "renaming ", …).
    #[error("{what}{}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The Parquet encoder failed on a file (its writes to disk included).
    #[error("{}: {source}", .path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    /// Arrow could not build, read or filter a record batch.
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A column of a type the lake's files never have.
    #[error("unexpected column type {0}")]
    UnexpectedColumn(arrow_schema::DataType),
    /// What went wrong with one file's rows.
    #[error("{}: {source}", .path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<LakeError>,
    },
    /// A compaction's journal a crash left behind cannot be read.
    #[error("{}: unreadable journal ({source}); remove it by hand", .path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The directory has neither `samples/` nor `windows/`.
    #[error("{} has no samples/ or windows/ directory: is it a millstream lake?", .0.display())]
    NotALake(PathBuf),
}

impl LakeError {
    /// For `map_err`: a failed filesystem call on `path`.
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LakeError {
        let path = path.to_path_buf();
        move |source| LakeError::Io { what, path, source }
    }

    /// For `map_err`: what went wrong with the rows of `path`.
    pub(crate) fn in_file(path: &Path) -> impl FnOnce(LakeError) -> LakeError {
        let path = path.to_path_buf();
        move |source| LakeError::InFile {
            path,
            source: Box::new(source),
        }
    }

    /// For `map_err`: the Parquet encoder failing on `path`.
    pub(crate) fn parquet(path: &Path) -> impl FnOnce(ParquetError) -> LakeError {
        let path = path.to_path_buf();
        move |source| LakeError::Parquet { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_what_was_done() {
        let e = LakeError::io("renaming ", Path::new("/lake/.part-1.parquet"))(io::Error::from(
            io::ErrorKind::NotFound,
        ));
        assert_eq!(
            e.to_string(),
            "renaming /lake/.part-1.parquet: entity not found"
        );
        let e = LakeError::parquet(Path::new("/lake/.part-2.parquet"))(ParquetError::General(
            "no space".into(),
        ));
        assert_eq!(
            e.to_string(),
            "/lake/.part-2.parquet: Parquet error: no space"
        );
    }
}
