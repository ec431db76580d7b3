//! The loaded vector indexes of a database: at most one per tenant × table × embedding
//! column, over the vectors stored in the `embeddings` column family (the truth).
//!
//! An index is loaded from its files under `<db>/vectors/` and brought up to date from
//! the change log after its watermark ([`crate::change::catch_up`]): the stored vector
//! of every entity a later record touched becomes the index's. It is built from the
//! stored vectors instead when it has no usable files, is ahead of the log (another
//! database's files), or the log no longer reaches back to its watermark. After each
//! commit the write path refreshes the loaded indexes of the table it wrote; indexes
//! are saved with the change-log position they reflect.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use rem_storage::{ColumnFamily, Store};

use crate::change::{catch_up, Change};
use crate::format::trailing_id;
use crate::format::vectors::{embedding_key, embedding_prefix, StoredEmbedding};
use crate::vector::{index_base, VectorIndex};
use crate::{EmbeddingOptions, EntityId, Error, Result};

/// Vectors read from RocksDB per parallel insert when an index is built.
const BUILD_CHUNK: usize = 8192;

/// A loaded index, shared by searches (read) and the write path (refresh).
pub(crate) type SharedIndex = Arc<RwLock<VectorIndex>>;

/// The vectors an index holds: one embedding column of one table of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IndexKey {
    pub(crate) tenant: String,
    pub(crate) table: String,
    pub(crate) column: String,
}

impl IndexKey {
    pub(crate) fn new(tenant: &str, table: &str, column: &str) -> IndexKey {
        IndexKey {
            tenant: tenant.to_string(),
            table: table.to_string(),
            column: column.to_string(),
        }
    }
}

/// The indexes loaded so far.
#[derive(Default)]
pub(crate) struct VectorIndexes {
    loaded: Mutex<HashMap<IndexKey, SharedIndex>>,
}

impl VectorIndexes {
    /// Every loaded index.
    pub(crate) fn all(&self) -> Vec<(IndexKey, SharedIndex)> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.iter().map(|(k, i)| (k.clone(), i.clone())).collect()
    }

    /// The index of `key` if it is loaded.
    pub(crate) fn loaded(&self, key: &IndexKey) -> Option<SharedIndex> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.get(key).cloned()
    }

    /// The index of `key`, loaded (and caught up) or built first when it is not loaded
    /// yet. The caller holds the database's write lock, so no commit slips between the
    /// watermark and the index becoming visible to writers.
    pub(crate) fn load(
        &self,
        store: &Store,
        options: &EmbeddingOptions,
        key: &IndexKey,
        model: &str,
        dims: usize,
    ) -> Result<SharedIndex> {
        if let Some(i) = self.loaded(key) {
            return Ok(i);
        }
        // An encrypted database seals its index files with the values' codec.
        let base = (!store.is_in_memory())
            .then(|| index_base(store.path(), &key.tenant, &key.table, &key.column));
        let last = store.last_seq();
        let loaded = base
            .as_ref()
            .and_then(|b| VectorIndex::load(b, model, dims, options, store.codec()));
        let index = match loaded {
            Some(mut vi) if vi.watermark <= last => {
                if catch_up_index(store, &mut vi, key, last)? {
                    vi
                } else {
                    build(store, options, key, model, dims)?
                }
            }
            _ => build(store, options, key, model, dims)?,
        };
        let shared = Arc::new(RwLock::new(index));
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), shared.clone());
        Ok(shared)
    }

    /// After a commit: brings the loaded indexes of `tenant`'s `table` in line with the
    /// stored vectors of `ids` (the caller still holds the write lock).
    pub(crate) fn refresh(
        &self,
        store: &Store,
        tenant: &str,
        table: &str,
        ids: &[EntityId],
    ) -> Result<()> {
        let loaded: Vec<_> = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| k.tenant == tenant && k.table == table)
            .map(|(k, index)| (k.clone(), index.clone()))
            .collect();
        for (key, index) in loaded {
            let mut vi = index.write().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                refresh_vector(store, &mut vi, &key, id)?;
            }
        }
        Ok(())
    }

    /// Saves every loaded index with the store's last sequence number as its watermark
    /// (nothing for in-memory and read-only stores). The caller holds the write lock,
    /// or is the last handle.
    pub(crate) fn save_all(&self, store: &Store) -> Result<()> {
        if store.is_in_memory() || store.is_read_only() {
            return Ok(());
        }
        let last = store.last_seq();
        let loaded: Vec<_> = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, index) in loaded {
            let mut vi = index.write().unwrap_or_else(|p| p.into_inner());
            vi.watermark = last;
            vi.save(
                &index_base(store.path(), &key.tenant, &key.table, &key.column),
                store.codec(),
            )?;
        }
        Ok(())
    }
}

/// Builds an index from the stored vectors of a column.
fn build(
    store: &Store,
    options: &EmbeddingOptions,
    key: &IndexKey,
    model: &str,
    dims: usize,
) -> Result<VectorIndex> {
    let mut vi = VectorIndex::new(dims, model, options)?;
    let prefix = embedding_prefix(&key.tenant, &key.table, &key.column);
    // Read in chunks so that a large column never sits in memory twice.
    let mut chunk = Vec::with_capacity(BUILD_CHUNK);
    for item in store.scan_prefix(ColumnFamily::Embeddings, &prefix)? {
        let (k, v) = item?;
        let id = trailing_id(&k).ok_or_else(|| Error::Embedding("bad embedding key".into()))?;
        chunk.push((id, StoredEmbedding::decode(&v)?.vector));
        if chunk.len() == BUILD_CHUNK {
            vi.upsert_many(&chunk)?;
            chunk.clear();
        }
    }
    vi.upsert_many(&chunk)?;
    vi.watermark = store.last_seq();
    Ok(vi)
}

/// Applies every change-log record after the index's watermark: the stored vector of
/// each touched entity (or its absence) becomes the index's. False when the log no
/// longer reaches back to the watermark (the index must be rebuilt).
pub(crate) fn catch_up_index(
    store: &Store,
    vi: &mut VectorIndex,
    key: &IndexKey,
    last: u64,
) -> Result<bool> {
    let mut touched = HashSet::new();
    let reached = catch_up(store, vi.watermark, last, |change| {
        if let Change::Put { tenant, entity } = change {
            if tenant == key.tenant && entity.table == key.table {
                touched.insert(entity.id);
            }
        }
        Ok(())
    })?;
    if reached.is_none() {
        return Ok(false);
    }
    for id in touched {
        refresh_vector(store, vi, key, &id)?;
    }
    vi.watermark = last;
    Ok(true)
}

/// Makes the index entry of `id` equal to the stored vector (or removes it).
fn refresh_vector(
    store: &Store,
    vi: &mut VectorIndex,
    key: &IndexKey,
    id: &EntityId,
) -> Result<()> {
    let stored = embedding_key(&key.tenant, &key.table, &key.column, id);
    match store.get(ColumnFamily::Embeddings, &stored)? {
        Some(v) => vi.upsert(*id, &StoredEmbedding::decode(&v)?.vector),
        None => vi.remove(id),
    }
}
