//! Edges (SPEC §2.6): typed, directed edges in the `edges` column family
//! (`tenant, src[16], type, dst`) with a reverse index in `edges_rev`
//! (`tenant, dst, type, src[16]`), so both directions are a prefix scan.
//!
//! Two kinds share the key space:
//! - **Derived** `references` edges mirror an entity's `edges` list. The write path
//!   treats them like index entries: derived from the entity and diffed on every write,
//!   in the same batch. Adding or removing a `references` edge through the API edits
//!   the source's `edges` list, so list and store always agree.
//! - **Explicit** edges of any other type, added with [`Database::add_edge`], with a
//!   weight and JSON properties. They are written (with a change-log record) on their
//!   own and marked explicit in their value.
//!
//! A target is stored as an id when it can be: an id as written, a qualified key
//! `table:key` of a registered table as the id that key determines (so it resolves
//! when the target appears). Anything else (a bare key) is kept as written and
//! resolved through the key index when read.
//!
//! The key and value layouts, and [`Edge`] itself, are in `format/edges.rs`.

use std::collections::HashMap;

use rem_storage::{ColumnFamily, ValueCodec};
use serde_json::{Map, Value};

use crate::entity::now;
use crate::format::changes::{encode_edge_delete, encode_edge_put};
use crate::format::edges::{
    corrupt, decode_edge, edge_key, edge_value, in_names, in_prefix, out_prefix, reverse_key,
    reverse_value,
};
use crate::format::tenant_prefix;
use crate::{Database, Entity, EntityId, Error, Result};

pub use crate::format::edges::Edge;

/// Type of the edges that come from an entity's `edges` list.
pub const REFERENCES: &str = "references";

/// How an entry of an `edges` list is stored as a target: an id in canonical form; a
/// qualified key `table:key` whose table `canonical` knows as the id it determines;
/// anything else as written.
pub(crate) fn normalize_target(
    tenant: &str,
    target: &str,
    canonical: &dyn Fn(&str) -> Option<String>,
) -> String {
    if let Ok(id) = uuid::Uuid::parse_str(target.trim()) {
        return id.to_string();
    }
    if let Some((table, key)) = target.split_once(':') {
        if !key.is_empty() && !table.is_empty() {
            if let Some(table) = canonical(table) {
                return EntityId::from_key(tenant, &table, key).to_string();
            }
        }
    }
    target.to_string()
}

/// The edge entries an entity implies (both directions). The value carries the time of
/// this write; the write path keeps an existing entry's value, so it records when the
/// edge first appeared.
pub(crate) fn edge_entries(
    codec: &dyn ValueCodec,
    tenant: &str,
    entity: &Entity,
    canonical: &dyn Fn(&str) -> Option<String>,
) -> Vec<(ColumnFamily, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(entity.edges.len() * 2);
    let mut seen = std::collections::HashSet::new();
    let none = Map::new();
    for target in &entity.edges {
        let dst = normalize_target(tenant, target, canonical);
        if !seen.insert(dst.clone()) {
            continue;
        }
        out.push((
            ColumnFamily::Edges,
            edge_key(codec, tenant, &entity.id, REFERENCES, &dst),
            edge_value(
                codec,
                REFERENCES,
                &dst,
                1.0,
                &entity.modified_at,
                false,
                &none,
            ),
        ));
        out.push((
            ColumnFamily::EdgesRev,
            reverse_key(codec, tenant, &dst, REFERENCES, &entity.id),
            reverse_value(codec, REFERENCES, &dst),
        ));
    }
    out
}

/// Options of [`Database::add_edge`].
#[derive(Debug, Clone, Default)]
pub struct EdgeOptions {
    /// Weight (default 1.0).
    pub weight: Option<f64>,
    /// JSON properties of the edge.
    pub properties: Map<String, Value>,
}

fn check_edge_type(edge_type: &str) -> Result<()> {
    if edge_type.trim().is_empty() || edge_type.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "'{edge_type}' is not a valid edge type"
        )));
    }
    Ok(())
}

impl Database {
    /// The canonical name of `table` if it is registered (for qualified keys).
    pub(crate) fn canonical_table(&self, table: &str) -> Option<String> {
        self.schema(table).ok().map(|s| s.name.clone())
    }

    /// The live entity `reference` names: an id, a qualified key `table:key`, or a key
    /// that exactly one entity has. Errors name what was not found or is ambiguous.
    pub fn resolve(&self, reference: &str) -> Result<Entity> {
        let not_found = || Error::NotFound(format!("no entity has id or key '{reference}'"));
        if let Ok(id) = uuid::Uuid::parse_str(reference.trim()) {
            return self.get(&EntityId(id))?.ok_or_else(not_found);
        }
        if let Some((table, key)) = reference.split_once(':') {
            if let Some(table) = self.canonical_table(table) {
                let id = EntityId::from_key(&self.tenant, &table, key);
                if let Some(e) = self.get(&id)? {
                    return Ok(e);
                }
            }
        }
        let mut found = self.lookup(reference)?;
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.remove(0)),
            n => Err(Error::InvalidInput(format!(
                "{n} entities have the key '{reference}'; give an id or a qualified key (table:key)"
            ))),
        }
    }

    /// Adds (or updates) the edge `src -[edge_type]-> dst` between two live entities,
    /// given by id, qualified key or unique key. A `references` edge is added to the
    /// source's `edges` list (and so to the store); any other type is stored with its
    /// weight and properties, keeping its first creation time on update.
    pub fn add_edge(
        &self,
        src: &str,
        dst: &str,
        edge_type: &str,
        options: &EdgeOptions,
    ) -> Result<Edge> {
        self.check_writable()?;
        check_edge_type(edge_type)?;
        let source = self.resolve(src)?;
        let target = self.resolve(dst)?;
        let dst = target.id.to_string();
        if edge_type == REFERENCES {
            if options.weight.is_some_and(|w| w != 1.0) || !options.properties.is_empty() {
                return Err(Error::InvalidInput(
                    "'references' edges come from the entity's edges list and carry no weight or properties; use another type".into(),
                ));
            }
            if !source
                .edges
                .iter()
                .any(|e| normalize_target(&self.tenant, e, &|t| self.canonical_table(t)) == dst)
            {
                let mut edges = source.edges.clone();
                edges.push(dst.clone());
                self.set_edges_list(&source, edges)?;
            }
        } else {
            let weight = options.weight.unwrap_or(1.0);
            if !weight.is_finite() {
                return Err(Error::InvalidInput(
                    "an edge weight must be a finite number".into(),
                ));
            }
            let _guard = self.lock_writes();
            let codec = self.store().codec();
            let key = edge_key(codec, &self.tenant, &source.id, edge_type, &dst);
            let created = match self.store().get(ColumnFamily::Edges, &key)? {
                Some(v) => decode_edge(&key, &v)?.created_at,
                None => now(),
            };
            let value = edge_value(
                codec,
                edge_type,
                &dst,
                weight,
                &created,
                true,
                &options.properties,
            );
            let mut batch = self.store().batch();
            batch.put(ColumnFamily::Edges, &key, &value)?;
            batch.put(
                ColumnFamily::EdgesRev,
                &reverse_key(codec, &self.tenant, &dst, edge_type, &source.id),
                &reverse_value(codec, edge_type, &dst),
            )?;
            let change = encode_edge_put(&self.tenant, &source.id, edge_type, &dst, &value);
            self.store().commit(batch, &[change])?;
        }
        let key = edge_key(
            self.store().codec(),
            &self.tenant,
            &source.id,
            edge_type,
            &dst,
        );
        let value = self
            .store()
            .get(ColumnFamily::Edges, &key)?
            .ok_or_else(|| corrupt("missing after write"))?;
        decode_edge(&key, &value)
    }

    /// Removes the edge `src -[edge_type]-> dst`; false if there was none. For
    /// `references` the target is dropped from the source's `edges` list.
    pub fn remove_edge(&self, src: &str, dst: &str, edge_type: &str) -> Result<bool> {
        self.check_writable()?;
        check_edge_type(edge_type)?;
        let source = self.resolve(src)?;
        // The target may have been deleted since: an id or key as written is enough.
        let dst = match self.resolve(dst) {
            Ok(e) => e.id.to_string(),
            Err(_) => normalize_target(&self.tenant, dst, &|t| self.canonical_table(t)),
        };
        if edge_type == REFERENCES {
            let canonical = |t: &str| self.canonical_table(t);
            let kept: Vec<String> = source
                .edges
                .iter()
                .filter(|e| normalize_target(&self.tenant, e, &canonical) != dst)
                .cloned()
                .collect();
            if kept.len() == source.edges.len() {
                return Ok(false);
            }
            self.set_edges_list(&source, kept)?;
            return Ok(true);
        }
        let _guard = self.lock_writes();
        let codec = self.store().codec();
        let key = edge_key(codec, &self.tenant, &source.id, edge_type, &dst);
        if self.store().get(ColumnFamily::Edges, &key)?.is_none() {
            return Ok(false);
        }
        let mut batch = self.store().batch();
        batch.delete(ColumnFamily::Edges, &key)?;
        batch.delete(
            ColumnFamily::EdgesRev,
            &reverse_key(codec, &self.tenant, &dst, edge_type, &source.id),
        )?;
        let change = encode_edge_delete(&self.tenant, &source.id, edge_type, &dst);
        self.store().commit(batch, &[change])?;
        Ok(true)
    }

    /// Rewrites `entity` with another `edges` list (an upsert of the same properties).
    fn set_edges_list(&self, entity: &Entity, edges: Vec<String>) -> Result<()> {
        let mut record = entity.properties.clone();
        record.insert("id".into(), Value::String(entity.id.to_string()));
        record.insert(
            "edges".into(),
            Value::Array(edges.into_iter().map(Value::String).collect()),
        );
        self.insert(&entity.table, Value::Object(record))?;
        Ok(())
    }

    /// Streams the edges of this tenant to `visit` (until it returns false): those
    /// leaving `src` when given (one prefix scan), else those reaching `dst` when given
    /// (a prefix scan of the reverse index), else all. Edges whose source is
    /// soft-deleted are skipped.
    pub fn scan_edges(
        &self,
        src: Option<&EntityId>,
        dst: Option<&str>,
        mut visit: impl FnMut(Edge) -> bool,
    ) -> Result<()> {
        let mut live: HashMap<EntityId, bool> = HashMap::new();
        let mut is_live = |db: &Database, id: &EntityId| -> Result<bool> {
            if let Some(v) = live.get(id) {
                return Ok(*v);
            }
            let v = db.get(id)?.is_some();
            live.insert(*id, v);
            Ok(v)
        };
        let tenant = self.tenant.as_str();
        match (src, dst) {
            (Some(src), _) => {
                let prefix = out_prefix(tenant, src);
                for item in self.store().scan_prefix(ColumnFamily::Edges, &prefix)? {
                    let (k, v) = item?;
                    let e = decode_edge(&k, &v)?;
                    if dst.is_some_and(|d| d != e.dst) || !is_live(self, &e.src)? {
                        continue;
                    }
                    if !visit(e) {
                        break;
                    }
                }
            }
            (None, Some(dst)) => {
                let codec = self.store().codec();
                let prefix = in_prefix(codec, tenant, dst);
                for item in self.store().scan_prefix(ColumnFamily::EdgesRev, &prefix)? {
                    let (k, v) = item?;
                    let (edge_type, src) = in_names(&k[prefix.len()..], &v)?;
                    let src = src.ok_or_else(|| corrupt("source"))?;
                    let key = edge_key(codec, tenant, &src, &edge_type, dst);
                    let Some(v) = self.store().get(ColumnFamily::Edges, &key)? else {
                        continue;
                    };
                    let e = decode_edge(&key, &v)?;
                    if !is_live(self, &e.src)? {
                        continue;
                    }
                    if !visit(e) {
                        break;
                    }
                }
            }
            (None, None) => {
                let prefix = tenant_prefix(tenant);
                for item in self.store().scan_prefix(ColumnFamily::Edges, &prefix)? {
                    let (k, v) = item?;
                    let e = decode_edge(&k, &v)?;
                    if !is_live(self, &e.src)? {
                        continue;
                    }
                    if !visit(e) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
