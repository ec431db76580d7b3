//! `change_log`: record keys (the sequence number) and the records every committed
//! write appends, for replication and for in-memory state that follows the log
//! (docs/format.md, "change_log"). Strings are in the key codec's escaped form:
//! - op 1, `str(tenant) | str(table) | entity encoding`: the entity now has this state
//!   (inserts, upserts and soft deletes alike);
//! - op 2, `str(tenant) | src[16] | str(type) | str(dst) | edge value`: an explicit
//!   edge now has this value;
//! - op 3, `str(tenant) | src[16] | str(type) | str(dst)`: an explicit edge was removed.

use rem_storage::{KeyBuf, KeyReader};

use super::edges::{edge_from_value, Edge};
use crate::{Entity, EntityId, Error, Result};

const OP_PUT: u8 = 1;
const OP_EDGE_PUT: u8 = 2;
const OP_EDGE_DELETE: u8 = 3;

/// `change_log` key: the sequence number, u64 big-endian (written by the store's
/// commit, which assigns the numbers).
pub(crate) fn change_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a `change_log` key; `None` when it is not 8 bytes.
pub(crate) fn parse_change_key(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// One decoded change-log record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// An entity was written; this is its full new state.
    Put {
        /// Tenant of the entity.
        tenant: String,
        /// The entity.
        entity: Entity,
    },
    /// An explicit edge was added or updated; this is its new state.
    EdgePut {
        /// Tenant of the edge.
        tenant: String,
        /// The edge.
        edge: Edge,
    },
    /// An explicit edge was removed.
    EdgeDelete {
        /// Tenant of the edge.
        tenant: String,
        /// Source.
        src: EntityId,
        /// Type.
        edge_type: String,
        /// Target as stored.
        dst: String,
    },
}

/// An edge-put record: the edge's names and its stored `value`.
pub(crate) fn encode_edge_put(
    tenant: &str,
    src: &EntityId,
    edge_type: &str,
    dst: &str,
    value: &[u8],
) -> Vec<u8> {
    let mut out = edge_record(OP_EDGE_PUT, tenant, src, edge_type, dst);
    out.extend_from_slice(value);
    out
}

/// `op | str(tenant) | src | str(type) | str(dst)`: the names as they are, whatever
/// form the keys of the database hold them in.
fn edge_record(op: u8, tenant: &str, src: &EntityId, edge_type: &str, dst: &str) -> Vec<u8> {
    KeyBuf::new()
        .tag(op)
        .str(tenant)
        .raw(src.as_bytes())
        .str(edge_type)
        .str(dst)
        .into_bytes()
}

/// An edge-delete record.
pub(crate) fn encode_edge_delete(
    tenant: &str,
    src: &EntityId,
    edge_type: &str,
    dst: &str,
) -> Vec<u8> {
    edge_record(OP_EDGE_DELETE, tenant, src, edge_type, dst)
}

/// A put record for an entity of `table` whose encoding (`Entity::encode`) is `encoded`.
pub(crate) fn encode_put(tenant: &str, table: &str, encoded: &[u8]) -> Vec<u8> {
    let mut out = KeyBuf::new()
        .tag(OP_PUT)
        .str(tenant)
        .str(table)
        .into_bytes();
    out.extend_from_slice(encoded);
    out
}

/// The tenant, table and entity id of an entity-put record (`None` for edge records),
/// read from its header without decoding the entity.
pub(crate) fn put_target(bytes: &[u8]) -> Result<Option<(String, String, EntityId)>> {
    let mut r = KeyReader::new(bytes);
    if r.tag()? != OP_PUT {
        return Ok(None);
    }
    let tenant = r.str()?;
    let table = r.str()?;
    // The entity encoding starts with its version byte and the 16-byte id.
    let id = r
        .rest()
        .get(1..17)
        .and_then(EntityId::from_slice)
        .ok_or_else(|| {
            Error::Storage(rem_storage::StorageError::Corrupt(
                "change-log entity id".into(),
            ))
        })?;
    Ok(Some((tenant, table, id)))
}

/// Decodes a change-log record.
pub fn decode_change(bytes: &[u8]) -> Result<Change> {
    let mut r = KeyReader::new(bytes);
    match r.tag()? {
        OP_PUT => {
            let tenant = r.str()?;
            let table = r.str()?;
            let entity = Entity::decode(&table, r.rest())?;
            Ok(Change::Put { tenant, entity })
        }
        op @ (OP_EDGE_PUT | OP_EDGE_DELETE) => {
            let tenant = r.str()?;
            let src = EntityId::from_slice(r.raw(16)?).ok_or_else(|| {
                Error::Storage(rem_storage::StorageError::Corrupt(
                    "change-log edge source".into(),
                ))
            })?;
            let edge_type = r.str()?;
            let dst = r.str()?;
            if op == OP_EDGE_DELETE {
                return Ok(Change::EdgeDelete {
                    tenant,
                    src,
                    edge_type,
                    dst,
                });
            }
            let edge = edge_from_value(src, edge_type, dst, r.rest())?;
            Ok(Change::EdgePut { tenant, edge })
        }
        op => Err(Error::Storage(rem_storage::StorageError::Corrupt(format!(
            "unknown change-log op {op}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::edges::{edge_key, edge_value};
    use chrono::DateTime;
    use rem_storage::PlainCodec;
    use serde_json::Map;

    #[test]
    fn golden_records() {
        // These bytes are part of the on-disk format (docs/format.md, "change_log").
        assert_eq!(change_key(3), [0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(parse_change_key(&change_key(3)), Some(3));
        assert_eq!(parse_change_key(b"bad"), None);

        let t = DateTime::from_timestamp_micros(1_000_000).unwrap();
        let entity = Entity {
            id: EntityId::from_key("t", "x", "k"),
            table: "x".into(),
            created_at: t,
            modified_at: t,
            deleted_at: None,
            edges: vec![],
            properties: Map::new(),
        };
        let encoded = entity.encode();
        let put = encode_put("t", "x", &encoded);
        assert_eq!(
            put,
            [b"\x01t\x00\x01x\x00\x01".as_slice(), encoded.as_slice()].concat()
        );
        assert_eq!(
            put_target(&put).unwrap(),
            Some(("t".into(), "x".into(), entity.id))
        );
        assert_eq!(
            decode_change(&put).unwrap(),
            Change::Put {
                tenant: "t".into(),
                entity: entity.clone()
            }
        );

        let key = edge_key(&PlainCodec, "t", &entity.id, "likes", "d");
        let value = edge_value(&PlainCodec, "likes", "d", 2.0, &t, true, &Map::new());
        let edge_put = encode_edge_put("t", &entity.id, "likes", "d", &value);
        // In a plain database the record holds the `edges` key, then the value.
        assert_eq!(
            &edge_put[..key.len() + 1],
            [b"\x02".as_slice(), &key].concat()
        );
        let mut want = b"\x02t\x00\x01".to_vec();
        want.extend_from_slice(entity.id.as_bytes());
        want.extend_from_slice(b"likes\x00\x01d\x00\x01");
        assert_eq!(edge_put, [want.as_slice(), value.as_slice()].concat());
        assert_eq!(put_target(&edge_put).unwrap(), None);
        let Change::EdgePut { tenant, edge } = decode_change(&edge_put).unwrap() else {
            panic!("not an edge put");
        };
        assert_eq!(
            (tenant.as_str(), edge.weight, edge.dst.as_str()),
            ("t", 2.0, "d")
        );

        let edge_delete = encode_edge_delete("t", &entity.id, "likes", "d");
        want[0] = 0x03;
        assert_eq!(edge_delete, want);
        assert_eq!(
            decode_change(&edge_delete).unwrap(),
            Change::EdgeDelete {
                tenant: "t".into(),
                src: entity.id,
                edge_type: "likes".into(),
                dst: "d".into()
            }
        );
        assert!(decode_change(b"\x09").is_err());
    }
}
