//! Replication in the engine (SPEC §8): the role a database plays, the change records a
//! primary streams (with the stored vectors they need), applying them on a replica,
//! and change-log status and retention.
//!
//! A replica's change log is the primary's: records are applied in order, each
//! commit holding the applied data and the records themselves under the primary's
//! sequence numbers (so the replica's `last_seq` is its watermark, persisted in the
//! same atomic batch as the data, and a promoted replica continues the sequence).
//! An entity record is applied like a local write — the index entries are derived
//! from the entity's old and new state — and its vectors are taken as streamed, so
//! the replica never runs a model while applying.

use std::collections::HashMap;

use rem_storage::{Batch, ColumnFamily};

use crate::change::{decode_change, Change};
use crate::format::changes::{parse_change_key, put_target};
use crate::format::edges::{edge_key, edge_value, reverse_key, reverse_value};
use crate::format::entities::entity_key_bytes;
use crate::format::meta::{META_HISTORY, META_ROLE};
use crate::format::vectors::{column_meta_key, embedding_key, EMBEDDING, EMBEDDING_ALT};
use crate::schema::Schema;
use crate::write::needs_reindex;
use crate::{Database, Entity, EntityId, Error, Result};

pub use crate::format::meta::ReplicationRole;

/// A stored vector sent with an entity record: the `embeddings` value (or `None` when
/// the entity has none in that column) and the column's model metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatedVector {
    /// `embedding` or `embedding_alt`.
    pub column: String,
    /// The column's `{"model", "dims"}` metadata.
    pub meta: Vec<u8>,
    /// The stored embedding (text hash and vector), or `None`.
    pub stored: Option<Vec<u8>>,
}

/// One change-log record as streamed to replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatedChange {
    /// Its sequence number on the primary.
    pub seq: u64,
    /// The change-log record ([`crate::decode_change`]).
    pub record: Vec<u8>,
    /// The entity's stored vectors, for entity records of tables with embeddings.
    pub vectors: Vec<ReplicatedVector>,
}

/// What the change log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStatus {
    /// Last sequence number (0 when nothing was ever written).
    pub last_seq: u64,
    /// Oldest retained sequence number (0 when the log is empty).
    pub first_seq: u64,
    /// Records retained.
    pub entries: u64,
    /// Bytes the change log takes (RocksDB's figures for its column family: files and
    /// memtables, including removed records not yet compacted away).
    pub bytes: u64,
}

/// The log records of a database that only ran `rem init` (and may become a replica).
fn is_builtin_registration(record: &[u8]) -> bool {
    match decode_change(record) {
        Ok(Change::Put { entity, .. }) => {
            entity.table == "schemas"
                && entity.properties.get("category").and_then(|c| c.as_str()) == Some("system")
        }
        _ => false,
    }
}

impl Database {
    /// The replication role recorded in the database.
    pub fn replication_role(&self) -> ReplicationRole {
        self.inner
            .role
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn load_role(store: &rem_storage::Store) -> Result<ReplicationRole> {
        Ok(store
            .get(ColumnFamily::Meta, META_ROLE)?
            .map(|b| ReplicationRole::decode(&b))
            .unwrap_or_default())
    }

    fn store_role(&self, mut batch: Batch<'_>, role: ReplicationRole, reset: bool) -> Result<()> {
        batch.put(ColumnFamily::Meta, META_ROLE, &role.encode())?;
        if reset {
            self.store().reset_change_log(batch)?;
        } else {
            self.store().commit(batch, &[])?;
        }
        *self.inner.role.write().unwrap_or_else(|p| p.into_inner()) = role;
        Ok(())
    }

    /// Records that this database is a primary (`rem serve`).
    pub fn set_primary(&self) -> Result<()> {
        self.check_writable()?;
        if self.replication_role() == ReplicationRole::Primary {
            return Ok(());
        }
        let batch = self.store().batch();
        self.store_role(batch, ReplicationRole::Primary, false)
    }

    /// Makes this database a replica of `primary`. A database that is already a
    /// replica just records the new address; otherwise it must hold nothing but what
    /// `rem init` wrote, whose log records are dropped so the primary's log (with its
    /// sequence numbers) can be applied from 1.
    pub fn become_replica(&self, primary: &str) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if self.is_encrypted() {
            return Err(Error::InvalidInput(
                "this database is encrypted, and replicating into an encrypted database is not supported yet"
                    .into(),
            ));
        }
        let _guard = self.lock_writes();
        let role = ReplicationRole::Replica {
            primary: primary.to_string(),
        };
        if let ReplicationRole::Replica { primary: old } = self.replication_role() {
            if old != primary {
                self.store_role(self.store().batch(), role, false)?;
            }
            return Ok(());
        }
        let mut after = 0;
        loop {
            let records = self.changes_since(after, 4096)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            after = *last;
            if let Some((seq, _)) = records.iter().find(|(_, r)| !is_builtin_registration(r)) {
                return Err(Error::InvalidInput(format!(
                    "this database has its own data (change {seq}); a replica starts from a new database (`rem init` only) — use another --path"
                )));
            }
        }
        self.store_role(self.store().batch(), role, true)
    }

    /// Turns a replica into a primary; its sequence continues from the last applied
    /// change. Returns that sequence number.
    pub fn promote(&self) -> Result<u64> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if !matches!(self.replication_role(), ReplicationRole::Replica { .. }) {
            return Err(Error::InvalidInput(format!(
                "this database is not a replica (it is {}); nothing to promote",
                self.replication_role().mode()
            )));
        }
        // A new history branches here: a replica of the old one that got later changes
        // can no longer follow this database (its Subscribe is refused).
        let old = self.history()?;
        let _guard = self.lock_writes();
        let branched = History {
            id: History::new_id(),
            parent: Some(old.id),
            branch_seq: self.last_seq(),
        };
        let mut batch = self.store().batch();
        batch.put(ColumnFamily::Meta, META_HISTORY, &branched.encode())?;
        self.store_role(batch, ReplicationRole::Primary, false)?;
        Ok(self.last_seq())
    }

    /// The database's history (see [`History`]); made and stored on first use when the
    /// database is writable (a read-only one without a history has an empty id).
    pub fn history(&self) -> Result<History> {
        if let Some(bytes) = self.store().get(ColumnFamily::Meta, META_HISTORY)? {
            if let Some(h) = History::decode(&bytes) {
                return Ok(h);
            }
        }
        if self.is_read_only() {
            return Ok(History::default());
        }
        let _guard = self.lock_writes();
        if let Some(h) = self
            .store()
            .get(ColumnFamily::Meta, META_HISTORY)?
            .and_then(|b| History::decode(&b))
        {
            return Ok(h);
        }
        let h = History {
            id: History::new_id(),
            parent: None,
            branch_seq: 0,
        };
        let mut batch = self.store().batch();
        batch.put(ColumnFamily::Meta, META_HISTORY, &h.encode())?;
        self.store().commit(batch, &[])?;
        Ok(h)
    }

    /// Records the primary's history on a replica whose changes are a prefix of it
    /// (after the primary accepted its Subscribe).
    pub fn adopt_history(&self, history: &History) -> Result<()> {
        if history.id.is_empty() || self.history()? == *history {
            return Ok(());
        }
        let _guard = self.lock_writes();
        let mut batch = self.store().batch();
        batch.put(ColumnFamily::Meta, META_HISTORY, &history.encode())?;
        self.store().commit(batch, &[])?;
        Ok(())
    }

    /// A 16-byte hash of the change record at `seq`, when the log still holds it.
    pub fn change_hash(&self, seq: u64) -> Result<Option<[u8; 16]>> {
        if seq == 0 {
            return Ok(None);
        }
        Ok(self
            .store()
            .get(ColumnFamily::ChangeLog, &seq.to_be_bytes())?
            .map(|record| {
                let mut h = [0u8; 16];
                h.copy_from_slice(&blake3::hash(&record).as_bytes()[..16]);
                h
            }))
    }

    /// A checksum of the database's content — entities and every index (key, field,
    /// trigram, edges both ways, vectors) — as `(column family, entries, hash)`. Two
    /// databases with the same rows (a primary and a caught-up replica) have equal
    /// checksums; the change log and the meta family (roles, settings) are left out.
    pub fn content_checksum(&self) -> Result<Vec<(String, u64, u64)>> {
        use std::hash::Hasher;
        let mut out = Vec::new();
        for cf in ColumnFamily::ALL {
            if matches!(cf, ColumnFamily::ChangeLog | ColumnFamily::Meta) {
                continue;
            }
            // `DefaultHasher::new()` has fixed keys: the same in every process of
            // one build.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            let mut n = 0u64;
            for item in self.store().scan_prefix(cf, &[])? {
                let (k, v) = item?;
                h.write_usize(k.len());
                h.write(&k);
                h.write_usize(v.len());
                h.write(&v);
                n += 1;
            }
            out.push((cf.name().to_string(), n, h.finish()));
        }
        Ok(out)
    }

    /// Sequence range, count and size of the retained change log.
    pub fn log_status(&self) -> Result<LogStatus> {
        // The retained log is contiguous (retention removes a prefix, a replica applies
        // without gaps), so its extent comes from its first key and `last_seq`; the
        // size is RocksDB's for the column family, with no scan of the records.
        let last_seq = self.last_seq();
        let first = self.first_retained_seq()?;
        let (first_seq, entries) = if first <= last_seq {
            (first, last_seq - first + 1)
        } else {
            (0, 0)
        };
        let stats = self.store().cf_stats(ColumnFamily::ChangeLog)?;
        Ok(LogStatus {
            last_seq,
            first_seq,
            entries,
            bytes: stats.sst_bytes + stats.memtable_bytes,
        })
    }

    /// Keeps the newest `keep` change-log records and removes older ones; returns the
    /// oldest retained sequence number afterwards.
    pub fn apply_retention(&self, keep: u64) -> Result<u64> {
        let last = self.last_seq();
        let first_kept = last.saturating_sub(keep).saturating_add(1).max(1);
        if first_kept > 1 {
            self.store().truncate_change_log(first_kept)?;
        }
        Ok(first_kept)
    }

    /// Oldest retained sequence number (`last_seq + 1` when the log is empty).
    pub fn first_retained_seq(&self) -> Result<u64> {
        let first = self
            .store()
            .scan_prefix(ColumnFamily::ChangeLog, &[])?
            .next()
            .transpose()?
            .and_then(|(k, _)| parse_change_key(&k));
        Ok(first.unwrap_or(self.last_seq() + 1))
    }

    /// Up to `max` change records after `after`, with the vectors their entities have
    /// now (a later record of the same entity carries the same or newer vectors, so a
    /// replica that applies them all converges).
    pub fn replication_batch(&self, after: u64, max: usize) -> Result<Vec<ReplicatedChange>> {
        let mut out = Vec::new();
        // Column metadata, read once per (tenant, table, column) of the batch.
        let mut metas: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for (seq, record) in self.changes_since(after, max)? {
            let mut vectors = Vec::new();
            if let Some((tenant, table, id)) = put_target(&record)? {
                for column in [EMBEDDING, EMBEDDING_ALT] {
                    let meta_key = column_meta_key(&tenant, &table, column);
                    let meta = match metas.get(&meta_key) {
                        Some(m) => m.clone(),
                        None => {
                            let m = self.store().get(ColumnFamily::Meta, &meta_key)?;
                            metas.insert(meta_key, m.clone());
                            m
                        }
                    };
                    let Some(meta) = meta else {
                        continue;
                    };
                    let key = embedding_key(&tenant, &table, column, &id);
                    vectors.push(ReplicatedVector {
                        column: column.to_string(),
                        meta,
                        stored: self.store().get(ColumnFamily::Embeddings, &key)?,
                    });
                }
            }
            out.push(ReplicatedChange {
                seq,
                record,
                vectors,
            });
        }
        Ok(out)
    }

    /// A handle on another tenant of the same store, without registering anything.
    fn tenant_handle(&self, tenant: &str) -> Database {
        Database {
            inner: self.inner.clone(),
            tenant: tenant.to_string(),
        }
    }

    /// Applies primary change records in order, in as few atomic batches as possible
    /// (a schema change commits on its own, after what precedes it). The first must
    /// follow this database's last sequence number; returns the new last one.
    pub fn apply_replicated(&self, changes: &[ReplicatedChange]) -> Result<u64> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let _guard = self.lock_writes();
        let mut i = 0;
        while i < changes.len() {
            let mut batch = self.store().batch();
            let mut records = Vec::new();
            let mut pending: HashMap<(String, EntityId), Entity> = HashMap::new();
            let mut touched: HashMap<(String, String), Vec<EntityId>> = HashMap::new();
            let mut schema_changed: Option<(String, String)> = None;
            let mut metas_written: std::collections::HashSet<Vec<u8>> = Default::default();
            let mut expected = self.last_seq() + 1;
            while i < changes.len() {
                let c = &changes[i];
                if c.seq != expected {
                    return Err(Error::Gap {
                        expected,
                        got: c.seq,
                    });
                }
                let change = decode_change(&c.record)?;
                if let Change::Put { entity, .. } = &change {
                    if entity.table == "schemas" && !records.is_empty() {
                        break;
                    }
                }
                match change {
                    Change::Put { tenant, entity } => {
                        let db = self.tenant_handle(&tenant);
                        if entity.table == "schemas" {
                            let doc = serde_json::Value::Object(entity.properties.clone());
                            let new = Schema::from_document(doc)?;
                            match db.schema(&new.name) {
                                Ok(old) if needs_reindex(&old, &new) => {
                                    db.stage_reindex(&mut batch, &old, &new)?
                                }
                                _ => {}
                            }
                            schema_changed = Some((tenant.clone(), new.name.clone()));
                        }
                        let schema = db.schema(&entity.table)?;
                        let slot = (tenant.clone(), entity.id);
                        let old = match pending.get(&slot) {
                            Some(e) => Some(e.clone()),
                            None => self
                                .store()
                                .get(
                                    ColumnFamily::Entities,
                                    &entity_key_bytes(&tenant, &entity.table, &entity.id),
                                )?
                                .map(|b| Entity::decode(&entity.table, &b))
                                .transpose()?,
                        };
                        db.stage_entity(&mut batch, &schema, old.as_ref(), &entity)?;
                        for v in &c.vectors {
                            let meta_key = column_meta_key(&tenant, &entity.table, &v.column);
                            if metas_written.insert(meta_key.clone()) {
                                batch.put(ColumnFamily::Meta, &meta_key, &v.meta)?;
                            }
                            let key = embedding_key(&tenant, &entity.table, &v.column, &entity.id);
                            match (&v.stored, entity.deleted_at) {
                                (Some(bytes), None) => {
                                    batch.put(ColumnFamily::Embeddings, &key, bytes)?
                                }
                                _ => batch.delete(ColumnFamily::Embeddings, &key)?,
                            }
                        }
                        if entity.deleted_at.is_some() {
                            for column in [EMBEDDING, EMBEDDING_ALT] {
                                batch.delete(
                                    ColumnFamily::Embeddings,
                                    &embedding_key(&tenant, &entity.table, column, &entity.id),
                                )?;
                            }
                        }
                        touched
                            .entry((tenant.clone(), entity.table.clone()))
                            .or_default()
                            .push(entity.id);
                        pending.insert(slot, entity);
                    }
                    Change::EdgePut { tenant, edge } => {
                        let codec = self.store().codec();
                        let (ty, dst) = (edge.edge_type.as_str(), edge.dst.as_str());
                        let key = edge_key(codec, &tenant, &edge.src, ty, dst);
                        let value = edge_value(
                            codec,
                            ty,
                            dst,
                            edge.weight,
                            &edge.created_at,
                            true,
                            &edge.properties,
                        );
                        batch.put(ColumnFamily::Edges, &key, &value)?;
                        batch.put(
                            ColumnFamily::EdgesRev,
                            &reverse_key(codec, &tenant, dst, ty, &edge.src),
                            &reverse_value(codec, ty, dst),
                        )?;
                    }
                    Change::EdgeDelete {
                        tenant,
                        src,
                        edge_type,
                        dst,
                    } => {
                        let codec = self.store().codec();
                        batch.delete(
                            ColumnFamily::Edges,
                            &edge_key(codec, &tenant, &src, &edge_type, &dst),
                        )?;
                        batch.delete(
                            ColumnFamily::EdgesRev,
                            &reverse_key(codec, &tenant, &dst, &edge_type, &src),
                        )?;
                    }
                }
                records.push(c.record.clone());
                expected += 1;
                i += 1;
                if schema_changed.is_some() {
                    break;
                }
            }
            self.store().commit(batch, &records)?;
            if let Some((tenant, name)) = schema_changed {
                self.inner.schemas.evict(&tenant, &name);
            }
            for ((tenant, table), ids) in touched {
                self.tenant_handle(&tenant)
                    .refresh_loaded_indexes(&table, &ids)?;
            }
        }
        Ok(self.last_seq())
    }
}

/// The lineage of a database's change log: its id, and for a promoted replica the
/// history it branched from and the last change they share. Two databases with the same
/// id have the same changes up to the shorter one's last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// Random id (32 hex digits); empty when unknown (a read-only database without one).
    pub id: String,
    /// The history this one branched from (at a promotion).
    pub parent: Option<String>,
    /// The last change shared with the parent history.
    pub branch_seq: u64,
}

impl History {
    fn new_id() -> String {
        crate::EntityId::random().0.simple().to_string()
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::json!({"id": self.id, "parent": self.parent, "branch_seq": self.branch_seq})
            .to_string()
            .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<History> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        Some(History {
            id: v["id"].as_str()?.to_string(),
            parent: v["parent"].as_str().map(str::to_string),
            branch_seq: v["branch_seq"].as_u64().unwrap_or(0),
        })
    }
}
