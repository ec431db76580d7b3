//! Change-log records: what every committed write appends, for replication.
//!
//! Layout (docs/format.md), strings in the key codec's escaped form:
//! - op 1, `tenant str | table str | entity bytes`: the entity now has this state
//!   (inserts, upserts and soft deletes alike);
//! - op 2, `tenant str | src[16] | type str | dst str | edge value`: an explicit edge
//!   now has this value;
//! - op 3, `tenant str | src[16] | type str | dst str`: an explicit edge was removed.

use rem_storage::{KeyBuf, KeyReader};

use crate::{Edge, Entity, EntityId, Error, Result};

const OP_PUT: u8 = 1;
const OP_EDGE_PUT: u8 = 2;
const OP_EDGE_DELETE: u8 = 3;

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

/// An edge-put record for the `edges` entry `key` (which starts with the tenant).
pub(crate) fn encode_edge_put(tenant: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = KeyBuf::new().tag(OP_EDGE_PUT).str(tenant).into_bytes();
    out.extend_from_slice(&key[KeyBuf::new().str(tenant).into_bytes().len()..]);
    out.extend_from_slice(value);
    out
}

/// An edge-delete record for the `edges` entry `key`.
pub(crate) fn encode_edge_delete(tenant: &str, key: &[u8]) -> Vec<u8> {
    let mut out = KeyBuf::new().tag(OP_EDGE_DELETE).str(tenant).into_bytes();
    out.extend_from_slice(&key[KeyBuf::new().str(tenant).into_bytes().len()..]);
    out
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
            let key = crate::edges::edge_key(&tenant, &src, &edge_type, &dst);
            let edge = crate::edges::decode(&key, r.rest())?;
            Ok(Change::EdgePut { tenant, edge })
        }
        op => Err(Error::Storage(rem_storage::StorageError::Corrupt(format!(
            "unknown change-log op {op}"
        )))),
    }
}
