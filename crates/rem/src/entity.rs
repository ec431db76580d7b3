//! Entities: a record of some table plus the system fields, and its stored encoding.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::{EntityId, Error, Result};

/// Names reserved for system fields; records cannot set them as properties (`id` is
/// honoured as the entity id, `edges` as the edge list, the rest are ignored).
pub const SYSTEM_FIELDS: [&str; 8] = [
    "id",
    "entity_type",
    "created_at",
    "modified_at",
    "deleted_at",
    "edges",
    "embedding",
    "embedding_alt",
];

/// A stored entity: system fields and the record's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The id (deterministic from the key, or random).
    pub id: EntityId,
    /// The table (schema) name, `entity_type` in output.
    pub table: String,
    /// Creation time; kept on upsert.
    pub created_at: DateTime<Utc>,
    /// Time of the last write.
    pub modified_at: DateTime<Utc>,
    /// Soft-delete time, if deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Ids or qualified keys of related entities.
    pub edges: Vec<String>,
    /// The record's own fields, as validated against the schema.
    pub properties: Map<String, Value>,
}

impl Entity {
    /// True when soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The entity as one flat JSON object: system fields first, then the properties.
    pub fn to_json(&self) -> Value {
        let mut out = Map::with_capacity(self.properties.len() + 6);
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert("entity_type".into(), Value::String(self.table.clone()));
        out.insert(
            "created_at".into(),
            Value::String(format_ts(&self.created_at)),
        );
        out.insert(
            "modified_at".into(),
            Value::String(format_ts(&self.modified_at)),
        );
        out.insert(
            "deleted_at".into(),
            self.deleted_at
                .as_ref()
                .map(|t| Value::String(format_ts(t)))
                .unwrap_or(Value::Null),
        );
        out.insert(
            "edges".into(),
            Value::Array(self.edges.iter().cloned().map(Value::String).collect()),
        );
        for (k, v) in &self.properties {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }

    /// A field by name: system fields, else a property (`None` when absent).
    pub fn field(&self, name: &str) -> Option<Value> {
        match name {
            "id" => Some(Value::String(self.id.to_string())),
            "entity_type" => Some(Value::String(self.table.clone())),
            "created_at" => Some(Value::String(format_ts(&self.created_at))),
            "modified_at" => Some(Value::String(format_ts(&self.modified_at))),
            "deleted_at" => Some(
                self.deleted_at
                    .as_ref()
                    .map(|t| Value::String(format_ts(t)))
                    .unwrap_or(Value::Null),
            ),
            "edges" => Some(Value::Array(
                self.edges.iter().cloned().map(Value::String).collect(),
            )),
            _ => self.properties.get(name).cloned(),
        }
    }

    /// Encodes the entity for the `entities` column family (format v1, docs/format.md):
    /// `01 | id[16] | created i64 | modified i64 | deleted i64 | n u32 | (len u32, edge)* |
    /// properties JSON`. Integers are big-endian; a null `deleted_at` is `i64::MIN`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let props = serde_json::to_vec(&self.properties).unwrap_or_default();
        let mut out = Vec::with_capacity(45 + props.len());
        out.push(1u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        out.extend_from_slice(&self.modified_at.timestamp_micros().to_be_bytes());
        let deleted = self
            .deleted_at
            .map(|t| t.timestamp_micros())
            .unwrap_or(i64::MIN);
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
        if r.take(1)? != [1u8] {
            return Err(corrupt("unknown entity encoding version"));
        }
        let id = EntityId::from_slice(r.take(16)?).ok_or_else(|| corrupt("bad id"))?;
        let created_at = micros_to_ts(r.i64()?)?;
        let modified_at = micros_to_ts(r.i64()?)?;
        let deleted = r.i64()?;
        let deleted_at = if deleted == i64::MIN {
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

/// Whether encoded entity bytes ([`Entity::encode`]) are soft-deleted, read from the
/// fixed header without decoding the rest.
pub(crate) fn is_deleted_encoded(bytes: &[u8]) -> Result<bool> {
    match bytes.get(33..41) {
        Some(b) if bytes[0] == 1 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(i64::from_be_bytes(a) != i64::MIN)
        }
        _ => Err(corrupt("entity header")),
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

/// Formats a timestamp as RFC 3339 in UTC with microseconds, e.g.
/// `2025-10-24T10:30:00.000000Z`.
pub fn format_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 / ISO-8601 timestamp (a date alone means midnight UTC; a time
/// without offset is taken as UTC).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

fn micros_to_ts(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("timestamp out of range"))
}

/// Now, truncated to microseconds (the stored precision).
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl Entity {
    /// Reads `deleted_at` straight from encoded bytes (counting rows without decoding).
    pub(crate) fn raw_is_deleted(bytes: &[u8]) -> bool {
        bytes
            .get(33..41)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .is_some_and(|b| i64::from_be_bytes(b) != i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    #[test]
    fn timestamps() {
        let t = parse_ts("2025-10-24T10:30:00Z").unwrap();
        assert_eq!(format_ts(&t), "2025-10-24T10:30:00.000000Z");
        assert_eq!(
            parse_ts("2025-10-24").unwrap(),
            parse_ts("2025-10-24T00:00:00+00:00").unwrap()
        );
        assert!(parse_ts("yesterday").is_none());
    }
}
