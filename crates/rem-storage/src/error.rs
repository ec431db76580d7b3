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
    /// The database is encrypted and no password was given.
    #[error("the database at {} is encrypted: give its password (--password, P8_PASSWORD, or the prompt on a terminal)", path.display())]
    PasswordRequired {
        /// Database directory.
        path: PathBuf,
    },
    /// The password does not open the database's key (or a sealed secret); nothing was
    /// changed.
    #[error("wrong password for {}", path.display())]
    WrongPassword {
        /// Database directory (or the sealed file).
        path: PathBuf,
    },
    /// A password was given for a database that is not encrypted.
    #[error("the database at {} is not encrypted; open it without a password (unset P8_PASSWORD)", path.display())]
    NotEncrypted {
        /// Database directory.
        path: PathBuf,
    },
    /// A stored value fails authentication: tampered with, moved, or damaged.
    #[error("integrity error: {0}")]
    Integrity(String),
    /// Key-derivation parameters that are too weak or out of range.
    #[error("{0}")]
    KdfParams(String),
    /// Encryption could not be set up (the OS random source, a sealing failure).
    #[error("encryption: {0}")]
    Encryption(String),
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
