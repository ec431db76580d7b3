//! The on-disk layouts, in one place: every key and value the engine writes to a
//! column family, and how each is read back (`docs/format.md` is the byte-level
//! contract; this module implements it).
//!
//! The module is pure: functions of plain values (tenants, tables, ids, JSON, times)
//! to bytes and back, built on the key codec of `rem-storage` ([`KeyBuf`],
//! [`KeyReader`]). It knows nothing of the `Database`, its caches or the store; the
//! rest of the engine decides *what* to write and calls in here for *how* it is laid
//! out.
//!
//! | module | column families |
//! |---|---|
//! | [`entities`] | `entities`: entity keys and the entity encoding |
//! | [`indexes`] | `ids`, `key_index`, `field_index`, and the tagged index values |
//! | [`edges`] | `edges`, `edges_rev` |
//! | [`vectors`] | `embeddings`, and the column metadata in `meta` |
//! | [`changes`] | `change_log`: record keys and records |
//! | [`meta`] | `meta`: format version, last sequence number, replication role |
//!
//! Every key starts with the tenant as a string component ([`tenant_prefix`]), so no
//! prefix scan of one tenant can reach another tenant's keys: isolation holds by
//! construction. Changing any layout here needs a new format version and a migration.
//!
//! [`KeyBuf`]: rem_storage::KeyBuf
//! [`KeyReader`]: rem_storage::KeyReader

pub(crate) mod changes;
pub(crate) mod edges;
pub(crate) mod entities;
pub(crate) mod indexes;
pub(crate) mod meta;
pub(crate) mod vectors;

use rem_storage::KeyBuf;

use crate::EntityId;

/// `str(tenant)`: the prefix of every key of a tenant, in every family but the
/// change log and `meta`.
pub(crate) fn tenant_prefix(tenant: &str) -> Vec<u8> {
    KeyBuf::new().str(tenant).into_bytes()
}

/// The id at the end of a key: `field_index` and `embeddings` keys end with the
/// entity's 16 bytes.
pub(crate) fn trailing_id(key: &[u8]) -> Option<EntityId> {
    key.len()
        .checked_sub(16)
        .and_then(|start| EntityId::from_slice(&key[start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_prefix_and_trailing_id() {
        assert_eq!(tenant_prefix("t"), b"t\x00\x01");
        let id = EntityId::from_key("t", "x", "k");
        let key = [tenant_prefix("t").as_slice(), id.as_bytes()].concat();
        assert_eq!(trailing_id(&key), Some(id));
        assert_eq!(trailing_id(b"short"), None);
    }
}
