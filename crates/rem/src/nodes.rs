//! The node directory: every live entity of a tenant with its table, in memory, so
//! graph steps check liveness with a hash lookup instead of two RocksDB reads per
//! neighbour (SPEC §5.3; BENCHMARKS.md "Graph").
//!
//! It is built on the first graph read of a tenant by one scan of that tenant's
//! entities (value headers only) and kept current from the change log: before each
//! use, the records after its sequence number are applied (an entity-put record holds
//! the entity's whole state, so applying one twice is harmless). Every write path —
//! local writes, replication — appends change records, so nothing can bypass it. When
//! the log no longer holds the records it needs (retention), it is rebuilt.
//! Memory: about 40 bytes per live entity.

use std::collections::HashMap;
use std::sync::Arc;

use rem_storage::{ColumnFamily, KeyBuf, KeyReader};

use crate::change::{decode_change, Change};
use crate::entity::is_deleted_encoded;
use crate::{Database, EntityId, Error, Result};

/// Change records applied per read of the log while catching up.
const CATCH_UP_BATCH: usize = 4096;

/// Live entities of one tenant and their tables, as of change-log sequence `seq`.
#[derive(Debug, Default)]
pub(crate) struct NodeDirectory {
    seq: u64,
    tables: Vec<Arc<str>>,
    table_index: HashMap<Arc<str>, u32>,
    live: HashMap<EntityId, u32>,
}

impl NodeDirectory {
    /// The table of `id` when it is a live entity.
    pub(crate) fn table(&self, id: &EntityId) -> Option<&Arc<str>> {
        self.live.get(id).map(|&t| &self.tables[t as usize])
    }

    fn set(&mut self, id: EntityId, table: &str, live: bool) {
        if !live {
            self.live.remove(&id);
            return;
        }
        let t = match self.table_index.get(table) {
            Some(&t) => t,
            None => {
                let name: Arc<str> = Arc::from(table);
                self.tables.push(name.clone());
                let t = (self.tables.len() - 1) as u32;
                self.table_index.insert(name, t);
                t
            }
        };
        self.live.insert(id, t);
    }

    /// Scans the tenant's entities (as of at least `seq`).
    fn build(db: &Database, seq: u64) -> Result<NodeDirectory> {
        let mut dir = NodeDirectory {
            seq,
            ..NodeDirectory::default()
        };
        let prefix = KeyBuf::new().str(&db.tenant).into_bytes();
        for item in db.store().scan_prefix(ColumnFamily::Entities, &prefix)? {
            let (k, v) = item?;
            let mut r = KeyReader::new(&k[prefix.len()..]);
            let table = r.str()?;
            let id = EntityId::from_slice(r.rest()).ok_or_else(|| {
                Error::Storage(rem_storage::StorageError::Corrupt("entity key".into()))
            })?;
            dir.set(id, &table, !is_deleted_encoded(&v)?);
        }
        Ok(dir)
    }

    /// Applies the change log up to `last`; false when a record it needs is gone.
    fn catch_up(&mut self, db: &Database, last: u64) -> Result<bool> {
        while self.seq < last {
            let records = db.changes_since(self.seq, CATCH_UP_BATCH)?;
            match records.first() {
                Some((first, _)) if *first == self.seq + 1 => {}
                _ => return Ok(false),
            }
            for (seq, bytes) in records {
                if let Change::Put { tenant, entity } = decode_change(&bytes)? {
                    if tenant == db.tenant {
                        self.set(entity.id, &entity.table, entity.deleted_at.is_none());
                    }
                }
                self.seq = seq;
            }
        }
        Ok(true)
    }
}

impl Database {
    /// Runs `f` on this tenant's node directory, brought up to the last commit.
    pub(crate) fn with_nodes<R>(&self, f: impl FnOnce(&NodeDirectory) -> R) -> Result<R> {
        let last = self.last_seq();
        {
            let dirs = self.inner.nodes.read().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = dirs.get(&self.tenant) {
                if d.seq >= last {
                    return Ok(f(d));
                }
            }
        }
        let mut dirs = self.inner.nodes.write().unwrap_or_else(|p| p.into_inner());
        let current = match dirs.remove(&self.tenant) {
            Some(mut d) => {
                if d.catch_up(self, last)? {
                    d
                } else {
                    // The log was truncated past it.
                    NodeDirectory::build(self, last)?
                }
            }
            // The sequence is read before the scan, so later commits are applied
            // again on the next use.
            None => NodeDirectory::build(self, last)?,
        };
        let out = f(&current);
        dirs.insert(self.tenant.clone(), current);
        Ok(out)
    }
}
