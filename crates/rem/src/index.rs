//! Key layouts of entities and their index entries (docs/format.md), and the
//! order-preserving encoding of indexed values.
//!
//! Every key starts with the tenant as a string component, so no prefix scan of one
//! tenant can reach another tenant's keys: isolation holds by construction.

use std::collections::BTreeSet;

use rem_storage::{ColumnFamily, KeyBuf, KeyReader};
use serde_json::Value;

use crate::entity::parse_ts;
use crate::id::entity_key;
use crate::{Entity, EntityId, FieldType, Schema};

/// Tag bytes of indexed values; values of different tags never compare equal.
pub(crate) mod tag {
    pub(crate) const BOOL: u8 = 0x10;
    pub(crate) const INT: u8 = 0x20;
    pub(crate) const FLOAT: u8 = 0x21;
    pub(crate) const TIMESTAMP: u8 = 0x30;
    pub(crate) const STRING: u8 = 0x40;
}

/// `entities`: `tenant, table, id[16]`.
pub(crate) fn entity_key_bytes(tenant: &str, table: &str, id: &EntityId) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(table)
        .raw(id.as_bytes())
        .into_bytes()
}

/// Prefix of all entities of a table.
pub(crate) fn entity_prefix(tenant: &str, table: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).str(table).into_bytes()
}

/// `ids`: `tenant, id[16]` → table name.
pub(crate) fn id_key(tenant: &str, id: &EntityId) -> Vec<u8> {
    KeyBuf::new().str(tenant).raw(id.as_bytes()).into_bytes()
}

/// `key_index`: `tenant, key value, table, id[16]`.
pub(crate) fn key_index_key(tenant: &str, key: &str, table: &str, id: &EntityId) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(key)
        .str(table)
        .raw(id.as_bytes())
        .into_bytes()
}

/// Prefix of every key-index entry for `key`, across tables.
pub(crate) fn key_index_prefix(tenant: &str, key: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).str(key).into_bytes()
}

/// `field_index`: `tenant, table, field, tagged value, id[16]`.
pub(crate) fn field_prefix(tenant: &str, table: &str, field: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).str(table).str(field).into_bytes()
}

/// Decodes `(table, id)` from the part of a key-index key after its prefix.
pub(crate) fn parse_key_index_suffix(rest: &[u8]) -> Option<(String, EntityId)> {
    let mut r = KeyReader::new(rest);
    let table = r.str().ok()?;
    let id = EntityId::from_slice(r.raw(16).ok()?)?;
    Some((table, id))
}

/// The id at the end of any index key.
pub(crate) fn trailing_id(key: &[u8]) -> Option<EntityId> {
    key.len()
        .checked_sub(16)
        .and_then(|start| EntityId::from_slice(&key[start..]))
}

/// Encodes one scalar for a field of type `ty`: tag byte, then the order-preserving
/// value. `None` when the value cannot be indexed under that type (nulls, objects, an
/// unparseable timestamp, a fractional number for an integer field).
pub(crate) fn encode_scalar(ty: &FieldType, v: &Value) -> Option<Vec<u8>> {
    let b = match (ty, v) {
        (_, Value::Bool(x)) => KeyBuf::new().tag(tag::BOOL).tag(*x as u8),
        (FieldType::Integer, Value::Number(n)) => {
            let i = n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })?;
            KeyBuf::new().tag(tag::INT).i64(i)
        }
        (_, Value::Number(n)) => KeyBuf::new().tag(tag::FLOAT).f64(n.as_f64()?),
        (FieldType::Timestamp, Value::String(s)) => KeyBuf::new()
            .tag(tag::TIMESTAMP)
            .i64(parse_ts(s)?.timestamp_micros()),
        (_, Value::String(s)) => KeyBuf::new().tag(tag::STRING).str(s),
        _ => return None,
    };
    Some(b.into_bytes())
}

/// The type under which a field's values are indexed: the element type for arrays.
pub(crate) fn scalar_type(schema: &Schema, field: &str) -> FieldType {
    match schema.field_type(field) {
        Some(FieldType::Array(inner)) => (**inner).clone(),
        Some(other) => other.clone(),
        None => FieldType::Any,
    }
}

/// The tag byte under which values of a field type are stored (range scans stay
/// inside it).
pub(crate) fn tag_of(ty: &FieldType) -> Option<u8> {
    match ty {
        FieldType::Boolean => Some(tag::BOOL),
        FieldType::Integer => Some(tag::INT),
        FieldType::Number => Some(tag::FLOAT),
        FieldType::Timestamp => Some(tag::TIMESTAMP),
        FieldType::String => Some(tag::STRING),
        FieldType::Array(inner) => tag_of(inner),
        _ => None,
    }
}

/// Every encoded value under which `v` is indexed (one per array element).
pub(crate) fn index_values(ty: &FieldType, v: &Value) -> Vec<Vec<u8>> {
    match (ty, v) {
        (FieldType::Array(inner), Value::Array(items)) => {
            let set: BTreeSet<Vec<u8>> = items
                .iter()
                .filter_map(|i| encode_scalar(inner, i))
                .collect();
            set.into_iter().collect()
        }
        (_, Value::Array(items)) => {
            let set: BTreeSet<Vec<u8>> = items
                .iter()
                .filter_map(|i| encode_scalar(&FieldType::Any, i))
                .collect();
            set.into_iter().collect()
        }
        _ => encode_scalar(ty, v).into_iter().collect(),
    }
}

/// All index entries (family, key, value) that `entity` needs under `schema`. Used
/// on every write (old entries minus new ones are deleted) and by `verify`.
pub(crate) fn index_entries(
    tenant: &str,
    schema: &Schema,
    entity: &Entity,
    canonical: &dyn Fn(&str) -> Option<String>,
) -> Vec<(ColumnFamily, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(4 + schema.indexed_fields.len());
    out.push((
        ColumnFamily::Ids,
        id_key(tenant, &entity.id),
        entity.table.as_bytes().to_vec(),
    ));
    if let Some(key) = entity_key(schema.key_field.as_deref(), &entity.properties) {
        for k in std::iter::once(&key.value).chain(key.aliases.iter()) {
            out.push((
                ColumnFamily::KeyIndex,
                key_index_key(tenant, k, &entity.table, &entity.id),
                vec![],
            ));
        }
    }
    for field in &schema.indexed_fields {
        let Some(v) = entity.properties.get(field) else {
            continue;
        };
        let ty = schema.field_type(field).unwrap_or(&FieldType::Any);
        for enc in index_values(ty, v) {
            let mut key = KeyBuf::new().str(tenant).str(&entity.table).str(field);
            key.push_raw(&enc);
            key.push_raw(entity.id.as_bytes());
            out.push((ColumnFamily::FieldIndex, key.into_bytes(), vec![]));
        }
    }
    out.extend(crate::edges::edge_entries(tenant, entity, canonical));
    out
}
