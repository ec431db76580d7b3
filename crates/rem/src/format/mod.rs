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

/// Every decoder of what comes from disk or from a peer returns an error on bad bytes,
/// never panics: arbitrary bytes, and real encodings truncated or with bytes flipped.
#[cfg(test)]
mod hostile_bytes {
    #![allow(clippy::unwrap_used)]

    use std::sync::OnceLock;

    use proptest::prelude::*;
    use rem_storage::ColumnFamily;
    use serde_json::json;

    use super::*;
    use crate::{Database, EdgeOptions, Entity};

    /// An entry: column family, key, value.
    type Entry = (ColumnFamily, Vec<u8>, Vec<u8>);

    /// Real entries of a small database.
    fn samples() -> &'static Vec<Entry> {
        static SAMPLES: OnceLock<Vec<Entry>> = OnceLock::new();
        SAMPLES.get_or_init(|| {
            let db = Database::in_memory().unwrap();
            db.register_schema(json!({
                "name": "notes", "key_field": "slug", "indexed_fields": ["n"],
                "embedding_fields": ["body"], "embedding_provider": "external:3",
                "properties": {"slug": {"type": "string"}, "n": {"type": "integer"},
                               "body": {"type": "string"}, "tags": {"type": "array"}}
            }))
            .unwrap();
            db.insert_batch_with_vectors(
                "notes",
                vec![
                    json!({"slug": "a", "n": 1, "body": "x", "tags": ["t"]}),
                    json!({"slug": "b", "n": 2, "body": "y"}),
                ],
                vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]],
            )
            .unwrap();
            db.add_edge("a", "b", "cites", &EdgeOptions::default())
                .unwrap();
            let mut out = Vec::new();
            for cf in ColumnFamily::ALL {
                for item in db.store().scan_prefix(cf, b"").unwrap() {
                    let (k, v) = item.unwrap();
                    out.push((cf, k, v));
                }
            }
            out
        })
    }

    /// Runs every decoder on `key` and `value` (the fuzz entry point, which also checks
    /// round trips); each may fail, none may panic.
    fn decode_all(_cf: ColumnFamily, key: &[u8], value: &[u8]) {
        crate::fuzzing::stored_entry(&crate::fuzzing::join(key, value));
    }

    #[test]
    fn real_entries_decode_and_round_trip() {
        for (cf, k, v) in samples() {
            decode_all(*cf, k, v);
            match cf {
                ColumnFamily::Entities => {
                    let e = Entity::decode("notes", v).unwrap();
                    assert_eq!(Entity::decode("notes", &e.encode()).unwrap(), e);
                }
                ColumnFamily::ChangeLog => {
                    changes::decode_change(v).unwrap();
                }
                ColumnFamily::Embeddings => {
                    let s = vectors::StoredEmbedding::decode(v).unwrap();
                    assert_eq!(&s.encode(), v);
                }
                _ => {}
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..80),
                                       value in proptest::collection::vec(any::<u8>(), 0..200)) {
            decode_all(ColumnFamily::Entities, &key, &value);
        }

        #[test]
        fn damaged_real_entries_never_panic(pick in any::<prop::sample::Index>(),
                                            cut in any::<prop::sample::Index>(),
                                            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 0..4)) {
            let (cf, k, v) = pick.get(samples());
            let mut key = k.clone();
            let mut value = v.clone();
            for (at, x) in &flips {
                if !value.is_empty() {
                    let i = at.index(value.len());
                    value[i] ^= x;
                }
                if !key.is_empty() {
                    let i = at.index(key.len());
                    key[i] ^= x;
                }
            }
            let n = cut.index(value.len() + 1);
            decode_all(*cf, &key, &value[..n]);
            decode_all(*cf, &key[..cut.index(key.len() + 1)], &value);
        }

        /// A replica applying a damaged change record (as a hostile or broken primary
        /// would send) gets an error or applies something well-formed; it never panics.
        #[test]
        fn a_replica_applying_damaged_records_never_panics(pick in any::<prop::sample::Index>(),
                                                          cut in any::<prop::sample::Index>(),
                                                          flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 0..4)) {
            static REPLICA: OnceLock<Database> = OnceLock::new();
            let replica = REPLICA.get_or_init(|| {
                let db = Database::in_memory().unwrap();
                db.become_replica("127.0.0.1:1").unwrap();
                db
            });
            let records: Vec<_> = samples().iter().filter(|(cf, _, _)| *cf == ColumnFamily::ChangeLog).collect();
            let (_, _, v) = pick.get(&records);
            let mut record = v.clone();
            for (at, x) in &flips {
                let i = at.index(record.len());
                record[i] ^= x;
            }
            record.truncate(cut.index(record.len() + 1).max(1));
            let change = crate::ReplicatedChange { seq: replica.last_seq() + 1, record, vectors: vec![] };
            let _ = replica.apply_replicated(&[change]);
        }
    }
}
