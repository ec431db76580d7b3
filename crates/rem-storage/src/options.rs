//! Store options: the RocksDB tunables the product exposes (`P8_ROCKSDB_*`).

/// Block compression of SST files (`P8_ROCKSDB_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4: fast, the default.
    #[default]
    Lz4,
    /// Zstandard: smaller files, slower.
    Zstd,
    /// Snappy.
    Snappy,
}

impl Compression {
    /// Parses a configuration value (`none`, `lz4`, `zstd`, `snappy`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            "snappy" => Some(Compression::Snappy),
            _ => None,
        }
    }
}

/// Options for opening a [`crate::Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memtable size per column family in bytes (`P8_ROCKSDB_WRITE_BUFFER_SIZE`, in MB there).
    pub write_buffer_size: usize,
    /// Background flush and compaction threads (`P8_ROCKSDB_MAX_BACKGROUND_JOBS`).
    pub max_background_jobs: i32,
    /// Open file limit; -1 keeps all open (`P8_ROCKSDB_MAX_OPEN_FILES`).
    pub max_open_files: i32,
    /// SST compression (`P8_ROCKSDB_COMPRESSION`).
    pub compression: Compression,
    /// Shared block cache in bytes (`P8_ROCKSDB_BLOCK_CACHE_SIZE`, in MB there).
    pub block_cache_size: usize,
    /// fsync the WAL on every commit (`P8_ROCKSDB_SYNC`). Off by default: commits then
    /// survive a process crash (the OS holds the log) but not a power loss.
    pub sync_writes: bool,
    /// The password of an encrypted database (`P8_PASSWORD`): required to open one, and
    /// with [`crate::OpenMode::Create`] it makes a new database encrypted.
    pub password: Option<crate::Password>,
    /// Argon2id parameters for a new encrypted database (or a new password).
    pub kdf: crate::KdfParams,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            write_buffer_size: 64 << 20,
            max_background_jobs: 2,
            max_open_files: 1000,
            compression: Compression::Lz4,
            block_cache_size: 128 << 20,
            sync_writes: false,
            password: None,
            kdf: crate::KdfParams::default(),
        }
    }
}
