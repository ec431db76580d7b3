//! The write path. Every logical write stages the entity, the difference between its
//! old and new index entries, and one change-log record per entity into one batch,
//! committed atomically by the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rem_storage::{Batch, ColumnFamily};
use serde_json::{Map, Value};

use crate::entity::{now, SYSTEM_FIELDS};
use crate::format::changes::encode_put;
use crate::format::entities::{entity_key_bytes, entity_prefix};
use crate::format::indexes::{id_key, id_value};
use crate::format::vectors::{embedding_key, EMBEDDING, EMBEDDING_ALT};
use crate::id::entity_key;
use crate::index::index_entries;
use crate::schema::canonical_table_name;
use crate::{Database, Entity, EntityId, Error, Result, Schema};

/// A validated record waiting to be written.
struct Prepared {
    id: EntityId,
    properties: Map<String, Value>,
    edges: Option<Vec<String>>,
}

impl Database {
    /// Inserts (or upserts, when its key or id exists) one record; returns its id.
    pub fn insert(&self, table: &str, record: Value) -> Result<EntityId> {
        let ids = self
            .insert_batch(table, vec![record])
            .map_err(|e| match e {
                Error::Record { source, .. } => *source,
                other => other,
            })?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::InvalidInput("nothing was written".into()))
    }

    /// Inserts or upserts `records` into `table` in one atomic batch: either all are
    /// written or, on the first invalid record ([`Error::Record`] says which), none.
    /// Returns one id per record, in input order (a key repeated in the batch repeats
    /// its id; the last record with that key wins).
    pub fn insert_batch(&self, table: &str, records: Vec<Value>) -> Result<Vec<EntityId>> {
        self.write_batch(table, records, None)
    }

    /// [`Database::insert_batch`] with the caller's vectors for the table's `embedding`
    /// column, one per record (for frameworks that embed themselves, and for tables
    /// whose provider is `external:<dims>`). Each vector must have the column's size.
    pub fn insert_batch_with_vectors(
        &self,
        table: &str,
        records: Vec<Value>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<EntityId>> {
        self.write_batch(table, records, Some(vectors))
    }

    fn write_batch(
        &self,
        table: &str,
        records: Vec<Value>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> Result<Vec<EntityId>> {
        self.check_writable()?;
        let schema = self.schema(table)?;
        if schema.name == "schemas" && vectors.is_some() {
            return Err(Error::InvalidInput(
                "schema documents take no vectors".into(),
            ));
        }
        if schema.name == "schemas" {
            // Rows of `schemas` are schema documents: register them as such.
            let mut parsed = Vec::with_capacity(records.len());
            for (index, doc) in records.into_iter().enumerate() {
                let s = Schema::from_document(doc).map_err(|e| Error::Record {
                    index,
                    source: Box::new(e),
                })?;
                parsed.push(Arc::new(s));
            }
            let ids = parsed
                .iter()
                .map(|s| EntityId::from_key(&self.tenant, "schemas", &s.name))
                .collect();
            self.register_parsed(parsed)?;
            return Ok(ids);
        }
        let prepared = records
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                self.prepare(&schema, r).map_err(|e| Error::Record {
                    index,
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Embedding is the slow part: it runs before the write lock is taken.
        let ids: Vec<EntityId> = prepared.iter().map(|p| p.id).collect();
        let props: Vec<&Map<String, Value>> = prepared.iter().map(|p| &p.properties).collect();
        let mut plans = self.plan_embeddings(&schema, &ids, &props, vectors)?;
        let _guard = self.lock_with_current_plans(&schema, &ids, &props, &mut plans)?;
        let mut batch = self.store().batch();
        let mut changes = Vec::with_capacity(prepared.len());
        let ids = self.stage(&mut batch, &mut changes, &schema, prepared)?;
        self.stage_embeddings(&mut batch, &schema.name, &ids, &plans)?;
        let seq = self.store().commit_deferred(batch, &changes)?;
        if !plans.is_empty() {
            self.refresh_loaded_indexes(&schema.name, &ids)?;
        }
        // Acknowledged once durable; waiting outside the write lock lets concurrent
        // writers share one fsync (`P8_ROCKSDB_SYNC`).
        drop(_guard);
        self.store().make_durable(seq)?;
        // Written to the log, not yet flushed to a table file: the WAL-only state.
        crate::kill_point::reached("insert:committed");
        Ok(ids)
    }

    /// Registers (or re-registers) a table from its JSON Schema document. Existing
    /// data is kept; index entries are rebuilt in the same batch when the indexed
    /// fields or the key field change.
    pub fn register_schema(&self, document: Value) -> Result<Arc<Schema>> {
        let schema = Arc::new(Schema::from_document(document)?);
        self.register_parsed(vec![schema.clone()])?;
        Ok(schema)
    }

    pub(crate) fn register_parsed(&self, schemas: Vec<Arc<Schema>>) -> Result<()> {
        self.check_writable()?;
        let meta = match schemas.iter().find(|s| s.name == "schemas") {
            Some(s) => s.clone(),
            None => self.schema("schemas")?,
        };
        let mut prepared = Vec::with_capacity(schemas.len());
        for (index, schema) in schemas.iter().enumerate() {
            if schema.name == "schemas" && schema.category != "system" {
                return Err(Error::InvalidSchema(
                    "the built-in 'schemas' table cannot be replaced".into(),
                ));
            }
            let p = self
                .prepare(&meta, schema.document.clone())
                .map_err(|e| Error::Record {
                    index,
                    source: Box::new(e),
                })?;
            prepared.push(p);
        }
        // Descriptions are embedded so tables can be found by meaning. A schema stays
        // registrable without a working provider: search embeds descriptions it lacks.
        let ids: Vec<EntityId> = prepared.iter().map(|p| p.id).collect();
        let props: Vec<&Map<String, Value>> = prepared.iter().map(|p| &p.properties).collect();
        let (mut plans, planned) = match self.plan_embeddings(&meta, &ids, &props, None) {
            Ok(plans) => (plans, true),
            Err(e) => {
                tracing::warn!("schema descriptions were not embedded: {e}");
                (vec![], false)
            }
        };
        let _guard = if planned {
            self.lock_with_current_plans(&meta, &ids, &props, &mut plans)?
        } else {
            self.lock_writes()
        };
        let mut batch = self.store().batch();
        let mut changes = Vec::new();
        for schema in &schemas {
            let old = match self.schema(&schema.name) {
                Ok(old) => Some(old),
                Err(Error::UnknownTable(_)) => None,
                Err(e) => return Err(e),
            };
            if let Some(old) = old {
                if needs_reindex(&old, schema) {
                    self.stage_reindex(&mut batch, &old, schema)?;
                }
            }
        }
        let ids = self.stage(&mut batch, &mut changes, &meta, prepared)?;
        self.stage_embeddings(&mut batch, "schemas", &ids, &plans)?;
        self.store().commit(batch, &changes)?;
        if !plans.is_empty() {
            self.refresh_loaded_indexes("schemas", &ids)?;
        }
        for s in schemas {
            self.inner.schemas.insert(&self.tenant, s);
        }
        Ok(())
    }

    /// Soft-deletes the entity with `id`: it keeps its data but is hidden from reads.
    pub fn delete(&self, id: &EntityId) -> Result<Entity> {
        self.check_writable()?;
        let _guard = self.lock_writes();
        let entity = self
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("no entity with id {id}")))?;
        if entity.table == "schemas" {
            return Err(Error::InvalidInput(
                "schemas cannot be deleted with delete; tables stay registered".into(),
            ));
        }
        let mut deleted = entity;
        let t = now();
        deleted.deleted_at = Some(t);
        deleted.modified_at = t;
        let mut batch = self.store().batch();
        let encoded = deleted.encode();
        let key = entity_key_bytes(&self.tenant, &deleted.table, &deleted.id);
        batch.put(ColumnFamily::Entities, &key, &encoded)?;
        for column in [EMBEDDING, EMBEDDING_ALT] {
            let key = embedding_key(&self.tenant, &deleted.table, column, &deleted.id);
            batch.delete(ColumnFamily::Embeddings, &key)?;
        }
        let change = encode_put(&self.tenant, &deleted.table, &encoded);
        self.store().commit(batch, &[change])?;
        self.refresh_loaded_indexes(&deleted.table, &[deleted.id])?;
        Ok(deleted)
    }

    /// After a commit: brings the loaded vector indexes of `table` in line with the
    /// stored vectors of `ids` (the caller still holds the write lock).
    pub(crate) fn refresh_loaded_indexes(&self, table: &str, ids: &[EntityId]) -> Result<()> {
        self.inner
            .vectors
            .refresh(self.store(), &self.tenant, table, ids)
    }

    /// Takes the write lock once `plans` (made without it) still fit the stored vectors:
    /// a column another writer changed meanwhile is planned again. After two lost races
    /// the plan is made under the lock, where nothing can change it.
    fn lock_with_current_plans(
        &self,
        schema: &Schema,
        ids: &[EntityId],
        props: &[&Map<String, Value>],
        plans: &mut Vec<crate::embedding::ColumnUpdates>,
    ) -> Result<std::sync::MutexGuard<'_, ()>> {
        let mut attempt = 0;
        loop {
            let guard = self.lock_writes();
            let stale = self.stale_columns(schema, ids, props, plans)?;
            if stale.is_empty() {
                return Ok(guard);
            }
            attempt += 1;
            if attempt > 2 {
                self.replan_columns(schema, ids, props, &stale, plans)?;
                return Ok(guard);
            }
            drop(guard);
            self.replan_columns(schema, ids, props, &stale, plans)?;
        }
    }

    /// Takes the write lock (a poisoned lock is still usable: the store is consistent
    /// whatever a panicking writer did, since nothing is written before commit).
    pub(crate) fn lock_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if let crate::ReplicationRole::Replica { primary } = self.replication_role() {
            return Err(Error::Replica { primary });
        }
        Ok(())
    }

    /// Splits system fields off a record, validates the rest and derives the id.
    fn prepare(&self, schema: &Schema, record: Value) -> Result<Prepared> {
        let Value::Object(mut props) = record else {
            return Err(Error::InvalidInput("a record must be a JSON object".into()));
        };
        let explicit_id = match props.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(EntityId::parse(&s)?),
            Some(other) => {
                return Err(Error::InvalidInput(format!(
                    "'id' must be a UUID string, not {other}"
                )))
            }
        };
        let edges = match props.remove("edges") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(Error::InvalidInput(format!(
                            "'edges' must list ids or keys, found {other}"
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(Error::InvalidInput(format!(
                    "'edges' must be a list, not {other}"
                )))
            }
        };
        for f in SYSTEM_FIELDS {
            props.remove(f);
        }
        let props = Value::Object(props);
        schema.validate(&props)?;
        let Value::Object(properties) = props else {
            unreachable!("constructed as an object above")
        };
        let id = match explicit_id {
            Some(id) => id,
            None => match entity_key(schema.key_field.as_deref(), &properties) {
                Some(key) => EntityId::from_key(&self.tenant, &schema.name, &key.value),
                None => EntityId::random(),
            },
        };
        Ok(Prepared {
            id,
            properties,
            edges,
        })
    }

    /// Stages entities and their index changes into `batch`. The caller holds the
    /// write lock and commits. Later records with the same id see earlier ones.
    fn stage(
        &self,
        batch: &mut Batch<'_>,
        changes: &mut Vec<Vec<u8>>,
        schema: &Schema,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<EntityId>> {
        let table = schema.name.as_str();
        let store = self.store();
        let id_keys: Vec<Vec<u8>> = prepared
            .iter()
            .map(|p| id_key(&self.tenant, &p.id))
            .collect();
        let owners = store.multi_get(ColumnFamily::Ids, &id_keys)?;
        let mut existing_keys = Vec::new();
        for (index, (p, owner)) in prepared.iter().zip(&owners).enumerate() {
            if let Some(owner) = owner {
                if owner.as_slice() != id_value(table) {
                    let other = String::from_utf8_lossy(owner);
                    return Err(Error::Record {
                        index,
                        source: Box::new(Error::InvalidInput(format!(
                            "id {} already belongs to an entity of table '{other}'",
                            p.id
                        ))),
                    });
                }
                existing_keys.push(entity_key_bytes(&self.tenant, table, &p.id));
            }
        }
        let mut stored: HashMap<EntityId, Entity> = HashMap::new();
        for bytes in store
            .multi_get(ColumnFamily::Entities, &existing_keys)?
            .into_iter()
            .flatten()
        {
            let e = Entity::decode(table, &bytes)?;
            stored.insert(e.id, e);
        }
        let t = now();
        // One id per input record (repeats included), so callers can align ids with input.
        let input_ids: Vec<EntityId> = prepared.iter().map(|p| p.id).collect();
        let mut order = Vec::with_capacity(prepared.len());
        let mut latest: HashMap<EntityId, Entity> = HashMap::with_capacity(prepared.len());
        for p in prepared {
            let previous = latest.get(&p.id).or_else(|| stored.get(&p.id));
            let entity = Entity {
                id: p.id,
                table: table.to_string(),
                created_at: previous.map(|e| e.created_at).unwrap_or(t),
                modified_at: t,
                deleted_at: None,
                edges: p
                    .edges
                    .or_else(|| previous.map(|e| e.edges.clone()))
                    .unwrap_or_default(),
                properties: p.properties,
            };
            if !latest.contains_key(&p.id) {
                order.push(p.id);
            }
            latest.insert(p.id, entity);
        }
        for id in &order {
            let encoded = self.stage_entity(batch, schema, stored.get(id), &latest[id])?;
            changes.push(encode_put(&self.tenant, table, &encoded));
        }
        Ok(input_ids)
    }

    /// Stages one entity's new state over `old` (its stored state, if any): the index
    /// entries that changed and the entity itself. Returns the entity's encoding.
    pub(crate) fn stage_entity(
        &self,
        batch: &mut Batch<'_>,
        schema: &Schema,
        old: Option<&Entity>,
        new: &Entity,
    ) -> Result<Vec<u8>> {
        let canonical = |t: &str| self.canonical_table(t);
        let new_entries =
            index_entries(self.store().codec(), &self.tenant, schema, new, &canonical);
        let old_entries = old
            .map(|old| index_entries(self.store().codec(), &self.tenant, schema, old, &canonical))
            .unwrap_or_default();
        stage_index_diff(batch, &old_entries, &new_entries)?;
        let encoded = new.encode();
        batch.put(
            ColumnFamily::Entities,
            &entity_key_bytes(&self.tenant, &schema.name, &new.id),
            &encoded,
        )?;
        Ok(encoded)
    }

    /// Stages the rewrite of every index entry of `new.name` from `old`'s layout to
    /// `new`'s (for re-registration with other indexed fields or key field).
    pub(crate) fn stage_reindex(
        &self,
        batch: &mut Batch<'_>,
        old: &Schema,
        new: &Schema,
    ) -> Result<()> {
        let table = canonical_table_name(&new.name);
        for item in self
            .store()
            .scan_prefix(ColumnFamily::Entities, &entity_prefix(&self.tenant, &table))?
        {
            let (_, bytes) = item?;
            let entity = Entity::decode(&table, &bytes)?;
            let canonical = |t: &str| self.canonical_table(t);
            let new_entries =
                index_entries(self.store().codec(), &self.tenant, new, &entity, &canonical);
            let old_entries =
                index_entries(self.store().codec(), &self.tenant, old, &entity, &canonical);
            stage_index_diff(batch, &old_entries, &new_entries)?;
        }
        Ok(())
    }
}

/// Stages the change from one set of index entries to another: deletes what is gone
/// and puts what is new. Entries in both are left alone: their values depend only on
/// the key, except an edge's creation time, which must stay the first one.
fn stage_index_diff(batch: &mut Batch<'_>, old: &[IndexEntry], new: &[IndexEntry]) -> Result<()> {
    let new_keys: HashSet<&[u8]> = new.iter().map(|(_, k, _)| k.as_slice()).collect();
    let old_keys: HashSet<&[u8]> = old.iter().map(|(_, k, _)| k.as_slice()).collect();
    for (cf, k, _) in old {
        if !new_keys.contains(k.as_slice()) {
            batch.delete(*cf, k)?;
        }
    }
    for (cf, k, v) in new {
        if !old_keys.contains(k.as_slice()) {
            batch.put(*cf, k, v)?;
        }
    }
    Ok(())
}

type IndexEntry = (ColumnFamily, Vec<u8>, Vec<u8>);

/// True when index entries depend on something that changed between the versions.
pub(crate) fn needs_reindex(old: &Schema, new: &Schema) -> bool {
    old.key_field != new.key_field
        || old.indexed_fields != new.indexed_fields
        || old
            .indexed_fields
            .iter()
            .any(|f| old.field_type(f) != new.field_type(f))
}
