//! Errors of the storage layer.

use std::path::PathBuf;

/// An error from the storage layer. Each variant says what the caller can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Another process holds the database open. The caller should stop that process or
    /// use another path; nothing was opened.
    #[error("the database at {} is locked by another process", path.display())]
    Locked {
        /// Database directory.
        path: PathBuf,
    },
    /// No database exists at the path; the caller should create one (`rem init`).
    #[error("no database at {}", path.display())]
    Missing {
        /// Database directory.
        path: PathBuf,
    },
    /// A write was attempted on a database opened read-only.
    #[error("the database is open read-only")]
    ReadOnly,
    /// Stored bytes could not be decoded: a bug or on-disk corruption.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write was staged (or a read made) for a column family the open database does
    /// not have. Every family is created with the database, so this means the database
    /// was made or altered by something else; the write is refused rather than
    /// silently dropped, and the caller must not commit its batch.
    #[error("column family {0} does not exist in this database")]
    MissingColumnFamily(&'static str),
    /// Any other failure reported by RocksDB (I/O, options).
    #[error("storage error: {0}")]
    Backend(String),
}

impl StorageError {
    /// Maps a RocksDB error, recognising the lock-file failure of a second opener.
    pub(crate) fn from_rocksdb(err: rocksdb::Error, path: &std::path::Path) -> Self {
        let msg = err.into_string();
        // RocksDB reports a held lock as "IO error: While lock file: <path>/LOCK: Resource
        // temporarily unavailable" (or "No locks available" on some file systems).
        if msg.contains("LOCK") && (msg.contains("lock file") || msg.contains("No locks")) {
            StorageError::Locked {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::Backend(msg)
        }
    }
}

impl From<rocksdb::Error> for StorageError {
    fn from(err: rocksdb::Error) -> Self {
        StorageError::Backend(err.into_string())
    }
}
