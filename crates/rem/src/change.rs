//! Change-log records: what every committed write appends, for replication.
//!
//! Layout (docs/format.md): `op u8 | tenant str | table str | entity bytes`, where the
//! strings use the key codec's escaped form and `op` 1 means "the entity now has this
//! state" (inserts, upserts and soft deletes alike).

use rem_storage::{KeyBuf, KeyReader};

use crate::{Entity, Error, Result};

const OP_PUT: u8 = 1;

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
        op => Err(Error::Storage(rem_storage::StorageError::Corrupt(format!(
            "unknown change-log op {op}"
        )))),
    }
}
