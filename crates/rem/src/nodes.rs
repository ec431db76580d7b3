//! The node directory: every live entity of a tenant with its table, in memory, so
//! graph steps check liveness with a hash lookup instead of two RocksDB reads per
//! neighbour (SPEC §5.3; BENCHMARKS.md "Graph").
//!
//! A tenant's directory is built on its first graph read by one scan of that tenant's
//! entities (value headers only) and kept current from the change log: before each
//! use, the records after its sequence number are applied ([`crate::change::catch_up`]).
//! Every write path — local writes, replication — appends change records, so nothing
//! can bypass it. When the log no longer holds the records it needs (retention), it is
//! rebuilt. Memory: about 40 bytes per live entity.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rem_storage::{ColumnFamily, Store};

use crate::change::{catch_up, Change};
use crate::format::entities::{is_deleted_encoded, parse_entity_key_in_tenant};
use crate::format::tenant_prefix;
use crate::{EntityId, Result};

/// The node directories of every tenant that made a graph read.
#[derive(Debug, Default)]
pub(crate) struct NodeDirectory {
    tenants: RwLock<HashMap<String, TenantNodes>>,
}

impl NodeDirectory {
    /// Runs `f` on the live entities of `tenant`, brought up to the last commit of
    /// `store` (built first when this is the tenant's first use).
    pub(crate) fn with<R>(
        &self,
        store: &Store,
        tenant: &str,
        f: impl FnOnce(&TenantNodes) -> R,
    ) -> Result<R> {
        let last = store.last_seq();
        {
            let dirs = self.tenants.read().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = dirs.get(tenant) {
                if d.seq >= last {
                    return Ok(f(d));
                }
            }
        }
        let mut dirs = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        let current = match dirs.remove(tenant) {
            Some(mut d) => {
                if d.catch_up(store, tenant, last)? {
                    d
                } else {
                    // The log was truncated past it.
                    TenantNodes::build(store, tenant, last)?
                }
            }
            // The sequence is read before the scan, so later commits are applied
            // again on the next use.
            None => TenantNodes::build(store, tenant, last)?,
        };
        let out = f(&current);
        dirs.insert(tenant.to_string(), current);
        Ok(out)
    }
}

/// Live entities of one tenant and their tables, as of change-log sequence `seq`.
#[derive(Debug, Default)]
pub(crate) struct TenantNodes {
    seq: u64,
    tables: Vec<Arc<str>>,
    table_index: HashMap<Arc<str>, u32>,
    live: HashMap<EntityId, u32>,
}

impl TenantNodes {
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
    fn build(store: &Store, tenant: &str, seq: u64) -> Result<TenantNodes> {
        let mut dir = TenantNodes {
            seq,
            ..TenantNodes::default()
        };
        let prefix = tenant_prefix(tenant);
        for item in store.scan_prefix(ColumnFamily::Entities, &prefix)? {
            let (k, v) = item?;
            let (table, id) = parse_entity_key_in_tenant(&k[prefix.len()..])?;
            dir.set(id, &table, !is_deleted_encoded(&v)?);
        }
        Ok(dir)
    }

    /// Applies the change log up to `last`; false when a record it needs is gone.
    fn catch_up(&mut self, store: &Store, tenant: &str, last: u64) -> Result<bool> {
        let reached = catch_up(store, self.seq, last, |change| {
            if let Change::Put { tenant: t, entity } = change {
                if t == tenant {
                    self.set(entity.id, &entity.table, entity.deleted_at.is_none());
                }
            }
            Ok(())
        })?;
        match reached {
            Some(seq) => {
                self.seq = seq;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
