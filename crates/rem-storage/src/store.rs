//! The store: a RocksDB database with the REM column families, an atomic commit that
//! appends change-log records, and scans that decode values through the codec.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, DBRawIterator, Env,
    Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::{
    crypto, prefix_successor, ColumnFamily, Compression, PlainCodec, Result, StorageError,
    StoreOptions, ValueCodec,
};

/// Format version written to `meta/format_version` when a database is created.
pub const FORMAT_VERSION: u32 = 1;
/// `meta` key of the format version (u32 big-endian), written when a database is created.
pub const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key of the last change-log sequence number (u64 big-endian), written in every
/// commit's batch.
pub const META_LAST_SEQ: &[u8] = b"last_seq";

/// How to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Create the database if it does not exist; open it read-write.
    Create,
    /// Open an existing database read-write; fail with [`StorageError::Missing`] otherwise.
    Existing,
    /// Open an existing database read-only. Does not take the lock, so it works while
    /// another process writes (it sees the state as of opening).
    ReadOnly,
}

/// Size figures of one column family, from RocksDB's estimates.
#[derive(Debug, Clone, Copy, Default)]
pub struct CfStats {
    /// Estimated number of keys.
    pub estimated_keys: u64,
    /// Bytes in SST files.
    pub sst_bytes: u64,
    /// Bytes in memtables.
    pub memtable_bytes: u64,
}

/// A RocksDB database holding the REM column families.
///
/// Invariant: `last_seq` equals the largest change-log sequence number committed, and
/// commits are serialised by `commit_lock`, so change-log order is commit order.
pub struct Store {
    db: DB,
    // Kept alive for in-memory stores: the database's files live in this environment.
    _env: Option<Env>,
    codec: Arc<dyn ValueCodec>,
    path: PathBuf,
    read_only: bool,
    in_memory: bool,
    sync_writes: bool,
    commit_lock: Mutex<()>,
    last_seq: AtomicU64,
    /// With `sync_writes`: every change up to this one is fsynced.
    durable_seq: AtomicU64,
    /// Held by the one thread fsyncing the WAL for a group of deferred commits.
    sync_lock: Mutex<()>,
    /// The last committed sequence number, for tasks waiting on new commits.
    commits: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("in_memory", &self.in_memory)
            .finish()
    }
}

impl Store {
    /// Opens (or creates, per `mode`) the database at `path`.
    ///
    /// With `options.password`, a new database is created encrypted (its `ENCRYPTION`
    /// header is written first) and an existing one must be encrypted with that
    /// password. The password is checked before RocksDB opens anything, so a wrong or
    /// missing one changes no file.
    pub fn open(path: &Path, mode: OpenMode, options: &StoreOptions) -> Result<Store> {
        let codec = Self::codec_for(path, mode, options)?;
        Self::open_with_codec(path, mode, options, codec)
    }

    fn codec_for(
        path: &Path,
        mode: OpenMode,
        options: &StoreOptions,
    ) -> Result<Arc<dyn ValueCodec>> {
        let exists = path.join("CURRENT").is_file();
        let header = if path.is_dir() {
            crypto::read_header(path)?
        } else {
            None
        };
        // A header is never removed or replaced by opening: without `CURRENT` it may be a
        // creation that stopped before RocksDB made its files (the same password then
        // finishes it) or a damaged database whose only key it holds.
        match (&options.password, header) {
            (None, None) => Ok(Arc::new(PlainCodec)),
            (None, Some(_)) => Err(StorageError::PasswordRequired {
                path: path.to_path_buf(),
            }),
            (Some(pw), Some(header)) => Ok(Arc::new(crypto::open_key(path, &header, pw)?)),
            (Some(_), None) if exists => Err(StorageError::NotEncrypted {
                path: path.to_path_buf(),
            }),
            (Some(pw), None) => {
                if mode != OpenMode::Create {
                    return Err(StorageError::Missing {
                        path: path.to_path_buf(),
                    });
                }
                options.kdf.check()?;
                create_private_dir(path)?;
                Ok(Arc::new(crypto::create_key(path, pw, options.kdf)?))
            }
        }
    }

    /// Opens the database at `path`, passing every value through `codec`.
    pub fn open_with_codec(
        path: &Path,
        mode: OpenMode,
        options: &StoreOptions,
        codec: Arc<dyn ValueCodec>,
    ) -> Result<Store> {
        let exists = path.join("CURRENT").is_file();
        if !exists && mode != OpenMode::Create {
            return Err(StorageError::Missing {
                path: path.to_path_buf(),
            });
        }
        if mode == OpenMode::Create && !exists {
            create_private_dir(path)?;
        }
        if !codec.is_encrypted() && path.join(crypto::HEADER_FILE).is_file() {
            return Err(StorageError::PasswordRequired {
                path: path.to_path_buf(),
            });
        }
        // Sealed values do not compress: they are compressed before sealing instead.
        let compression = if codec.is_encrypted() {
            Compression::None
        } else {
            options.compression
        };
        let (db_opts, cfs) = rocks_options(options, compression, mode == OpenMode::Create, None);
        let db = if mode == OpenMode::ReadOnly {
            DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false)
        } else {
            DB::open_cf_descriptors(&db_opts, path, cfs)
        }
        .map_err(|e| StorageError::from_rocksdb(e, path))?;
        Self::finish_open(db, None, codec, path.to_path_buf(), mode, options, false)
    }

    /// Creates an empty database that lives in memory only (RocksDB's memory environment).
    /// Everything is lost when the store is dropped.
    pub fn open_in_memory(options: &StoreOptions) -> Result<Store> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let env = Env::mem_env()?;
        let path = PathBuf::from(format!(
            "/rem-in-memory/{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let (db_opts, cfs) = rocks_options(options, options.compression, true, Some(&env));
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs)?;
        Self::finish_open(
            db,
            Some(env),
            Arc::new(PlainCodec),
            path,
            OpenMode::Create,
            options,
            true,
        )
    }

    fn finish_open(
        db: DB,
        env: Option<Env>,
        codec: Arc<dyn ValueCodec>,
        path: PathBuf,
        mode: OpenMode,
        options: &StoreOptions,
        in_memory: bool,
    ) -> Result<Store> {
        let mut store = Store {
            db,
            _env: env,
            codec,
            path,
            read_only: mode == OpenMode::ReadOnly,
            in_memory,
            sync_writes: options.sync_writes,
            commit_lock: Mutex::new(()),
            last_seq: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            commits: tokio::sync::watch::Sender::new(0),
        };
        match store.get(ColumnFamily::Meta, META_FORMAT_VERSION)? {
            Some(v) => {
                let version = u32::from_be_bytes(fixed(&v, "format version")?);
                if version != FORMAT_VERSION {
                    return Err(StorageError::Corrupt(format!(
                        "database format version {version} is not supported (expected {FORMAT_VERSION})"
                    )));
                }
            }
            None if store.read_only => {
                return Err(StorageError::Corrupt(format!(
                    "{} is not a REM database (no format version)",
                    store.path.display()
                )))
            }
            None => {
                if store.any_key(ColumnFamily::Entities)? {
                    return Err(StorageError::Corrupt(format!(
                        "{} is not a REM database (no format version)",
                        store.path.display()
                    )));
                }
                let mut batch = store.batch();
                batch.put(
                    ColumnFamily::Meta,
                    META_FORMAT_VERSION,
                    &FORMAT_VERSION.to_be_bytes(),
                )?;
                store.write_raw(batch)?;
            }
        }
        let last = match store.get(ColumnFamily::Meta, META_LAST_SEQ)? {
            Some(v) => u64::from_be_bytes(fixed(&v, "last sequence")?),
            None => 0,
        };
        store.last_seq = AtomicU64::new(last);
        // What the database holds when it opens is what it has.
        store.durable_seq = AtomicU64::new(last);
        store.commits.send_replace(last);
        Ok(store)
    }

    /// The database directory (a virtual path for in-memory stores).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when opened with [`OpenMode::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// True when values are encrypted at rest (the database has an `ENCRYPTION` header).
    pub fn is_encrypted(&self) -> bool {
        self.codec.is_encrypted()
    }

    /// The value codec, for files written beside the database
    /// ([`ValueCodec::seal_file`]).
    pub fn codec(&self) -> &dyn ValueCodec {
        self.codec.as_ref()
    }

    /// True for stores made by [`Store::open_in_memory`].
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// The sequence number of the last committed change-log record (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// The last sequence number whose change is durable: [`Store::last_seq`] without
    /// `sync_writes`, the last fsynced one with it.
    pub fn durable_seq(&self) -> u64 {
        if self.sync_writes {
            self.durable_seq.load(Ordering::Acquire)
        } else {
            self.last_seq()
        }
    }

    /// Starts an empty write batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: WriteBatch::default(),
            puts: 0,
        }
    }

    /// Commits `batch` atomically together with one change-log record per entry of
    /// `changes`, numbered consecutively after the last committed sequence number.
    ///
    /// Returns the sequence number of the last record (or the current one when `changes`
    /// is empty). Either the whole batch, its change-log records and the new last
    /// sequence number are durable, or none of them is.
    pub fn commit(&self, batch: Batch<'_>, changes: &[Vec<u8>]) -> Result<u64> {
        let seq = self.commit_deferred(batch, changes)?;
        self.make_durable(seq)?;
        Ok(seq)
    }

    /// [`Store::commit`] without waiting for durability: the batch is written and
    /// visible, and with `sync_writes` it is durable only once [`Store::make_durable`]
    /// returns for its sequence number. Callers acknowledge after that, and call it
    /// after releasing their own locks, so that concurrent writers share one fsync
    /// (group commit). Without `sync_writes` a commit is as durable as it gets at once.
    pub fn commit_deferred(&self, mut batch: Batch<'_>, changes: &[Vec<u8>]) -> Result<u64> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        // Sequence assignment and the write happen under one lock so that the order of
        // sequence numbers is the order in which batches become visible.
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut seq = self.last_seq.load(Ordering::Acquire);
        for change in changes {
            seq += 1;
            batch.put(ColumnFamily::ChangeLog, &seq.to_be_bytes(), change)?;
        }
        batch.put(ColumnFamily::Meta, META_LAST_SEQ, &seq.to_be_bytes())?;
        self.write_raw_with(batch, false)?;
        self.last_seq.store(seq, Ordering::Release);
        if !self.sync_writes {
            self.announce(seq);
        }
        Ok(seq)
    }

    /// Returns once every change up to `seq` is fsynced (at once without
    /// `sync_writes`). One caller fsyncs the WAL for everything written so far; the
    /// others waiting meanwhile find their changes covered and return without an fsync
    /// of their own. Replicas are told of changes once they are durable.
    pub fn make_durable(&self, seq: u64) -> Result<()> {
        if !self.sync_writes || self.durable_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _leader = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.durable_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        // Everything written before this point is in the WAL the fsync covers.
        let upto = self.last_seq.load(Ordering::Acquire);
        self.db.flush_wal(true)?;
        self.durable_seq.fetch_max(upto, Ordering::AcqRel);
        self.announce(upto);
        Ok(())
    }

    /// Tells waiting tasks of commits up to `seq` (never moving backwards).
    fn announce(&self, seq: u64) {
        self.commits.send_if_modified(|v| {
            if seq > *v {
                *v = seq;
                true
            } else {
                false
            }
        });
    }

    /// A receiver that sees the last committed sequence number change (async tasks wait
    /// on it instead of polling `last_seq`).
    pub fn watch_commits(&self) -> crate::CommitReceiver {
        self.commits.subscribe()
    }

    /// Empties the change log and restarts numbering at 1, in one batch with `batch`
    /// (a new replica drops the records of its own `rem init` before it takes the
    /// primary's log with the primary's numbers).
    pub fn reset_change_log(&self, mut batch: Batch<'_>) -> Result<()> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        batch.delete_range(
            ColumnFamily::ChangeLog,
            &0u64.to_be_bytes(),
            &u64::MAX.to_be_bytes(),
        )?;
        batch.put(ColumnFamily::Meta, META_LAST_SEQ, &0u64.to_be_bytes())?;
        self.write_raw(batch)?;
        self.last_seq.store(0, Ordering::Release);
        self.durable_seq.store(0, Ordering::Release);
        self.commits.send_replace(0);
        Ok(())
    }

    /// Removes change-log records with sequence numbers below `before` (retention).
    pub fn truncate_change_log(&self, before: u64) -> Result<()> {
        if self.read_only {
            return Err(StorageError::ReadOnly);
        }
        let mut batch = self.batch();
        batch.delete_range(
            ColumnFamily::ChangeLog,
            &0u64.to_be_bytes(),
            &before.to_be_bytes(),
        )?;
        self.write_raw(batch)
    }

    /// Writes a consistent point-in-time copy of the database into `dir`, which must
    /// not exist yet (a RocksDB checkpoint: SST files are hard-linked when `dir` is on
    /// the same file system, so it is cheap and leaves the live database untouched).
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        if self.in_memory {
            return Err(StorageError::Backend(
                "an in-memory database has no files to checkpoint".to_string(),
            ));
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)?
            .create_checkpoint(dir)
            .map_err(|e| StorageError::from_rocksdb(e, dir))?;
        // The copy opens with the same password: it carries the wrapped key.
        if self.is_encrypted() {
            let header = self.path.join(crypto::HEADER_FILE);
            std::fs::copy(&header, dir.join(crypto::HEADER_FILE)).map_err(|e| {
                StorageError::Backend(format!("cannot copy {}: {e}", header.display()))
            })?;
        }
        Ok(())
    }

    fn write_raw(&self, batch: Batch<'_>) -> Result<()> {
        self.write_raw_with(batch, self.sync_writes)
    }

    fn write_raw_with(&self, batch: Batch<'_>, sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch.inner, &wo)?;
        Ok(())
    }

    fn cf(&self, cf: ColumnFamily) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or(StorageError::MissingColumnFamily(cf.name()))
    }

    /// Reads and decodes one value.
    pub fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.db.get_pinned_cf(self.cf(cf)?, key)? {
            Some(stored) => Ok(Some(self.codec.decode(cf, key, &stored)?)),
            None => Ok(None),
        }
    }

    /// True when `key` exists in `cf`, without decoding its value.
    pub fn contains(&self, cf: ColumnFamily, key: &[u8]) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(cf)?, key)?.is_some())
    }

    /// Reads several values of one column family in one call (RocksDB's batched MultiGet).
    pub fn multi_get<K: AsRef<[u8]>>(
        &self,
        cf: ColumnFamily,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let handle = self.cf(cf)?;
        self.db
            .batched_multi_get_cf(handle, keys.iter().map(|k| k.as_ref()), false)
            .into_iter()
            .zip(keys)
            .map(|(r, key)| match r? {
                Some(stored) => Ok(Some(self.codec.decode(cf, key.as_ref(), &stored)?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Iterates over every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: ColumnFamily, prefix: &[u8]) -> Result<ScanIter<'_>> {
        self.scan_range(cf, prefix, prefix_successor(prefix).as_deref())
    }

    /// Iterates over entries with `start <= key < end` (`end = None`: to the last key).
    pub fn scan_range(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<ScanIter<'_>> {
        let mut ro = ReadOptions::default();
        if let Some(end) = end {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        iter.seek(start);
        Ok(ScanIter {
            iter,
            cf,
            codec: self.codec.as_ref(),
            started: false,
        })
    }

    /// One iterator over `cf` for many short prefix scans (graph steps): creating an
    /// iterator costs more than seeking one.
    pub fn raw_scan(&self, cf: ColumnFamily) -> Result<RawScan<'_>> {
        Ok(RawScan {
            iter: self.db.raw_iterator_cf(self.cf(cf)?),
            prefix: Vec::new(),
            started: false,
            cf,
            codec: self.codec.as_ref(),
        })
    }

    fn any_key(&self, cf: ColumnFamily) -> Result<bool> {
        let mut iter = self.db.raw_iterator_cf(self.cf(cf)?);
        iter.seek_to_first();
        iter.status()?;
        Ok(iter.valid())
    }

    /// RocksDB's size estimates for a column family.
    pub fn cf_stats(&self, cf: ColumnFamily) -> Result<CfStats> {
        let handle = self.cf(cf)?;
        let prop = |name: &str| -> Result<u64> {
            Ok(self.db.property_int_value_cf(handle, name)?.unwrap_or(0))
        };
        Ok(CfStats {
            estimated_keys: prop("rocksdb.estimate-num-keys")?,
            sst_bytes: prop("rocksdb.total-sst-files-size")?,
            memtable_bytes: prop("rocksdb.cur-size-all-mem-tables")?,
        })
    }

    /// Flushes all memtables to SST files.
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        for cf in ColumnFamily::ALL {
            self.db.flush_cf(self.cf(cf)?)?;
        }
        Ok(())
    }
}

/// An atomic group of writes, committed with [`Store::commit`].
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
    puts: usize,
}

impl Batch<'_> {
    /// Puts `value` (encoded by the store's codec) under `key`. Fails with
    /// [`StorageError::MissingColumnFamily`] when the database has no family `cf`; the
    /// batch is then unchanged.
    pub fn put(&mut self, cf: ColumnFamily, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = self.store.cf(cf)?;
        let stored = self.store.codec.encode(cf, key, value)?;
        self.inner.put_cf(handle, key, stored);
        self.puts += 1;
        Ok(())
    }

    /// Deletes `key`. Fails as [`Batch::put`] does for a missing family.
    pub fn delete(&mut self, cf: ColumnFamily, key: &[u8]) -> Result<()> {
        let handle = self.store.cf(cf)?;
        self.inner.delete_cf(handle, key);
        self.puts += 1;
        Ok(())
    }

    /// Deletes every key in `[start, end)`. Fails as [`Batch::put`] does for a missing
    /// family.
    pub fn delete_range(&mut self, cf: ColumnFamily, start: &[u8], end: &[u8]) -> Result<()> {
        let handle = self.store.cf(cf)?;
        self.inner.delete_range_cf(handle, start, end);
        self.puts += 1;
        Ok(())
    }

    /// Number of puts and deletes in the batch.
    pub fn len(&self) -> usize {
        self.puts
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.puts == 0
    }
}

/// An iterator over `(key, decoded value)` pairs of a scan.
pub struct ScanIter<'a> {
    iter: DBRawIterator<'a>,
    cf: ColumnFamily,
    codec: &'a dyn ValueCodec,
    started: bool,
}

impl Iterator for ScanIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.started {
            self.iter.next();
        }
        self.started = true;
        if !self.iter.valid() {
            return match self.iter.status() {
                Ok(()) => None,
                Err(e) => Some(Err(e.into())),
            };
        }
        let key = self.iter.key()?.to_vec();
        let value = match self
            .iter
            .value()
            .map(|v| self.codec.decode(self.cf, &key, v))
        {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Some(Err(e)),
            None => return None,
        };
        Some(Ok((key, value)))
    }
}

impl ScanIter<'_> {
    /// Advances to the next key without decoding its value (index scans whose values
    /// are empty). Returns `None` at the end.
    pub fn next_key(&mut self) -> Option<Result<Vec<u8>>> {
        if self.started {
            self.iter.next();
        }
        self.started = true;
        if !self.iter.valid() {
            return self.iter.status().err().map(|e| Err(e.into()));
        }
        self.iter.key().map(|k| Ok(k.to_vec()))
    }
}

/// A reusable iterator for prefix scans of keys (see [`Store::raw_scan`]).
pub struct RawScan<'a> {
    iter: DBRawIterator<'a>,
    prefix: Vec<u8>,
    started: bool,
    cf: ColumnFamily,
    codec: &'a dyn ValueCodec,
}

impl RawScan<'_> {
    /// Positions the scan at the first key starting with `prefix`.
    pub fn seek_prefix(&mut self, prefix: &[u8]) {
        self.prefix.clear();
        self.prefix.extend_from_slice(prefix);
        self.iter.seek(prefix);
        self.started = false;
    }

    /// The next key with the prefix, or `None` when there are no more.
    pub fn next_key(&mut self) -> Result<Option<Vec<u8>>> {
        if self.started {
            self.iter.next();
        }
        self.started = true;
        match self.iter.key() {
            Some(k) if k.starts_with(&self.prefix) => Ok(Some(k.to_vec())),
            Some(_) => Ok(None),
            None => {
                self.iter.status()?;
                Ok(None)
            }
        }
    }

    /// The next key with the prefix and its value (decoded by the store's codec), or
    /// `None` when there are no more.
    pub fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(key) = self.next_key()? else {
            return Ok(None);
        };
        let stored = self.iter.value().unwrap_or_default();
        let value = self.codec.decode(self.cf, &key, stored)?;
        Ok(Some((key, value)))
    }
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| {
        StorageError::Corrupt(format!("{what} has {} bytes, expected {N}", bytes.len()))
    })
}

fn rocks_options(
    options: &StoreOptions,
    compression: Compression,
    create: bool,
    env: Option<&Env>,
) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(create);
    db_opts.create_missing_column_families(create);
    db_opts.set_max_background_jobs(options.max_background_jobs);
    db_opts.set_max_open_files(options.max_open_files);
    // RocksDB's own info log: warnings only, a few files, not one per open forever.
    db_opts.set_log_level(rocksdb::LogLevel::Warn);
    db_opts.set_keep_log_file_num(3);
    if let Some(env) = env {
        db_opts.set_env(env);
    }
    let cache = Cache::new_lru_cache(options.block_cache_size);
    let compression = match compression {
        Compression::None => DBCompressionType::None,
        Compression::Lz4 => DBCompressionType::Lz4,
        Compression::Zstd => DBCompressionType::Zstd,
        Compression::Snappy => DBCompressionType::Snappy,
    };
    let cfs = ColumnFamily::ALL
        .iter()
        .map(|cf| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Whole-key bloom filters make point gets of absent keys (new entities on
            // insert) skip SST files.
            table.set_bloom_filter(10.0, false);
            table.set_format_version(5);
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_compression_type(compression);
            cf_opts.set_write_buffer_size(options.write_buffer_size);
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        })
        .collect();
    (db_opts, cfs)
}

/// Creates `path` (and its parents) and makes it readable by its owner only (0700): a
/// new database's files are then out of other local users' reach whatever their own
/// modes (RocksDB creates them under the process umask).
pub fn create_private_dir(path: &Path) -> Result<()> {
    let fail =
        |e: std::io::Error| StorageError::Backend(format!("cannot create {}: {e}", path.display()));
    std::fs::create_dir_all(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypted_options(password: &str) -> StoreOptions {
        StoreOptions {
            password: Some(crate::Password::new(password)),
            kdf: crate::KdfParams {
                m_kib: 7 * 1024,
                t: 5,
                p: 1,
            },
            ..StoreOptions::default()
        }
    }

    #[test]
    fn an_encrypted_store_needs_its_password_and_refuses_moved_values() {
        let dir = tempfile::tempdir().unwrap();
        let opts = encrypted_options("pw");
        {
            let store = Store::open(dir.path(), OpenMode::Create, &opts).unwrap();
            assert!(store.is_encrypted());
            let mut b = store.batch();
            b.put(ColumnFamily::Entities, b"k1", b"value one").unwrap();
            b.put(ColumnFamily::Entities, b"k2", b"value two").unwrap();
            b.put(ColumnFamily::KeyIndex, b"i1", b"").unwrap();
            store.commit(b, &[b"change".to_vec()]).unwrap();
            // What someone with the files can do: put one key's stored bytes under another.
            let cf = store.cf(ColumnFamily::Entities).unwrap();
            let raw = store.db.get_cf(cf, b"k1").unwrap().unwrap();
            assert!(!raw.windows(5).any(|w| w == b"value"));
            store.db.put_cf(cf, b"k2", &raw).unwrap();
            let err = store.get(ColumnFamily::Entities, b"k2").unwrap_err();
            assert!(matches!(err, StorageError::Integrity(_)), "{err}");
            assert_eq!(
                store.get(ColumnFamily::Entities, b"k1").unwrap().unwrap(),
                b"value one"
            );
            assert_eq!(
                store.get(ColumnFamily::KeyIndex, b"i1").unwrap().unwrap(),
                b""
            );
            let scanned: Vec<_> = store
                .scan_prefix(ColumnFamily::Entities, b"k")
                .unwrap()
                .collect();
            assert!(
                scanned[1].is_err(),
                "a scan must refuse the moved value too"
            );
        }
        let err =
            Store::open(dir.path(), OpenMode::Existing, &StoreOptions::default()).unwrap_err();
        assert!(
            matches!(err, StorageError::PasswordRequired { .. }),
            "{err}"
        );
        let err =
            Store::open(dir.path(), OpenMode::ReadOnly, &encrypted_options("no")).unwrap_err();
        assert!(matches!(err, StorageError::WrongPassword { .. }), "{err}");
        let store = Store::open(dir.path(), OpenMode::ReadOnly, &opts).unwrap();
        assert_eq!(store.last_seq(), 1);
        drop(store);
        // A checkpoint carries the header: it opens with the same password.
        let store = Store::open(dir.path(), OpenMode::Existing, &opts).unwrap();
        let copies = tempfile::tempdir().unwrap();
        let copy = copies.path().join("copy");
        store.checkpoint(&copy).unwrap();
        let copy = Store::open(&copy, OpenMode::ReadOnly, &opts).unwrap();
        assert_eq!(
            copy.get(ColumnFamily::Entities, b"k1").unwrap().unwrap(),
            b"value one"
        );
        // A password for a plain database is refused.
        let plain = tempfile::tempdir().unwrap();
        drop(Store::open(plain.path(), OpenMode::Create, &StoreOptions::default()).unwrap());
        let err = Store::open(plain.path(), OpenMode::Existing, &opts).unwrap_err();
        assert!(matches!(err, StorageError::NotEncrypted { .. }), "{err}");
    }

    #[test]
    fn commit_numbers_changes_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        {
            let store = Store::open(dir.path(), OpenMode::Create, &opts).unwrap();
            let mut b = store.batch();
            b.put(ColumnFamily::Entities, b"k1", b"v1").unwrap();
            assert_eq!(
                store.commit(b, &[b"c1".to_vec(), b"c2".to_vec()]).unwrap(),
                2
            );
            let b = store.batch();
            assert_eq!(store.commit(b, &[b"c3".to_vec()]).unwrap(), 3);
        }
        let store = Store::open(dir.path(), OpenMode::Existing, &opts).unwrap();
        assert_eq!(store.last_seq(), 3);
        assert_eq!(
            store.get(ColumnFamily::Entities, b"k1").unwrap().unwrap(),
            b"v1"
        );
        let log: Vec<_> = store
            .scan_prefix(ColumnFamily::ChangeLog, b"")
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(log.len(), 3);
        assert_eq!(log[2].0, 3u64.to_be_bytes());
        assert_eq!(log[2].1, b"c3");
    }

    #[test]
    fn second_open_is_locked_and_read_only_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        let _first = Store::open(dir.path(), OpenMode::Create, &opts).unwrap();
        let err = Store::open(dir.path(), OpenMode::Existing, &opts).unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err}");
        let ro = Store::open(dir.path(), OpenMode::ReadOnly, &opts).unwrap();
        assert!(matches!(
            ro.commit(ro.batch(), &[]),
            Err(StorageError::ReadOnly)
        ));
    }

    #[test]
    fn missing_database_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(
            &dir.path().join("nope"),
            OpenMode::Existing,
            &StoreOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, StorageError::Missing { .. }));
    }

    #[test]
    fn in_memory_prefix_scan() {
        let store = Store::open_in_memory(&StoreOptions::default()).unwrap();
        let mut b = store.batch();
        for k in [&b"a1"[..], b"a2", b"b1"] {
            b.put(ColumnFamily::KeyIndex, k, b"").unwrap();
        }
        store.commit(b, &[]).unwrap();
        let keys: Vec<_> = store
            .scan_prefix(ColumnFamily::KeyIndex, b"a")
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys, vec![b"a1".to_vec(), b"a2".to_vec()]);
    }

    #[test]
    fn staging_into_a_missing_column_family_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(dir.path(), OpenMode::Create, &StoreOptions::default()).unwrap();
        store.db.drop_cf(ColumnFamily::Trigrams.name()).unwrap();
        let missing =
            |r: Result<()>| matches!(r, Err(StorageError::MissingColumnFamily("trigrams")));
        let mut b = store.batch();
        assert!(missing(b.put(ColumnFamily::Trigrams, b"k", b"v")));
        assert!(missing(b.delete(ColumnFamily::Trigrams, b"k")));
        assert!(missing(b.delete_range(ColumnFamily::Trigrams, b"a", b"z")));
        assert!(b.is_empty());
        // Other families are unaffected, and reads of the missing one fail the same way.
        b.put(ColumnFamily::Entities, b"k", b"v").unwrap();
        assert_eq!(b.len(), 1);
        store.commit(b, &[]).unwrap();
        assert_eq!(
            store.get(ColumnFamily::Entities, b"k").unwrap().unwrap(),
            b"v"
        );
        assert!(matches!(
            store.get(ColumnFamily::Trigrams, b"k"),
            Err(StorageError::MissingColumnFamily("trigrams"))
        ));
        let err = StorageError::MissingColumnFamily("trigrams").to_string();
        assert_eq!(
            err,
            "column family trigrams does not exist in this database"
        );
    }
}
