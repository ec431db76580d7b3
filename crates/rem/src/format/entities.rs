//! `entities`: an entity's key (`str(tenant) | str(table) | id`) and its encoding
//! (docs/format.md, "entities"). The same encoding is carried by change-log records.

use chrono::{DateTime, Utc};
use rem_storage::{KeyBuf, KeyReader};
use serde_json::{Map, Value};

use crate::{Entity, EntityId, Error, Result};

/// The version byte that starts every entity encoding.
const VERSION: u8 = 1;

/// Where `deleted_at` sits in an encoding: after the version, the id and two times.
const DELETED_AT: std::ops::Range<usize> = 33..41;

/// `deleted_at` of an entity that is not deleted.
const NOT_DELETED: i64 = i64::MIN;

/// `entities` key: `str(tenant) | str(table) | id`.
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

/// Among the keys under `table_prefix` (an [`entity_prefix`]), the first one whose id
/// starts with the byte `first` (0..=255); `first` = 256 gives the end of the table
/// (`None` when the prefix has no successor). A shard of a table scan reads the ids
/// whose first byte lies in `[lo, hi)`.
pub(crate) fn entity_shard_bound(table_prefix: &[u8], first: u32) -> Option<Vec<u8>> {
    match u8::try_from(first) {
        Ok(b) => Some([table_prefix, &[b]].concat()),
        Err(_) => rem_storage::prefix_successor(table_prefix),
    }
}

/// `(tenant, table, id)` of an `entities` key: `None` when the tenant or table do not
/// decode; the id is `None` when the rest is not 16 bytes.
pub(crate) fn parse_entity_key(key: &[u8]) -> Option<(String, String, Option<EntityId>)> {
    let mut r = KeyReader::new(key);
    let (Ok(tenant), Ok(table)) = (r.str(), r.str()) else {
        return None;
    };
    Some((tenant, table, EntityId::from_slice(r.rest())))
}

/// `(table, id)` of an `entities` key, from the part after its tenant prefix.
pub(crate) fn parse_entity_key_in_tenant(rest: &[u8]) -> Result<(String, EntityId)> {
    let mut r = KeyReader::new(rest);
    let table = r.str()?;
    let id = EntityId::from_slice(r.rest())
        .ok_or_else(|| Error::Storage(rem_storage::StorageError::Corrupt("entity key".into())))?;
    Ok((table, id))
}

impl Entity {
    /// Encodes the entity for the `entities` column family (format v1, docs/format.md):
    /// `01 | id[16] | created i64 | modified i64 | deleted i64 | n u32 | (len u32, edge)* |
    /// properties JSON`. Integers are big-endian; a null `deleted_at` is `i64::MIN`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let props = serde_json::to_vec(&self.properties).unwrap_or_default();
        let mut out = Vec::with_capacity(45 + props.len());
        out.push(VERSION);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        out.extend_from_slice(&self.modified_at.timestamp_micros().to_be_bytes());
        let deleted = self
            .deleted_at
            .map(|t| t.timestamp_micros())
            .unwrap_or(NOT_DELETED);
        out.extend_from_slice(&deleted.to_be_bytes());
        out.extend_from_slice(&(self.edges.len() as u32).to_be_bytes());
        for e in &self.edges {
            out.extend_from_slice(&(e.len() as u32).to_be_bytes());
            out.extend_from_slice(e.as_bytes());
        }
        out.extend_from_slice(&props);
        out
    }

    /// Decodes [`Entity::encode`]'s bytes; `table` comes from the key.
    pub(crate) fn decode(table: &str, bytes: &[u8]) -> Result<Entity> {
        Self::decode_with(table, bytes, None)
    }

    /// [`Entity::decode`] keeping only the properties named in `only` (when given):
    /// other values are parsed over without being built.
    pub(crate) fn decode_with(
        table: &str,
        bytes: &[u8],
        only: Option<&[String]>,
    ) -> Result<Entity> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(corrupt("unknown entity encoding version"));
        }
        let id = EntityId::from_slice(r.take(16)?).ok_or_else(|| corrupt("bad id"))?;
        let created_at = micros_to_ts(r.i64()?)?;
        let modified_at = micros_to_ts(r.i64()?)?;
        let deleted = r.i64()?;
        let deleted_at = if deleted == NOT_DELETED {
            None
        } else {
            Some(micros_to_ts(deleted)?)
        };
        let n = r.u32()? as usize;
        let mut edges = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = r.u32()? as usize;
            let s = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt("edge not UTF-8"))?;
            edges.push(s.to_string());
        }
        let properties = match only {
            None => serde_json::from_slice(r.0),
            Some(names) => {
                let mut de = serde_json::Deserializer::from_slice(r.0);
                serde::de::DeserializeSeed::deserialize(Projected(names), &mut de)
                    .and_then(|m| de.end().map(|()| m))
            }
        }
        .map_err(|e| corrupt(&format!("properties: {e}")))?;
        Ok(Entity {
            id,
            table: table.to_string(),
            created_at,
            modified_at,
            deleted_at,
            edges,
            properties,
        })
    }

    /// Reads `deleted_at` straight from encoded bytes (counting rows without decoding).
    pub(crate) fn raw_is_deleted(bytes: &[u8]) -> bool {
        bytes
            .get(DELETED_AT)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .is_some_and(|b| i64::from_be_bytes(b) != NOT_DELETED)
    }
}

/// Whether encoded entity bytes ([`Entity::encode`]) are soft-deleted, read from the
/// fixed header without decoding the rest.
pub(crate) fn is_deleted_encoded(bytes: &[u8]) -> Result<bool> {
    match bytes.get(DELETED_AT) {
        Some(b) if bytes[0] == VERSION => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(i64::from_be_bytes(a) != NOT_DELETED)
        }
        _ => Err(corrupt("entity header")),
    }
}

/// Deserializes a JSON object keeping only the named members.
struct Projected<'n>(&'n [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Projected<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        de: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Projected<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Map::with_capacity(self.0.len());
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.0.iter().any(|n| n.as_str() == key.as_ref()) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        de: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_string()))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("entity truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i64(&mut self) -> Result<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(b))
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Storage(rem_storage::StorageError::Corrupt(format!(
        "entity: {what}"
    )))
}

fn micros_to_ts(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("timestamp out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::now;
    use serde_json::json;

    #[test]
    fn encode_round_trip() {
        let e = Entity {
            id: EntityId::from_key("t", "x", "k"),
            table: "x".into(),
            created_at: now(),
            modified_at: now(),
            deleted_at: Some(now()),
            edges: vec!["a".into(), "résumé".into()],
            properties: json!({"name": "k", "n": 1.5, "nested": {"a": [1, 2]}})
                .as_object()
                .cloned()
                .unwrap(),
        };
        assert_eq!(Entity::decode("x", &e.encode()).unwrap(), e);
        assert!(Entity::decode("x", &e.encode()[..20]).is_err());
        let only = ["b".to_string()];
        let projected = Entity::decode_with("x", &e.encode(), Some(&only)).unwrap();
        let mut want = e.properties.clone();
        want.retain(|k, _| k == "b");
        assert_eq!(projected.properties, want);
        assert!(Entity::raw_is_deleted(&e.encode()));
        assert!(is_deleted_encoded(&e.encode()).unwrap());
    }

    /// Numbers survive any number of reads and writes bit for bit (the fuzz finding:
    /// serde_json's default float parser moved some by one ulp; `float_roundtrip`).
    #[test]
    fn floats_round_trip_exactly() {
        let text = r#"{"big": 84444444444488888888888888888888888888888888888888,
            "sum": 0.30000000000000004, "tiny": 5e-324, "min": 2.2250738585072014e-308,
            "max": 1.7976931348623157e308, "third": 0.3333333333333333}"#;
        let properties: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).unwrap();
        let mut e = Entity {
            id: EntityId::from_key("t", "x", "k"),
            table: "x".into(),
            created_at: now(),
            modified_at: now(),
            deleted_at: None,
            edges: vec![],
            properties,
        };
        let first = e.properties.clone();
        for _ in 0..3 {
            e = Entity::decode("x", &e.encode()).unwrap();
        }
        for (k, v) in &first {
            assert_eq!(
                e.properties[k].as_f64().unwrap().to_bits(),
                v.as_f64().unwrap().to_bits(),
                "{k}"
            );
        }
    }

    #[test]
    fn golden_key_and_encoding() {
        // These bytes are part of the on-disk format (docs/format.md, "entities").
        let id = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let mut key = b"default\x00\x01person\x00\x01".to_vec();
        key.extend_from_slice(id.as_bytes());
        assert_eq!(entity_key_bytes("default", "person", &id), key);
        assert_eq!(
            entity_prefix("default", "person"),
            b"default\x00\x01person\x00\x01"
        );
        assert_eq!(
            parse_entity_key(&key),
            Some(("default".into(), "person".into(), Some(id)))
        );
        assert_eq!(
            parse_entity_key_in_tenant(&key[b"default\x00\x01".len()..]).unwrap(),
            ("person".into(), id)
        );
        let prefix = entity_prefix("default", "person");
        assert_eq!(
            entity_shard_bound(&prefix, 7).unwrap(),
            [prefix.as_slice(), &[7]].concat()
        );
        assert_eq!(
            entity_shard_bound(&prefix, 256),
            rem_storage::prefix_successor(&prefix)
        );

        let t = DateTime::from_timestamp_micros(1_000_000).unwrap();
        let e = Entity {
            id,
            table: "person".into(),
            created_at: t,
            modified_at: t,
            deleted_at: None,
            edges: vec!["ab".into()],
            properties: json!({"k": 1}).as_object().cloned().unwrap(),
        };
        let mut want = vec![0x01];
        want.extend_from_slice(id.as_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]); // created_at
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]); // modified_at
        want.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]); // not deleted
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // one edge of 2 bytes
        want.extend_from_slice(b"ab{\"k\":1}");
        assert_eq!(e.encode(), want);
        assert!(!Entity::raw_is_deleted(&want));
        assert!(!is_deleted_encoded(&want).unwrap());
    }
}
