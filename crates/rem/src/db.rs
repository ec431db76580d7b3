//! The `Database`: opening, tenants, schemas (looked up through `schema_cache.rs`),
//! reads and scans. The write path is in `write.rs`, consistency checks in
//! `verify.rs`, key and value layouts in `format/`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rem_storage::{ColumnFamily, OpenMode, Store, StoreOptions};
use serde_json::Value;

use crate::format::entities::{entity_key_bytes, entity_prefix, entity_shard_bound};
use crate::format::indexes::{
    encode_scalar, field_prefix, id_key, key_index_prefix, parse_id_value, parse_key_index_suffix,
    stored_index_value, tag_of,
};
use crate::format::trailing_id;
use crate::index::scalar_type;
use crate::nodes::NodeDirectory;
use crate::query::{plan, shard_start};
use crate::schema::{builtin_schemas, canonical_table_name, BUILTIN_TABLES};
use crate::schema_cache::SchemaCache;
use crate::vector_indexes::VectorIndexes;
use crate::{
    AccessPath, EmbeddingOptions, Entity, EntityId, Error, Filter, Result, ScanOptions, Schema,
};

/// How to open a database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The tenant every operation of the handle runs for.
    pub tenant: String,
    /// Open read-only (no lock taken; writes refused).
    pub read_only: bool,
    /// Create the database if missing (and register the built-in tables).
    pub create: bool,
    /// RocksDB tunables.
    pub store: StoreOptions,
    /// Embedding providers and vector index parameters.
    pub embedding: EmbeddingOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            tenant: "default".into(),
            read_only: false,
            create: false,
            store: StoreOptions::default(),
            embedding: EmbeddingOptions::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) embedding: EmbeddingOptions,
    pub(crate) providers: crate::embedding::Providers,
    /// Loaded vector indexes, by tenant, table and column (`vector_indexes.rs`).
    pub(crate) vectors: VectorIndexes,
    /// Compiled schemas, by tenant and table (`schema_cache.rs`).
    pub(crate) schemas: SchemaCache,
    /// The replication role (`replica.rs`), cached from the meta column family.
    pub(crate) role: RwLock<crate::ReplicationRole>,
    /// Live entities and their tables by tenant, for graph reads (`nodes.rs`).
    pub(crate) nodes: NodeDirectory,
    /// Serialises read-modify-write cycles (reading old entities, staging the batch).
    pub(crate) write_lock: Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Saving is an optimisation: an index that is not saved catches up from the
        // change log when next loaded.
        if let Err(e) = self.vectors.save_all(&self.store) {
            tracing::warn!("vector indexes were not saved: {e}");
        }
    }
}

/// An embedded REM database, seen by one tenant. Cloning is cheap and shares the store.
///
/// ```
/// use rem::{Database, Filter, ScanOptions};
/// use serde_json::json;
///
/// let db = Database::in_memory()?;
/// db.register_schema(json!({
///     "name": "people", "key_field": "email", "indexed_fields": ["role"],
///     "properties": {"email": {"type": "string"}, "role": {"type": "string"}}
/// }))?;
/// let id = db.insert("people", json!({"email": "ada@example.com", "role": "engineer"}))?;
/// assert_eq!(db.get(&id)?.unwrap().properties["role"], "engineer");
/// let found = db.scan("people", &Filter::eq("role", "engineer"), &ScanOptions::default())?;
/// assert_eq!(found.entities.len(), 1);
/// assert_eq!(db.lookup("ada@example.com")?.len(), 1);
/// # Ok::<(), rem::Error>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
    pub(crate) tenant: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.store.path())
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// What a scan returned and how it read the table.
#[derive(Debug, Clone)]
pub struct ScanResult {
    /// The access path the planner chose.
    pub path: AccessPath,
    /// Matching entities.
    pub entities: Vec<Entity>,
}

/// Row counts and sizes for `rem stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// `(table, live rows, soft-deleted rows)` for this tenant.
    pub tables: Vec<(String, u64, u64)>,
    /// `(column family, estimated keys, bytes on disk and in memory)` for the database.
    pub column_families: Vec<(String, u64, u64)>,
    /// Bytes used by the database directory.
    pub disk_bytes: u64,
    /// Last change-log sequence number.
    pub last_seq: u64,
}

impl Database {
    /// Opens the database at `path` (creating it when `options.create`).
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Database> {
        validate_tenant(&options.tenant)?;
        let path = path.as_ref();
        let mode = match (options.read_only, options.create) {
            (true, _) => OpenMode::ReadOnly,
            (false, true) => OpenMode::Create,
            (false, false) => OpenMode::Existing,
        };
        crate::snapshot::recover_snapshot_install(path)?;
        let store = Store::open(path, mode, &options.store).map_err(|e| match Error::from(e) {
            Error::NotInitialized { .. } => Error::NotInitialized {
                path: path.display().to_string(),
            },
            other => other,
        })?;
        Self::from_store(store, &options.tenant, options.embedding.clone())
    }

    /// Creates a database that lives in memory only (tests, ephemeral use), with the
    /// default embedding settings; nothing is read from the environment.
    pub fn in_memory() -> Result<Database> {
        Self::in_memory_with(EmbeddingOptions::default())
    }

    /// An in-memory database with explicit embedding settings.
    pub fn in_memory_with(embedding: EmbeddingOptions) -> Result<Database> {
        Self::from_store(
            Store::open_in_memory(&StoreOptions::default())?,
            "default",
            embedding,
        )
    }

    fn from_store(store: Store, tenant: &str, embedding: EmbeddingOptions) -> Result<Database> {
        let role = Database::load_role(&store)?;
        let db = Database {
            inner: Arc::new(Inner {
                store,
                embedding,
                providers: Default::default(),
                vectors: VectorIndexes::default(),
                schemas: SchemaCache::default(),
                nodes: NodeDirectory::default(),
                role: RwLock::new(role),
                write_lock: Mutex::new(()),
            }),
            tenant: tenant.to_string(),
        };
        db.ensure_builtins()?;
        Ok(db)
    }

    /// A handle on the same database for another tenant.
    pub fn for_tenant(&self, tenant: &str) -> Result<Database> {
        validate_tenant(tenant)?;
        let db = Database {
            inner: self.inner.clone(),
            tenant: tenant.to_string(),
        };
        db.ensure_builtins()?;
        Ok(db)
    }

    /// The embedding settings this database was opened with.
    pub fn embedding_options(&self) -> &EmbeddingOptions {
        &self.inner.embedding
    }

    /// The tenant of this handle.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.inner.store.path()
    }

    /// True when opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.store.is_read_only()
    }

    /// True when the database is encrypted at rest (opened with its password).
    pub fn is_encrypted(&self) -> bool {
        self.inner.store.is_encrypted()
    }

    /// Changes the password of this encrypted database: the data key is wrapped again
    /// under `new` (with `params`), and nothing else is rewritten. At every moment the
    /// old or the new password opens it; the kill points `passwd:staged` (new header
    /// durable beside the old) and `passwd:swapped` (renamed) pin a crash in between.
    /// This handle holds the database's lock, so no other process races the change.
    pub fn change_password(
        &self,
        old: &rem_storage::Password,
        new: &rem_storage::Password,
        params: rem_storage::KdfParams,
    ) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        rem_storage::change_password(self.path(), old, new, params, &|step| {
            crate::kill_point::reached(&format!("passwd:{step}"))
        })?;
        Ok(())
    }

    /// The last change-log sequence number.
    pub fn last_seq(&self) -> u64 {
        self.inner.store.last_seq()
    }

    /// The last sequence number whose change is durable (with `sync_writes`, fsynced;
    /// otherwise [`Database::last_seq`]): what replication ships.
    pub fn durable_seq(&self) -> u64 {
        self.inner.store.durable_seq()
    }

    /// A receiver that sees [`Database::last_seq`] change: an async task awaits
    /// `changed()` instead of polling (replication streams do).
    pub fn watch_commits(&self) -> rem_storage::CommitReceiver {
        self.inner.store.watch_commits()
    }

    /// Change-log records after sequence number `after` (at most `max`), in order, as
    /// `(seq, record)`; decode them with [`crate::decode_change`]. Records of every
    /// tenant are included (the log is the database's).
    pub fn changes_since(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        crate::change::changes_since(self.store(), after, max)
    }

    /// Flushes memtables to disk files.
    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.store.flush()?)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Registers the built-in tables for this tenant if they are not stored yet.
    fn ensure_builtins(&self) -> Result<()> {
        // A replica gets the built-ins with the primary's log.
        if self.is_read_only()
            || matches!(
                self.replication_role(),
                crate::ReplicationRole::Replica { .. }
            )
        {
            return Ok(());
        }
        let id = EntityId::from_key(&self.tenant, "schemas", "schemas");
        if self.store().contains(
            ColumnFamily::Entities,
            &entity_key_bytes(&self.tenant, "schemas", &id),
        )? {
            return Ok(());
        }
        let docs = builtin_schemas()
            .into_iter()
            .map(|d| Schema::from_document(d).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        self.register_parsed(docs)
    }

    // ---- schemas -------------------------------------------------------------

    /// The schema of `table` (case-insensitive; built-in singular aliases accepted).
    pub fn schema(&self, table: &str) -> Result<Arc<Schema>> {
        self.inner.schemas.get(self.store(), &self.tenant, table)
    }

    /// Every registered table of this tenant, by name.
    pub fn schemas(&self) -> Result<Vec<Arc<Schema>>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for item in self.store().scan_prefix(
            ColumnFamily::Entities,
            &entity_prefix(&self.tenant, "schemas"),
        )? {
            let (_, bytes) = item?;
            let only = ["name".to_string()];
            let entity = Entity::decode_with("schemas", &bytes, Some(&only))?;
            if entity.is_deleted() {
                continue;
            }
            // Compiled schemas come from the cache (as `schema` gives them).
            let Some(Value::String(name)) = entity.properties.get("name") else {
                return Err(Error::Storage(rem_storage::StorageError::Corrupt(
                    "a stored schema has no name".into(),
                )));
            };
            let schema = self.schema(name)?;
            seen.insert(schema.name.clone());
            out.push(schema);
        }
        for (name, _) in BUILTIN_TABLES {
            if !seen.contains(name) {
                out.push(self.schema(name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    // ---- reads ---------------------------------------------------------------

    /// The entity with `id`, or `None` (also for soft-deleted entities).
    pub fn get(&self, id: &EntityId) -> Result<Option<Entity>> {
        Ok(self.get_including_deleted(id)?.filter(|e| !e.is_deleted()))
    }

    /// The entity with `id`, soft-deleted or not.
    pub fn get_including_deleted(&self, id: &EntityId) -> Result<Option<Entity>> {
        let Some(table) = self
            .store()
            .get(ColumnFamily::Ids, &id_key(&self.tenant, id))?
        else {
            return Ok(None);
        };
        let table = parse_id_value(table)?;
        self.get_in_including_deleted(&table, id)
    }

    /// The entity with `id` in `table` (one point read), or `None`.
    pub fn get_in(&self, table: &str, id: &EntityId) -> Result<Option<Entity>> {
        let table = canonical_table_name(table);
        Ok(self
            .get_in_including_deleted(&table, id)?
            .filter(|e| !e.is_deleted()))
    }

    fn get_in_including_deleted(&self, table: &str, id: &EntityId) -> Result<Option<Entity>> {
        match self.store().get(
            ColumnFamily::Entities,
            &entity_key_bytes(&self.tenant, table, id),
        )? {
            Some(bytes) => Ok(Some(Entity::decode(table, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every live entity, in any table, whose key equals `key` (one prefix scan of the
    /// key index). An id given as `key` finds that entity too.
    pub fn lookup(&self, key: &str) -> Result<Vec<Entity>> {
        let prefix = key_index_prefix(self.store().codec(), &self.tenant, key);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for item in self.store().scan_prefix(ColumnFamily::KeyIndex, &prefix)? {
            let (k, _) = item?;
            let Some((table, id)) = parse_key_index_suffix(&k[prefix.len()..]) else {
                continue;
            };
            if seen.insert(id) {
                if let Some(e) = self
                    .get_in_including_deleted(&table, &id)?
                    .filter(|e| !e.is_deleted())
                {
                    out.push(e);
                }
            }
        }
        if let Ok(id) = EntityId::parse(key) {
            if seen.insert(id) {
                out.extend(self.get(&id)?);
            }
        }
        Ok(out)
    }

    /// The access path a scan of `table` with `filter` would use.
    pub fn explain(&self, table: &str, filter: &Filter) -> Result<AccessPath> {
        let schema = self.schema(table)?;
        Ok(plan(&schema, filter, !self.store().is_encrypted()))
    }

    /// Entities of `table` matching `filter`, read through an index when one applies.
    pub fn scan(&self, table: &str, filter: &Filter, options: &ScanOptions) -> Result<ScanResult> {
        let mut entities = Vec::new();
        let path = self.scan_each(table, filter, options, |e| {
            entities.push(e);
            true
        })?;
        Ok(ScanResult { path, entities })
    }

    /// Streams entities of `table` matching `filter` to `visit` until it returns false
    /// or `options.limit` entities were given. Returns the access path used.
    pub fn scan_each(
        &self,
        table: &str,
        filter: &Filter,
        options: &ScanOptions,
        mut visit: impl FnMut(Entity) -> bool,
    ) -> Result<AccessPath> {
        let schema = self.schema(table)?;
        let table = schema.name.as_str();
        let path = plan(&schema, filter, !self.store().is_encrypted());
        let limit = options.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(path);
        }
        let mut given = 0usize;
        // The properties to decode: those asked for plus those the filter reads.
        let only: Option<Vec<String>> = options.properties.as_ref().map(|names| {
            let mut names = names.clone();
            filter.collect_fields(&mut names);
            names
        });
        let only = only.as_deref();
        let (lo, hi) = match options.shard {
            Some((i, n)) => (shard_start(i, n), shard_start(i + 1, n)),
            None => (0, 256),
        };
        let in_shard = |e: &Entity| {
            let first = u32::from(e.id.as_bytes()[0]);
            lo <= first && first < hi
        };
        // Returns false when the scan should stop.
        let mut offer = |e: Entity| -> bool {
            if (!options.include_deleted && e.is_deleted())
                || !in_shard(&e)
                || !filter.matches(&e, &schema)
            {
                return true;
            }
            given += 1;
            visit(e) && given < limit
        };
        match &path {
            AccessPath::FullScan => {
                let prefix = entity_prefix(&self.tenant, table);
                let bound = |first: u32| entity_shard_bound(&prefix, first);
                let start = bound(lo).unwrap_or_else(|| prefix.clone());
                for item in
                    self.store()
                        .scan_range(ColumnFamily::Entities, &start, bound(hi).as_deref())?
                {
                    let (_, bytes) = item?;
                    if !offer(Entity::decode_with(table, &bytes, only)?) {
                        break;
                    }
                }
            }
            AccessPath::Ids(ids) => {
                self.offer_ids(table, ids.iter().copied(), only, &mut offer)?;
            }
            AccessPath::KeyIndex { values, .. } => {
                let mut ids = Vec::new();
                for v in values {
                    let key = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let prefix = key_index_prefix(self.store().codec(), &self.tenant, &key);
                    for item in self.store().scan_prefix(ColumnFamily::KeyIndex, &prefix)? {
                        let (k, _) = item?;
                        if let Some((t, id)) = parse_key_index_suffix(&k[prefix.len()..]) {
                            if t == table {
                                ids.push(id);
                            }
                        }
                    }
                }
                self.offer_ids(table, ids.into_iter(), only, &mut offer)?;
            }
            AccessPath::IndexEq { field, values } => {
                let scalar = scalar_type(&schema, field);
                let base = field_prefix(&self.tenant, table, field);
                let mut ids = Vec::new();
                for v in values {
                    let Some(enc) = encode_scalar(&scalar, v) else {
                        continue;
                    };
                    let mut prefix = base.clone();
                    prefix.extend_from_slice(&stored_index_value(
                        self.store().codec(),
                        &self.tenant,
                        table,
                        field,
                        &enc,
                    ));
                    let mut iter = self
                        .store()
                        .scan_prefix(ColumnFamily::FieldIndex, &prefix)?;
                    while let Some(k) = iter.next_key() {
                        ids.extend(trailing_id(&k?));
                    }
                }
                self.offer_ids(table, ids.into_iter(), only, &mut offer)?;
            }
            AccessPath::IndexRange {
                field,
                lower,
                upper,
            } => {
                let (start, end) = self.range_bounds(&schema, table, field, lower, upper);
                let mut iter =
                    self.store()
                        .scan_range(ColumnFamily::FieldIndex, &start, end.as_deref())?;
                let mut chunk = Vec::with_capacity(256);
                let mut stopped = false;
                while let Some(k) = iter.next_key() {
                    chunk.extend(trailing_id(&k?));
                    if chunk.len() == 256
                        && !self.offer_ids(table, chunk.drain(..), only, &mut offer)?
                    {
                        stopped = true;
                        break;
                    }
                }
                if !stopped {
                    self.offer_ids(table, chunk.into_iter(), only, &mut offer)?;
                }
            }
        }
        Ok(path)
    }

    /// Reads entities by id in batches and offers them in order; false when stopped.
    fn offer_ids(
        &self,
        table: &str,
        ids: impl Iterator<Item = EntityId>,
        only: Option<&[String]>,
        offer: &mut impl FnMut(Entity) -> bool,
    ) -> Result<bool> {
        let mut seen = HashSet::new();
        let unique: Vec<EntityId> = ids.filter(|id| seen.insert(*id)).collect();
        for chunk in unique.chunks(256) {
            let keys: Vec<Vec<u8>> = chunk
                .iter()
                .map(|id| entity_key_bytes(&self.tenant, table, id))
                .collect();
            for bytes in self
                .store()
                .multi_get(ColumnFamily::Entities, &keys)?
                .into_iter()
                .flatten()
            {
                if !offer(Entity::decode_with(table, &bytes, only)?) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn range_bounds(
        &self,
        schema: &Schema,
        table: &str,
        field: &str,
        lower: &std::ops::Bound<Value>,
        upper: &std::ops::Bound<Value>,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        use std::ops::Bound;
        let scalar = scalar_type(schema, field);
        let base = field_prefix(&self.tenant, table, field);
        let tag = tag_of(&scalar).unwrap_or(0);
        let with = |enc: Vec<u8>| {
            let mut k = base.clone();
            k.extend_from_slice(&enc);
            k
        };
        let enc = |v: &Value| encode_scalar(&scalar, v).unwrap_or_default();
        let start = match lower {
            Bound::Unbounded => with(vec![tag]),
            Bound::Included(v) => with(enc(v)),
            Bound::Excluded(v) => rem_storage::prefix_successor(&with(enc(v))).unwrap_or_default(),
        };
        let end = match upper {
            Bound::Unbounded => Some(with(vec![tag + 1])),
            Bound::Included(v) => rem_storage::prefix_successor(&with(enc(v))),
            Bound::Excluded(v) => Some(with(enc(v))),
        };
        (start, end)
    }

    // ---- stats ---------------------------------------------------------------

    /// Row counts per table (this tenant) and sizes (whole database).
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats {
            last_seq: self.last_seq(),
            ..Stats::default()
        };
        for schema in self.schemas()? {
            let (mut live, mut deleted) = (0, 0);
            for item in self.store().scan_prefix(
                ColumnFamily::Entities,
                &entity_prefix(&self.tenant, &schema.name),
            )? {
                let (_, bytes) = item?;
                if Entity::raw_is_deleted(&bytes) {
                    deleted += 1;
                } else {
                    live += 1;
                }
            }
            stats.tables.push((schema.name.clone(), live, deleted));
        }
        for cf in ColumnFamily::ALL {
            let s = self.store().cf_stats(cf)?;
            stats.column_families.push((
                cf.name().to_string(),
                s.estimated_keys,
                s.sst_bytes + s.memtable_bytes,
            ));
        }
        stats.disk_bytes = dir_size(self.path());
        Ok(stats)
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Tenant names: 1–64 characters of letters, digits, `_`, `-` and `.`.
pub(crate) fn validate_tenant(tenant: &str) -> Result<()> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "'{tenant}' is not a valid tenant name (letters, digits, _, - and ., at most 64)"
        )))
    }
}
