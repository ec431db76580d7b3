//! Edges (SPEC §2.6): an entity's `edges` list (ids or qualified keys of related
//! entities) is mirrored into the `edges` and `edges_rev` column families as edges of
//! type `references`, in the same batch as the entity, so both directions are a prefix
//! scan. The write path treats them like index entries: they are derived from the
//! entity and diffed on every write.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rem_storage::{ColumnFamily, KeyBuf, KeyReader};

use crate::{Database, Entity, EntityId, Error, Result};

/// Type of the edges that come from an entity's `edges` list.
pub const REFERENCES: &str = "references";

/// One directed edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Source entity.
    pub src: EntityId,
    /// Target: an entity id or a qualified key, as written in the source's `edges`.
    pub dst: String,
    /// Edge type.
    pub edge_type: String,
    /// Weight (1.0 for `references`).
    pub weight: f64,
    /// When the edge first appeared.
    pub created_at: DateTime<Utc>,
}

/// `edges` key: `tenant, src[16], type, dst`.
fn edge_key(tenant: &str, src: &EntityId, edge_type: &str, dst: &str) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .raw(src.as_bytes())
        .str(edge_type)
        .str(dst)
        .into_bytes()
}

/// `edges_rev` key: `tenant, dst, type, src[16]`.
fn reverse_key(tenant: &str, dst: &str, edge_type: &str, src: &EntityId) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(dst)
        .str(edge_type)
        .raw(src.as_bytes())
        .into_bytes()
}

/// Edge value: weight f64 BE, created_at µs i64 BE.
fn edge_value(weight: f64, created_at: &DateTime<Utc>) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&created_at.timestamp_micros().to_be_bytes());
    v
}

/// The edge entries an entity implies (both directions). The value carries the time of
/// this write; the write path keeps an existing entry's value, so it records when the
/// edge first appeared.
pub(crate) fn edge_entries(tenant: &str, entity: &Entity) -> Vec<(ColumnFamily, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(entity.edges.len() * 2);
    let mut seen = std::collections::HashSet::new();
    for dst in &entity.edges {
        if !seen.insert(dst) {
            continue;
        }
        out.push((
            ColumnFamily::Edges,
            edge_key(tenant, &entity.id, REFERENCES, dst),
            edge_value(1.0, &entity.modified_at),
        ));
        out.push((
            ColumnFamily::EdgesRev,
            reverse_key(tenant, dst, REFERENCES, &entity.id),
            vec![],
        ));
    }
    out
}

fn corrupt(what: &str) -> Error {
    Error::Storage(rem_storage::StorageError::Corrupt(format!("edge {what}")))
}

fn decode(key: &[u8], value: &[u8]) -> Result<Edge> {
    let mut r = KeyReader::new(key);
    r.str().map_err(|_| corrupt("key"))?;
    let src = EntityId::from_slice(r.raw(16).map_err(|_| corrupt("key"))?)
        .ok_or_else(|| corrupt("source id"))?;
    let edge_type = r.str().map_err(|_| corrupt("type"))?;
    let dst = r.str().map_err(|_| corrupt("target"))?;
    let weight = f64::from_be_bytes(
        value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("value"))?,
    );
    let micros = i64::from_be_bytes(
        value
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("value"))?,
    );
    Ok(Edge {
        src,
        dst,
        edge_type,
        weight,
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("time"))?,
    })
}

impl Database {
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
                let prefix = KeyBuf::new().str(tenant).raw(src.as_bytes()).into_bytes();
                for item in self.store().scan_prefix(ColumnFamily::Edges, &prefix)? {
                    let (k, v) = item?;
                    let e = decode(&k, &v)?;
                    if dst.is_some_and(|d| d != e.dst) || !is_live(self, &e.src)? {
                        continue;
                    }
                    if !visit(e) {
                        break;
                    }
                }
            }
            (None, Some(dst)) => {
                let prefix = KeyBuf::new().str(tenant).str(dst).into_bytes();
                for item in self.store().scan_prefix(ColumnFamily::EdgesRev, &prefix)? {
                    let (k, _) = item?;
                    let mut r = KeyReader::new(&k[prefix.len()..]);
                    let edge_type = r.str().map_err(|_| corrupt("type"))?;
                    let src = EntityId::from_slice(r.rest()).ok_or_else(|| corrupt("source"))?;
                    let key = edge_key(tenant, &src, &edge_type, dst);
                    let Some(v) = self.store().get(ColumnFamily::Edges, &key)? else {
                        continue;
                    };
                    let e = decode(&key, &v)?;
                    if !is_live(self, &e.src)? {
                        continue;
                    }
                    if !visit(e) {
                        break;
                    }
                }
            }
            (None, None) => {
                let prefix = KeyBuf::new().str(tenant).into_bytes();
                for item in self.store().scan_prefix(ColumnFamily::Edges, &prefix)? {
                    let (k, v) = item?;
                    let e = decode(&k, &v)?;
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
