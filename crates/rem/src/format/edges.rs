//! `edges` and `edges_rev`: edge keys in both directions, the edge value, and the
//! [`Edge`] they decode to (docs/format.md, "edges"). A target is stored as a string:
//! an id in its canonical text form, or a bare key as written.

use chrono::{DateTime, Utc};
use rem_storage::{KeyBuf, KeyReader};
use serde_json::{Map, Value};

use crate::{EntityId, Error, Result};

/// Value flag: the edge was added explicitly (not derived from an `edges` list).
const FLAG_EXPLICIT: u8 = 1;

/// One directed edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Source entity.
    pub src: EntityId,
    /// Target: an entity id, or a bare key as written in the source's `edges`.
    pub dst: String,
    /// Edge type.
    pub edge_type: String,
    /// Weight (1.0 unless given).
    pub weight: f64,
    /// When the edge first appeared.
    pub created_at: DateTime<Utc>,
    /// Properties given when the edge was added (empty for `references`).
    pub properties: Map<String, Value>,
}

impl Edge {
    /// The target's id, when the target is stored as one.
    pub fn dst_id(&self) -> Option<EntityId> {
        target_id(&self.dst)
    }
}

/// The id a stored target names, if it is an id.
pub(crate) fn target_id(dst: &str) -> Option<EntityId> {
    if dst.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(dst).ok().map(EntityId)
}

/// `edges` key: `str(tenant) | src[16] | str(type) | str(dst)`.
pub(crate) fn edge_key(tenant: &str, src: &EntityId, edge_type: &str, dst: &str) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .raw(src.as_bytes())
        .str(edge_type)
        .str(dst)
        .into_bytes()
}

/// Prefix of the edges leaving `src`.
pub(crate) fn out_prefix(tenant: &str, src: &EntityId) -> Vec<u8> {
    KeyBuf::new().str(tenant).raw(src.as_bytes()).into_bytes()
}

/// `edges_rev` key: `str(tenant) | str(dst) | str(type) | src[16]` (value empty).
pub(crate) fn reverse_key(tenant: &str, dst: &str, edge_type: &str, src: &EntityId) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(dst)
        .str(edge_type)
        .raw(src.as_bytes())
        .into_bytes()
}

/// Prefix of the reverse entries of edges reaching `dst`.
pub(crate) fn in_prefix(tenant: &str, dst: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).str(dst).into_bytes()
}

/// `(type, dst)` from the part of an `edges` key after its [`out_prefix`].
pub(crate) fn parse_out_suffix(rest: &[u8]) -> rem_storage::Result<(String, String)> {
    let mut r = KeyReader::new(rest);
    let edge_type = r.str()?;
    let dst = r.str()?;
    Ok((edge_type, dst))
}

/// `(type, src)` from the part of an `edges_rev` key after its [`in_prefix`]; the
/// source is `None` when the rest is not 16 bytes.
pub(crate) fn parse_in_suffix(rest: &[u8]) -> rem_storage::Result<(String, Option<EntityId>)> {
    let mut r = KeyReader::new(rest);
    let edge_type = r.str()?;
    Ok((edge_type, EntityId::from_slice(r.rest())))
}

/// `(tenant, src, type, dst)` of an `edges` key, `None` when it does not decode.
pub(crate) fn parse_edge_key(key: &[u8]) -> Option<(String, EntityId, String, String)> {
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let src = EntityId::from_slice(r.raw(16).ok()?)?;
    let edge_type = r.str().ok()?;
    let dst = r.str().ok()?;
    Some((tenant, src, edge_type, dst))
}

/// `(tenant, src, type, dst)` of an `edges_rev` key, `None` when it does not decode.
pub(crate) fn parse_reverse_key(key: &[u8]) -> Option<(String, EntityId, String, String)> {
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let dst = r.str().ok()?;
    let edge_type = r.str().ok()?;
    let src = EntityId::from_slice(r.rest())?;
    Some((tenant, src, edge_type, dst))
}

/// Edge value: `weight f64 BE | created_at µs i64 BE | flags u8 | properties JSON`
/// (the JSON only when there are properties). Derived edges written before flags
/// existed are the first 16 bytes alone.
pub(crate) fn edge_value(
    weight: f64,
    created_at: &DateTime<Utc>,
    explicit: bool,
    properties: &Map<String, Value>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&created_at.timestamp_micros().to_be_bytes());
    v.push(if explicit { FLAG_EXPLICIT } else { 0 });
    if !properties.is_empty() {
        v.extend_from_slice(&serde_json::to_vec(properties).unwrap_or_default());
    }
    v
}

/// Whether a stored edge value marks an explicit edge.
pub(crate) fn is_explicit(value: &[u8]) -> bool {
    value.get(16).is_some_and(|f| f & FLAG_EXPLICIT != 0)
}

/// A corrupt-data error about an edge (`what` names the part).
pub(crate) fn corrupt(what: &str) -> Error {
    Error::Storage(rem_storage::StorageError::Corrupt(format!("edge {what}")))
}

/// Decodes an `edges` entry.
pub(crate) fn decode_edge(key: &[u8], value: &[u8]) -> Result<Edge> {
    let mut r = KeyReader::new(key);
    r.str().map_err(|_| corrupt("key"))?;
    let src = EntityId::from_slice(r.raw(16).map_err(|_| corrupt("key"))?)
        .ok_or_else(|| corrupt("source id"))?;
    let edge_type = r.str().map_err(|_| corrupt("type"))?;
    let dst = r.str().map_err(|_| corrupt("target"))?;
    edge_from_value(src, edge_type, dst, value)
}

/// The edge `src -[edge_type]-> dst` whose stored value is `value`.
pub(crate) fn edge_from_value(
    src: EntityId,
    edge_type: String,
    dst: String,
    value: &[u8],
) -> Result<Edge> {
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
    let properties = match value.get(17..) {
        Some(json) if !json.is_empty() => {
            serde_json::from_slice(json).map_err(|_| corrupt("properties"))?
        }
        _ => Map::new(),
    };
    Ok(Edge {
        src,
        dst,
        edge_type,
        weight,
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("time"))?,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn golden_keys_and_value() {
        // These bytes are part of the on-disk format (docs/format.md, "edges").
        let src = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let mut key = b"t\x00\x01".to_vec();
        key.extend_from_slice(src.as_bytes());
        key.extend_from_slice(b"references\x00\x01k\x00\x01");
        assert_eq!(edge_key("t", &src, "references", "k"), key);
        assert!(key.starts_with(&out_prefix("t", &src)));
        assert_eq!(
            parse_out_suffix(&key[out_prefix("t", &src).len()..]).unwrap(),
            ("references".into(), "k".into())
        );
        assert_eq!(
            parse_edge_key(&key),
            Some(("t".into(), src, "references".into(), "k".into()))
        );
        let mut rev = b"t\x00\x01k\x00\x01references\x00\x01".to_vec();
        rev.extend_from_slice(src.as_bytes());
        assert_eq!(reverse_key("t", "k", "references", &src), rev);
        assert_eq!(in_prefix("t", "k"), b"t\x00\x01k\x00\x01");
        assert_eq!(
            parse_in_suffix(&rev[in_prefix("t", "k").len()..]).unwrap(),
            ("references".into(), Some(src))
        );
        assert_eq!(
            parse_reverse_key(&rev),
            Some(("t".into(), src, "references".into(), "k".into()))
        );

        let t = DateTime::from_timestamp_micros(1_000_000).unwrap();
        let derived = edge_value(1.0, &t, false, &Map::new());
        assert_eq!(
            derived,
            [0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0F, 0x42, 0x40, 0]
        );
        assert!(!is_explicit(&derived));
        let props = json!({"a": 1}).as_object().cloned().unwrap();
        let explicit = edge_value(0.5, &t, true, &props);
        assert_eq!(&explicit[16..], b"\x01{\"a\":1}");
        assert!(is_explicit(&explicit));
        let edge = decode_edge(&key, &explicit).unwrap();
        assert_eq!(
            (edge.weight, edge.created_at, edge.properties),
            (0.5, t, props)
        );
        // Values written before flags existed: weight and time only.
        assert_eq!(decode_edge(&key, &derived[..16]).unwrap().weight, 1.0);
        assert_eq!(target_id(&src.to_string()), Some(src));
        assert_eq!(target_id("person:ada"), None);
    }
}
