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
    /// Arrow could not build a record batch from the buffered rows.
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl LakeError {
    /// For `map_err`: a failed filesystem call on `path`.
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LakeError {
        let path = path.to_path_buf();
        move |source| LakeError::Io { what, path, source }
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
