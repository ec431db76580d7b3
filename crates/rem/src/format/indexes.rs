//! `ids`, `key_index` and `field_index`: the keys of the id map, the global key
//! index and the field indexes, and the tagged, order-preserving encoding of indexed
//! values (docs/format.md). Which entries an entity needs is decided in `index.rs`.

use std::collections::BTreeSet;

use rem_storage::{KeyBuf, KeyReader, ValueCodec};
use serde_json::Value;

use crate::entity::parse_ts;
use crate::{EntityId, Error, FieldType, Result};

/// Tag bytes of indexed values; values of different tags never compare equal.
mod tag {
    pub(super) const BOOL: u8 = 0x10;
    pub(super) const INT: u8 = 0x20;
    pub(super) const FLOAT: u8 = 0x21;
    pub(super) const TIMESTAMP: u8 = 0x30;
    pub(super) const STRING: u8 = 0x40;
}

/// `ids` key: `str(tenant) | id`.
pub(crate) fn id_key(tenant: &str, id: &EntityId) -> Vec<u8> {
    KeyBuf::new().str(tenant).raw(id.as_bytes()).into_bytes()
}

/// `ids` value: the entity's table name (UTF-8).
pub(crate) fn id_value(table: &str) -> &[u8] {
    table.as_bytes()
}

/// The table name an `ids` value holds.
pub(crate) fn parse_id_value(value: Vec<u8>) -> Result<String> {
    String::from_utf8(value).map_err(|_| {
        Error::Storage(rem_storage::StorageError::Corrupt(
            "table name not UTF-8".into(),
        ))
    })
}

/// A user's string inside a key: `str(value)` in a plain database; in an encrypted one
/// the codec's keyed hash of `parts` (16 bytes, fixed length, so prefix scans stay
/// exact), which shows equal values as equal and nothing else.
pub(crate) fn push_user_str(
    key: &mut KeyBuf,
    codec: &dyn ValueCodec,
    parts: &[&[u8]],
    value: &str,
) {
    match codec.blind(parts) {
        Some(hash) => key.push_raw(&hash),
        None => key.push_str(value),
    }
}

/// `key_index` key: `str(tenant) | str(key value) | str(table) | id` (value empty); in
/// an encrypted database the key value is its keyed hash ([`push_user_str`]).
pub(crate) fn key_index_key(
    codec: &dyn ValueCodec,
    tenant: &str,
    key: &str,
    table: &str,
    id: &EntityId,
) -> Vec<u8> {
    let mut k = KeyBuf::new().raw(&key_index_prefix(codec, tenant, key));
    k.push_str(table);
    k.push_raw(id.as_bytes());
    k.into_bytes()
}

/// Prefix of every key-index entry for `key`, across tables.
pub(crate) fn key_index_prefix(codec: &dyn ValueCodec, tenant: &str, key: &str) -> Vec<u8> {
    let mut k = KeyBuf::new().str(tenant);
    push_user_str(
        &mut k,
        codec,
        &[b"key", tenant.as_bytes(), key.as_bytes()],
        key,
    );
    k.into_bytes()
}

/// Decodes `(table, id)` from the part of a key-index key after its prefix.
pub(crate) fn parse_key_index_suffix(rest: &[u8]) -> Option<(String, EntityId)> {
    let mut r = KeyReader::new(rest);
    let table = r.str().ok()?;
    let id = EntityId::from_slice(r.raw(16).ok()?)?;
    Some((table, id))
}

/// Prefix of a field's index: `str(tenant) | str(table) | str(field)`.
pub(crate) fn field_prefix(tenant: &str, table: &str, field: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).str(table).str(field).into_bytes()
}

/// `field_index` key: `str(tenant) | str(table) | str(field) | tagged value | id`
/// (value empty); `value` is one of [`index_values`].
pub(crate) fn field_index_key(
    tenant: &str,
    table: &str,
    field: &str,
    value: &[u8],
    id: &EntityId,
) -> Vec<u8> {
    let mut key = KeyBuf::new().str(tenant).str(table).str(field);
    key.push_raw(value);
    key.push_raw(id.as_bytes());
    key.into_bytes()
}

/// The indexed value as it goes into a `field_index` key: `encoded` (one of
/// [`index_values`]) in a plain database; in an encrypted one its tag byte and the keyed
/// hash of the value under this tenant, table and field. Hashed values keep equality
/// (and the tag keeps types apart) but lose order: range scans need the plain form.
pub(crate) fn stored_index_value(
    codec: &dyn ValueCodec,
    tenant: &str,
    table: &str,
    field: &str,
    encoded: &[u8],
) -> Vec<u8> {
    let parts: [&[u8]; 5] = [
        b"field",
        tenant.as_bytes(),
        table.as_bytes(),
        field.as_bytes(),
        encoded,
    ];
    match (codec.blind(&parts), encoded.first()) {
        (Some(hash), Some(tag)) => [&[*tag][..], &hash].concat(),
        _ => encoded.to_vec(),
    }
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

/// Every encoded value under which `v` is indexed (one per distinct array element).
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn golden_keys() {
        // These bytes are part of the on-disk format (docs/format.md).
        let id = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let with_id = |head: &[u8]| [head, id.as_bytes()].concat();
        assert_eq!(id_key("t", &id), with_id(b"t\x00\x01"));
        assert_eq!(id_value("person"), b"person");
        assert_eq!(parse_id_value(b"person".to_vec()).unwrap(), "person");
        assert!(parse_id_value(vec![0xFF]).is_err());
        let plain = &rem_storage::PlainCodec;
        let key = key_index_key(plain, "t", "k", "person", &id);
        assert_eq!(key, with_id(b"t\x00\x01k\x00\x01person\x00\x01"));
        let prefix = key_index_prefix(plain, "t", "k");
        assert_eq!(prefix, b"t\x00\x01k\x00\x01");
        assert_eq!(
            parse_key_index_suffix(&key[prefix.len()..]),
            Some(("person".into(), id))
        );
        assert_eq!(field_prefix("t", "x", "f"), b"t\x00\x01x\x00\x01f\x00\x01");
        assert_eq!(
            field_index_key("t", "x", "f", &[0x10, 0x01], &id),
            with_id(b"t\x00\x01x\x00\x01f\x00\x01\x10\x01")
        );
    }

    #[test]
    fn golden_tagged_values() {
        let enc = |ty: &FieldType, v: Value| encode_scalar(ty, &v).unwrap();
        assert_eq!(enc(&FieldType::Boolean, json!(true)), [0x10, 0x01]);
        assert_eq!(
            enc(&FieldType::Integer, json!(0)),
            [0x20, 0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(&FieldType::Integer, json!(2.0)),
            [0x20, 0x80, 0, 0, 0, 0, 0, 0, 2]
        );
        assert_eq!(
            enc(&FieldType::Number, json!(1.0)),
            [0x21, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(&FieldType::Timestamp, json!("1970-01-01T00:00:01Z")),
            [0x30, 0x80, 0, 0, 0, 0, 0x0F, 0x42, 0x40]
        );
        assert_eq!(enc(&FieldType::String, json!("ab")), b"\x40ab\x00\x01");
        assert_eq!(encode_scalar(&FieldType::Integer, &json!(1.5)), None);
        assert_eq!(encode_scalar(&FieldType::String, &json!(null)), None);
        assert_eq!(
            tag_of(&FieldType::Array(Box::new(FieldType::String))),
            Some(0x40)
        );
        assert_eq!(tag_of(&FieldType::Object), None);
        let tags = FieldType::Array(Box::new(FieldType::String));
        assert_eq!(
            index_values(&tags, &json!(["b", "a", "b"])),
            vec![b"\x40a\x00\x01".to_vec(), b"\x40b\x00\x01".to_vec()]
        );
    }
}
