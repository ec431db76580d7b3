//! RocksDB storage for the REM database.
//!
//! This crate is the only one in the workspace that names `rocksdb`. It owns:
//! - the column families, one per concern ([`ColumnFamily`]);
//! - order-preserving binary key codecs ([`KeyBuf`], [`KeyReader`]);
//! - atomic write batches that always carry change-log records ([`Batch`], [`Store::commit`]);
//! - the change log with its monotonic sequence numbers;
//! - the value codec through which every stored value passes ([`ValueCodec`]), and
//!   encryption at rest ([`EncryptedCodec`], the `ENCRYPTION` header, [`change_password`]);
//! - in-memory and read-only modes, and the RocksDB tunables ([`StoreOptions`]).
//!
//! The engine above it never sees RocksDB types: it writes bytes under keys.

mod cf;
mod codec;
mod crypto;
mod error;
mod keys;
mod options;
mod store;

pub use cf::ColumnFamily;
pub use codec::{PlainCodec, ValueCodec};
pub use crypto::{
    change_password, header_path, open_with_password, read_header, seal_with_password,
    write_private_file, EncryptedCodec, Header, KdfParams, Password, HEADER_FILE,
};
pub use error::StorageError;
pub use keys::{prefix_successor, KeyBuf, KeyReader};
pub use options::{Compression, StoreOptions};
/// Sees the last committed sequence number change ([`Store::watch_commits`]).
pub type CommitReceiver = tokio::sync::watch::Receiver<u64>;
pub use store::{
    create_private_dir, Batch, CfStats, OpenMode, RawScan, ScanIter, Store, FORMAT_VERSION,
    META_FORMAT_VERSION, META_LAST_SEQ,
};

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
