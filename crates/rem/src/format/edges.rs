//! `edges` and `edges_rev`: edge keys in both directions, the edge value, and the
//! [`Edge`] they decode to (docs/format.md, "edges"). A target is stored as a string:
//! an id in its canonical text form, or a bare key as written.

use chrono::{DateTime, Utc};
use rem_storage::{KeyBuf, KeyReader, ValueCodec};
use serde_json::{Map, Value};

use crate::format::indexes::push_user_str;
use crate::{EntityId, Error, Result};

/// Value flag: the edge was added explicitly (not derived from an `edges` list).
const FLAG_EXPLICIT: u8 = 1;
/// Value flag: the value carries the edge's type and target (encrypted databases,
/// whose keys hold only their keyed hashes).
const FLAG_NAMES: u8 = 2;

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

/// An edge type inside a key: `str(type)`, or its keyed hash in an encrypted database.
fn push_type(key: &mut KeyBuf, codec: &dyn ValueCodec, tenant: &str, edge_type: &str) {
    let parts: [&[u8]; 3] = [b"edge type", tenant.as_bytes(), edge_type.as_bytes()];
    push_user_str(key, codec, &parts, edge_type);
}

/// An edge target inside a key: `str(dst)`, or its keyed hash in an encrypted database.
fn push_target(key: &mut KeyBuf, codec: &dyn ValueCodec, tenant: &str, dst: &str) {
    let parts: [&[u8]; 3] = [b"edge target", tenant.as_bytes(), dst.as_bytes()];
    push_user_str(key, codec, &parts, dst);
}

/// `edges` key: `str(tenant) | src[16] | str(type) | str(dst)`. In an encrypted
/// database type and target are keyed hashes (16 bytes each) and the value carries
/// them ([`edge_value`]); prefix scans by source, and by source and type, work alike.
pub(crate) fn edge_key(
    codec: &dyn ValueCodec,
    tenant: &str,
    src: &EntityId,
    edge_type: &str,
    dst: &str,
) -> Vec<u8> {
    let mut k = KeyBuf::new().str(tenant).raw(src.as_bytes());
    push_type(&mut k, codec, tenant, edge_type);
    push_target(&mut k, codec, tenant, dst);
    k.into_bytes()
}

/// Prefix of the edges leaving `src`.
pub(crate) fn out_prefix(tenant: &str, src: &EntityId) -> Vec<u8> {
    KeyBuf::new().str(tenant).raw(src.as_bytes()).into_bytes()
}

/// Prefix of the edges of type `edge_type` leaving `src`.
pub(crate) fn out_type_prefix(
    codec: &dyn ValueCodec,
    tenant: &str,
    src: &EntityId,
    edge_type: &str,
) -> Vec<u8> {
    let mut k = KeyBuf::new().str(tenant).raw(src.as_bytes());
    push_type(&mut k, codec, tenant, edge_type);
    k.into_bytes()
}

/// `edges_rev` key: `str(tenant) | str(dst) | str(type) | src[16]`, with type and
/// target as keyed hashes in an encrypted database (see [`reverse_value`]).
pub(crate) fn reverse_key(
    codec: &dyn ValueCodec,
    tenant: &str,
    dst: &str,
    edge_type: &str,
    src: &EntityId,
) -> Vec<u8> {
    let mut k = KeyBuf::new().str(tenant);
    push_target(&mut k, codec, tenant, dst);
    push_type(&mut k, codec, tenant, edge_type);
    k.push_raw(src.as_bytes());
    k.into_bytes()
}

/// `edges_rev` value: empty in a plain database (the key holds the names);
/// `str(type) | str(dst)` in an encrypted one.
pub(crate) fn reverse_value(codec: &dyn ValueCodec, edge_type: &str, dst: &str) -> Vec<u8> {
    if codec.is_encrypted() {
        KeyBuf::new().str(edge_type).str(dst).into_bytes()
    } else {
        Vec::new()
    }
}

/// Prefix of the reverse entries of edges reaching `dst`.
pub(crate) fn in_prefix(codec: &dyn ValueCodec, tenant: &str, dst: &str) -> Vec<u8> {
    let mut k = KeyBuf::new().str(tenant);
    push_target(&mut k, codec, tenant, dst);
    k.into_bytes()
}

/// `(type, dst)` from the part of a plain `edges` key after its [`out_prefix`].
pub(crate) fn parse_out_suffix(rest: &[u8]) -> rem_storage::Result<(String, String)> {
    let mut r = KeyReader::new(rest);
    let edge_type = r.str()?;
    let dst = r.str()?;
    Ok((edge_type, dst))
}

/// `(type, dst)` of an `edges` entry, given the part of its key after [`out_prefix`]
/// and its value: from the value when it carries them (encrypted databases), else from
/// the key.
pub(crate) fn out_names(rest: &[u8], value: &[u8]) -> Result<(String, String)> {
    match value_names(value)? {
        Some((names, _)) => Ok(names),
        None => parse_out_suffix(rest).map_err(|_| corrupt("key")),
    }
}

/// `(type, src)` from the part of a plain `edges_rev` key after its [`in_prefix`]; the
/// source is `None` when the rest is not 16 bytes.
pub(crate) fn parse_in_suffix(rest: &[u8]) -> rem_storage::Result<(String, Option<EntityId>)> {
    let mut r = KeyReader::new(rest);
    let edge_type = r.str()?;
    Ok((edge_type, EntityId::from_slice(r.rest())))
}

/// `(type, src)` of an `edges_rev` entry, given the part of its key after
/// [`in_prefix`] and its value ([`reverse_value`]).
pub(crate) fn in_names(rest: &[u8], value: &[u8]) -> Result<(String, Option<EntityId>)> {
    if value.is_empty() {
        return parse_in_suffix(rest).map_err(|_| corrupt("type"));
    }
    let mut r = KeyReader::new(value);
    let edge_type = r.str().map_err(|_| corrupt("type"))?;
    let src = rest
        .len()
        .checked_sub(16)
        .and_then(|at| EntityId::from_slice(&rest[at..]));
    Ok((edge_type, src))
}

/// `(tenant, src, type, dst)` of a plain `edges` key, `None` when it does not decode.
pub(crate) fn parse_edge_key(key: &[u8]) -> Option<(String, EntityId, String, String)> {
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let src = EntityId::from_slice(r.raw(16).ok()?)?;
    let edge_type = r.str().ok()?;
    let dst = r.str().ok()?;
    Some((tenant, src, edge_type, dst))
}

/// `(tenant, src, type, dst)` of an `edges` entry (names from its value when it
/// carries them), `None` when it does not decode.
pub(crate) fn parse_edge_entry(
    key: &[u8],
    value: &[u8],
) -> Option<(String, EntityId, String, String)> {
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let src = EntityId::from_slice(r.raw(16).ok()?)?;
    let (edge_type, dst) = out_names(r.rest(), value).ok()?;
    Some((tenant, src, edge_type, dst))
}

/// `(tenant, src, type, dst)` of a plain `edges_rev` key, `None` when it does not
/// decode.
pub(crate) fn parse_reverse_key(key: &[u8]) -> Option<(String, EntityId, String, String)> {
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let dst = r.str().ok()?;
    let edge_type = r.str().ok()?;
    let src = EntityId::from_slice(r.rest())?;
    Some((tenant, src, edge_type, dst))
}

/// `(tenant, src, type, dst)` of an `edges_rev` entry (names from its value when it
/// carries them), `None` when it does not decode.
pub(crate) fn parse_reverse_entry(
    key: &[u8],
    value: &[u8],
) -> Option<(String, EntityId, String, String)> {
    if value.is_empty() {
        return parse_reverse_key(key);
    }
    let mut r = KeyReader::new(key);
    let tenant = r.str().ok()?;
    let src = EntityId::from_slice(key.get(key.len().checked_sub(16)?..)?)?;
    let mut v = KeyReader::new(value);
    let edge_type = v.str().ok()?;
    let dst = v.str().ok()?;
    Some((tenant, src, edge_type, dst))
}

/// Edge value: `weight f64 BE | created_at µs i64 BE | flags u8 | properties JSON`
/// (the JSON only when there are properties). In an encrypted database flag `02` is
/// set and `str(type) | str(dst)` follow the flags (the key holds only their hashes).
/// Derived edges written before flags existed are the first 16 bytes alone.
pub(crate) fn edge_value(
    codec: &dyn ValueCodec,
    edge_type: &str,
    dst: &str,
    weight: f64,
    created_at: &DateTime<Utc>,
    explicit: bool,
    properties: &Map<String, Value>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&created_at.timestamp_micros().to_be_bytes());
    let mut flags = if explicit { FLAG_EXPLICIT } else { 0 };
    if codec.is_encrypted() {
        flags |= FLAG_NAMES;
    }
    v.push(flags);
    if codec.is_encrypted() {
        v.extend_from_slice(&KeyBuf::new().str(edge_type).str(dst).into_bytes());
    }
    if !properties.is_empty() {
        v.extend_from_slice(&serde_json::to_vec(properties).unwrap_or_default());
    }
    v
}

/// The names an edge value carries (flag `02`), and where its properties start.
fn value_names(value: &[u8]) -> Result<Option<((String, String), usize)>> {
    if value.get(16).is_none_or(|f| f & FLAG_NAMES == 0) {
        return Ok(None);
    }
    let mut r = KeyReader::new(&value[17..]);
    let edge_type = r.str().map_err(|_| corrupt("type"))?;
    let dst = r.str().map_err(|_| corrupt("target"))?;
    let end = value.len() - r.rest().len();
    Ok(Some(((edge_type, dst), end)))
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
    let (edge_type, dst) = out_names(r.rest(), value)?;
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
    let start = value_names(value)?.map_or(17, |(_, end)| end);
    let properties = match value.get(start..) {
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
    use rem_storage::{ColumnFamily, PlainCodec, StorageError};
    use serde_json::json;

    const PLAIN: &PlainCodec = &PlainCodec;

    /// A codec that blinds as an encrypted database does (a hash of the parts), for
    /// the layouts; its values are not sealed.
    #[derive(Debug)]
    struct Blinding;

    impl ValueCodec for Blinding {
        fn encode(
            &self,
            _: ColumnFamily,
            _: &[u8],
            v: &[u8],
        ) -> std::result::Result<Vec<u8>, StorageError> {
            Ok(v.to_vec())
        }
        fn decode(
            &self,
            _: ColumnFamily,
            _: &[u8],
            v: &[u8],
        ) -> std::result::Result<Vec<u8>, StorageError> {
            Ok(v.to_vec())
        }
        fn blind(&self, parts: &[&[u8]]) -> Option<[u8; 16]> {
            let mut h = blake3::Hasher::new();
            for p in parts {
                h.update(&(p.len() as u64).to_be_bytes());
                h.update(p);
            }
            let mut out = [0u8; 16];
            out.copy_from_slice(&h.finalize().as_bytes()[..16]);
            Some(out)
        }
        fn is_encrypted(&self) -> bool {
            true
        }
    }

    #[test]
    fn golden_keys_and_value() {
        // These bytes are part of the on-disk format (docs/format.md, "edges").
        let src = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let mut key = b"t\x00\x01".to_vec();
        key.extend_from_slice(src.as_bytes());
        key.extend_from_slice(b"references\x00\x01k\x00\x01");
        assert_eq!(edge_key(PLAIN, "t", &src, "references", "k"), key);
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
        assert_eq!(reverse_key(PLAIN, "t", "k", "references", &src), rev);
        assert_eq!(in_prefix(PLAIN, "t", "k"), b"t\x00\x01k\x00\x01");
        assert_eq!(
            parse_in_suffix(&rev[in_prefix(PLAIN, "t", "k").len()..]).unwrap(),
            ("references".into(), Some(src))
        );
        assert_eq!(
            parse_reverse_key(&rev),
            Some(("t".into(), src, "references".into(), "k".into()))
        );

        let t = DateTime::from_timestamp_micros(1_000_000).unwrap();
        let derived = edge_value(PLAIN, "references", "k", 1.0, &t, false, &Map::new());
        assert_eq!(
            derived,
            [0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0F, 0x42, 0x40, 0]
        );
        assert!(!is_explicit(&derived));
        let props = json!({"a": 1}).as_object().cloned().unwrap();
        let explicit = edge_value(PLAIN, "references", "k", 0.5, &t, true, &props);
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
        assert_eq!(reverse_value(PLAIN, "references", "k"), b"");
    }

    /// With keyed hashes, keys hold no type or target; the values carry them, every
    /// reader gets them back, and prefix scans by source, by source and type, and by
    /// target still select exactly their edges.
    #[test]
    fn blinded_keys_carry_no_names_and_read_back() {
        let b = &Blinding;
        let src = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let key = edge_key(b, "t", &src, "cites", "person:ada");
        let holds = |k: &[u8], s: &str| k.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!holds(&key, "cites") && !holds(&key, "ada"));
        assert_eq!(key.len(), 3 + 16 + 16 + 16);
        assert!(key.starts_with(&out_prefix("t", &src)));
        assert!(key.starts_with(&out_type_prefix(b, "t", &src, "cites")));
        assert!(!key.starts_with(&out_type_prefix(b, "t", &src, "cite")));
        assert_ne!(
            key,
            edge_key(b, "u", &src, "cites", "person:ada"),
            "tenants differ"
        );
        let t = DateTime::from_timestamp_micros(7).unwrap();
        let props = json!({"why": "x"}).as_object().cloned().unwrap();
        let value = edge_value(b, "cites", "person:ada", 2.0, &t, true, &props);
        assert!(is_explicit(&value));
        let rest = &key[out_prefix("t", &src).len()..];
        assert_eq!(
            out_names(rest, &value).unwrap(),
            ("cites".into(), "person:ada".into())
        );
        let edge = decode_edge(&key, &value).unwrap();
        assert_eq!(
            (edge.edge_type.as_str(), edge.dst.as_str(), edge.weight),
            ("cites", "person:ada", 2.0)
        );
        assert_eq!((edge.created_at, edge.properties), (t, props));
        assert_eq!(
            parse_edge_entry(&key, &value),
            Some(("t".into(), src, "cites".into(), "person:ada".into()))
        );
        let rev = reverse_key(b, "t", "person:ada", "cites", &src);
        assert!(!holds(&rev, "cites") && !holds(&rev, "ada"));
        assert!(rev.starts_with(&in_prefix(b, "t", "person:ada")));
        let rev_value = reverse_value(b, "cites", "person:ada");
        assert_eq!(
            in_names(&rev[in_prefix(b, "t", "person:ada").len()..], &rev_value).unwrap(),
            ("cites".into(), Some(src))
        );
        assert_eq!(
            parse_reverse_entry(&rev, &rev_value),
            Some(("t".into(), src, "cites".into(), "person:ada".into()))
        );
    }
}
