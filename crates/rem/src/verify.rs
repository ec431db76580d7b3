//! `verify`: checks that indexes and entities agree, across all tenants, and that the
//! change log has no gaps.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rem_storage::ColumnFamily;

use crate::change::decode_change;
use crate::embedding::{embedding_text, provider_name, text_hash};
use crate::format::changes::parse_change_key;
use crate::format::edges::{
    edge_key, is_explicit, parse_edge_entry, parse_reverse_entry, reverse_key,
};
use crate::format::entities::parse_entity_key;
use crate::format::trailing_id;
use crate::format::vectors::{
    column_meta_key, embedding_key, embedding_prefix, parse_column_meta, StoredEmbedding,
    EMBEDDING, EMBEDDING_ALT,
};
use crate::index::index_entries;
use crate::vector::{index_base, VectorIndex};
use crate::vector_indexes::{catch_up_index, IndexKey};
use crate::{Database, Entity, Result, Schema};

/// The outcome of [`Database::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Entities checked (all tenants).
    pub entities: u64,
    /// Index entries checked.
    pub index_entries: u64,
    /// Change-log records checked.
    pub change_records: u64,
    /// Stored vectors checked.
    pub vectors: u64,
    /// Vector indexes checked (loaded ones and saved files).
    pub vector_indexes: u64,
    /// Every inconsistency found (empty when the database is consistent).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_PROBLEMS: usize = 100;

impl Database {
    /// Checks every tenant: each entity decodes and sits under its own id; the id map,
    /// key index, field indexes and edge indexes hold exactly the entries the entities
    /// need; each live entity with embedded text has a vector in each embedding column
    /// whose text hash is its current text's, and no other vector is stored; every vector
    /// index (loaded, or saved beside the database and brought up to date) holds exactly
    /// the stored vectors of its column; the change log is numbered without gaps up to
    /// the last sequence number.
    pub fn verify(&self) -> Result<VerifyReport> {
        let store = self.store();
        let mut report = VerifyReport::default();
        let mut expected: BTreeSet<(ColumnFamily, Vec<u8>)> = BTreeSet::new();
        let mut schemas: HashMap<(String, String), Option<Arc<Schema>>> = HashMap::new();
        // Vectors each live entity with text must have, with its text's hash; and the
        // keys where a vector given by the caller may sit on an entity without text.
        // (A schema's description may lack its vector: registration works without a
        // provider, and search embeds the descriptions it lacks.)
        let mut expected_vectors: BTreeMap<Vec<u8>, ([u8; 16], bool)> = BTreeMap::new();
        let mut optional_vectors: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut columns_seen: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
        let problem = |report: &mut VerifyReport, p: String| {
            if report.problems.len() < MAX_PROBLEMS {
                report.problems.push(p);
            }
        };
        for item in store.scan_prefix(ColumnFamily::Entities, b"")? {
            let (key, bytes) = item?;
            report.entities += 1;
            let Some((tenant, table, key_id)) = parse_entity_key(&key) else {
                problem(&mut report, "an entity key is malformed".into());
                continue;
            };
            let entity = match Entity::decode(&table, &bytes) {
                Ok(e) => e,
                Err(e) => {
                    problem(
                        &mut report,
                        format!("entity in {tenant}/{table} does not decode: {e}"),
                    );
                    continue;
                }
            };
            if key_id != Some(entity.id) {
                problem(
                    &mut report,
                    format!("entity {} is stored under another id's key", entity.id),
                );
            }
            let handle = Database {
                inner: self.inner.clone(),
                tenant: tenant.clone(),
            };
            let schema = schemas
                .entry((tenant.clone(), table.clone()))
                .or_insert_with(|| handle.schema(&table).ok())
                .clone();
            let Some(schema) = schema else {
                problem(
                    &mut report,
                    format!(
                        "entity {} belongs to unregistered table {tenant}/{table}",
                        entity.id
                    ),
                );
                continue;
            };
            let canonical = |t: &str| handle.canonical_table(t);
            for (cf, k, _) in index_entries(store.codec(), &tenant, &schema, &entity, &canonical) {
                expected.insert((cf, k));
            }
            // A live entity with embedded text has a vector in each of its columns;
            // deleted entities and entities without text have none.
            let options = &self.inner.embedding;
            if !entity.is_deleted() && provider_name(&schema, EMBEDDING, options).is_some() {
                match embedding_text(&schema, &entity.properties) {
                    Some(text) => {
                        let columns = [EMBEDDING, EMBEDDING_ALT]
                            .into_iter()
                            .filter(|c| provider_name(&schema, c, options).is_some());
                        let hash = text_hash(&text);
                        for column in columns {
                            columns_seen.insert((tenant.clone(), table.clone(), column));
                            expected_vectors.insert(
                                embedding_key(&tenant, &table, column, &entity.id),
                                (hash, table != "schemas"),
                            );
                        }
                    }
                    None => {
                        optional_vectors
                            .insert(embedding_key(&tenant, &table, EMBEDDING, &entity.id));
                    }
                }
            }
        }
        for cf in [
            ColumnFamily::Ids,
            ColumnFamily::KeyIndex,
            ColumnFamily::FieldIndex,
            ColumnFamily::Edges,
            ColumnFamily::EdgesRev,
        ] {
            for item in store.scan_prefix(cf, b"")? {
                let (key, value) = item?;
                report.index_entries += 1;
                if !expected.remove(&(cf, key.clone())) && !explicit_edge(store, cf, &key, &value)?
                {
                    problem(
                        &mut report,
                        format!("stale {} entry {}", cf.name(), printable(&key)),
                    );
                }
            }
        }
        for (cf, key) in &expected {
            problem(
                &mut report,
                format!("missing {} entry {}", cf.name(), printable(key)),
            );
        }
        let empty_hash = text_hash("");
        for item in store.scan_prefix(ColumnFamily::Embeddings, b"")? {
            let (key, value) = item?;
            report.vectors += 1;
            let stored = match StoredEmbedding::decode(&value) {
                Ok(s) => s,
                Err(_) => {
                    problem(
                        &mut report,
                        format!("stored vector {} does not decode", printable(&key)),
                    );
                    expected_vectors.remove(&key);
                    continue;
                }
            };
            match expected_vectors.remove(&key) {
                Some((hash, _)) if hash == stored.text_hash => {}
                Some(_) => problem(
                    &mut report,
                    format!(
                        "stale vector {}: it was made from another text than the entity's",
                        printable(&key)
                    ),
                ),
                None if optional_vectors.contains(&key) && stored.text_hash == empty_hash => {}
                None => problem(
                    &mut report,
                    format!(
                        "orphan vector {} (no live entity with text)",
                        printable(&key)
                    ),
                ),
            }
        }
        for (key, _) in expected_vectors
            .iter()
            .filter(|(_, (_, required))| *required)
        {
            problem(&mut report, format!("missing vector {}", printable(key)));
        }
        self.verify_vector_indexes(&columns_seen, &mut report, &problem)?;
        let last = store.last_seq();
        let mut prev: Option<u64> = None;
        for item in store.scan_prefix(ColumnFamily::ChangeLog, b"")? {
            let (key, value) = item?;
            report.change_records += 1;
            let seq = parse_change_key(&key).unwrap_or(0);
            if let Some(p) = prev {
                if seq != p + 1 {
                    problem(&mut report, format!("change log jumps from {p} to {seq}"));
                }
            }
            if let Err(e) = decode_change(&value) {
                problem(
                    &mut report,
                    format!("change record {seq} does not decode: {e}"),
                );
            }
            prev = Some(seq);
        }
        if prev.unwrap_or(0) != last {
            problem(
                &mut report,
                format!(
                    "last sequence number is {last} but the change log ends at {}",
                    prev.unwrap_or(0)
                ),
            );
        }
        Ok(report)
    }
}

impl Database {
    /// Every loaded vector index, and every saved index file of a column with vectors
    /// (loaded and brought up to date from the change log, as opening would), holds
    /// exactly the ids of the column's stored vectors.
    fn verify_vector_indexes(
        &self,
        columns: &BTreeSet<(String, String, &'static str)>,
        report: &mut VerifyReport,
        problem: &dyn Fn(&mut VerifyReport, String),
    ) -> Result<()> {
        let store = self.store();
        let mut keys: BTreeSet<(String, String, String)> = columns
            .iter()
            .map(|(t, table, c)| (t.clone(), table.clone(), c.to_string()))
            .collect();
        let loaded: HashMap<_, _> = self.inner.vectors.all().into_iter().collect();
        keys.extend(
            loaded
                .keys()
                .map(|k| (k.tenant.clone(), k.table.clone(), k.column.clone())),
        );
        for (tenant, table, column) in keys {
            let key = IndexKey::new(&tenant, &table, &column);
            let mut stored: HashSet<crate::EntityId> = HashSet::new();
            // The loaded index's vectors are compared as the stored ones stream past
            // (nothing of the column is held but its ids).
            let loaded_index = loaded.get(&key);
            let vi = loaded_index.map(|i| i.read().unwrap_or_else(|p| p.into_inner()));
            let mut differ = 0usize;
            for item in store.scan_prefix(
                ColumnFamily::Embeddings,
                &embedding_prefix(&tenant, &table, &column),
            )? {
                let (k, v) = item?;
                let Some(id) = trailing_id(&k) else { continue };
                stored.insert(id);
                if let (Some(vi), Ok(e)) = (vi.as_ref(), StoredEmbedding::decode(&v)) {
                    // Each vector the index holds is its stored vector (up to the
                    // index's precision).
                    if vi
                        .vector(&id)
                        .is_some_and(|held| crate::vector::cosine(&held, &e.vector) < 0.99)
                    {
                        differ += 1;
                    }
                }
            }
            let check = |report: &mut VerifyReport, what: &str, ids: HashSet<crate::EntityId>| {
                report.vector_indexes += 1;
                let missing = stored.difference(&ids).count();
                let extra = ids.difference(&stored).count();
                if missing + extra > 0 {
                    problem(
                        report,
                        format!(
                            "{what} vector index of {tenant}/{table}.{column} lacks {missing} stored vectors and holds {extra} that are not stored"
                        ),
                    );
                }
            };
            if let Some(vi) = vi {
                check(report, "the loaded", vi.ids().copied().collect());
                if differ > 0 {
                    problem(
                        report,
                        format!(
                            "the loaded vector index of {tenant}/{table}.{column} holds {differ} vectors that differ from the stored ones"
                        ),
                    );
                }
            }
            if store.is_in_memory() {
                continue;
            }
            let Some(meta) = store
                .get(
                    ColumnFamily::Meta,
                    &column_meta_key(&tenant, &table, &column),
                )?
                .and_then(|m| parse_column_meta(&m))
            else {
                continue;
            };
            let (Some(model), Some(dims)) = (meta.model, meta.dims) else {
                continue;
            };
            let base = index_base(store.path(), &tenant, &table, &column);
            // A file that does not load (missing, another model, damaged) is rebuilt on
            // open, so it is not damage; one that loads must be right.
            if let Some(mut vi) = VectorIndex::load(
                &base,
                &model,
                dims as usize,
                &self.inner.embedding,
                store.codec(),
            ) {
                let last = store.last_seq();
                if vi.watermark > last {
                    continue;
                }
                if catch_up_index(store, &mut vi, &key, last)? {
                    check(report, "the saved", vi.ids().copied().collect());
                }
            }
        }
        Ok(())
    }
}

fn printable(key: &[u8]) -> String {
    key.iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// Whether `key` (in `edges` or `edges_rev`) belongs to an explicitly added edge whose
/// two entries are both present.
fn explicit_edge(
    store: &rem_storage::Store,
    cf: ColumnFamily,
    key: &[u8],
    value: &[u8],
) -> Result<bool> {
    match cf {
        ColumnFamily::Edges => {
            let Some((tenant, src, ty, dst)) = parse_edge_entry(key, value) else {
                return Ok(false);
            };
            let rev = reverse_key(store.codec(), &tenant, &dst, &ty, &src);
            Ok(is_explicit(value) && store.contains(ColumnFamily::EdgesRev, &rev)?)
        }
        ColumnFamily::EdgesRev => {
            let Some((tenant, src, ty, dst)) = parse_reverse_entry(key, value) else {
                return Ok(false);
            };
            let fwd = edge_key(store.codec(), &tenant, &src, &ty, &dst);
            Ok(store
                .get(ColumnFamily::Edges, &fwd)?
                .is_some_and(|v| is_explicit(&v)))
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rem_storage::ColumnFamily;
    use serde_json::json;

    use crate::format::vectors::{embedding_key, StoredEmbedding, EMBEDDING};
    use crate::{Database, EdgeOptions, EntityId, OpenOptions, SearchOptions};

    const DIMS: usize = 4;

    fn vector(i: usize) -> Vec<f32> {
        vec![1.0, i as f32, (i % 3) as f32, 0.5]
    }

    /// A table of notes with caller-given vectors and an index, and an edge.
    fn filled(db: &Database) -> Vec<EntityId> {
        db.register_schema(json!({
            "name": "notes", "key_field": "slug", "indexed_fields": ["topic"],
            "embedding_fields": ["body"], "embedding_provider": format!("external:{DIMS}"),
            "properties": {"slug": {"type": "string"}, "topic": {"type": "string"},
                           "body": {"type": "string"}}
        }))
        .unwrap();
        let records = (0..6)
            .map(|i| json!({"slug": format!("n{i}"), "topic": format!("t{}", i % 2), "body": format!("text {i}")}))
            .collect();
        let ids = db
            .insert_batch_with_vectors("notes", records, (0..6).map(vector).collect())
            .unwrap();
        db.add_edge("n0", "n1", "cites", &EdgeOptions::default())
            .unwrap();
        // Loads the index.
        db.search_by_vector("notes", &vector(1), &SearchOptions::default())
            .unwrap();
        ids
    }

    fn problems(db: &Database) -> Vec<String> {
        db.verify().unwrap().problems
    }

    fn first(db: &Database, cf: ColumnFamily) -> (Vec<u8>, Vec<u8>) {
        db.store()
            .scan_prefix(cf, b"")
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
    }

    fn plant(db: &Database, f: impl FnOnce(&mut rem_storage::Batch<'_>)) {
        let mut batch = db.store().batch();
        f(&mut batch);
        db.store().commit(batch, &[]).unwrap();
    }

    fn assert_reports(problems: &[String], what: &str) {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "expected a problem with '{what}', got {problems:?}"
        );
    }

    #[test]
    fn a_clean_database_passes_with_its_vectors_and_index_counted() {
        let db = Database::in_memory().unwrap();
        filled(&db);
        let report = db.verify().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert!(report.vectors >= 6, "{report:?}");
        assert!(report.vector_indexes >= 1, "{report:?}");
    }

    #[test]
    fn each_index_damage_is_reported() {
        for (cf, what) in [
            (ColumnFamily::Ids, "missing ids entry"),
            (ColumnFamily::KeyIndex, "missing key_index entry"),
            (ColumnFamily::FieldIndex, "missing field_index entry"),
            (ColumnFamily::EdgesRev, "stale edges entry"),
        ] {
            let db = Database::in_memory().unwrap();
            filled(&db);
            let (key, _) = first(&db, cf);
            plant(&db, |b| b.delete(cf, &key).unwrap());
            assert_reports(&problems(&db), what);
        }
        for (cf, what) in [
            (ColumnFamily::KeyIndex, "stale key_index entry"),
            (ColumnFamily::FieldIndex, "stale field_index entry"),
        ] {
            let db = Database::in_memory().unwrap();
            filled(&db);
            let (mut key, value) = first(&db, cf);
            key.push(b'x');
            plant(&db, |b| b.put(cf, &key, &value).unwrap());
            assert_reports(&problems(&db), what);
        }
    }

    #[test]
    fn an_entity_that_does_not_decode_and_a_log_gap_are_reported() {
        let db = Database::in_memory().unwrap();
        filled(&db);
        let (key, _) = first(&db, ColumnFamily::Entities);
        plant(&db, |b| {
            b.put(ColumnFamily::Entities, &key, b"\xffgarbage").unwrap()
        });
        assert_reports(&problems(&db), "does not decode");

        let db = Database::in_memory().unwrap();
        filled(&db);
        // A record in the middle goes (retention only ever removes the oldest).
        let keys: Vec<Vec<u8>> = db
            .store()
            .scan_prefix(ColumnFamily::ChangeLog, b"")
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        let middle = keys[keys.len() / 2].clone();
        plant(&db, |b| b.delete(ColumnFamily::ChangeLog, &middle).unwrap());
        let p = problems(&db);
        assert!(
            p.iter()
                .any(|p| p.contains("jumps") || p.contains("ends at")),
            "{p:?}"
        );
    }

    #[test]
    fn each_vector_damage_is_reported() {
        // A vector made from another text.
        let db = Database::in_memory().unwrap();
        let ids = filled(&db);
        let key = embedding_key("default", "notes", EMBEDDING, &ids[2]);
        let stale = StoredEmbedding {
            text_hash: [7; 16],
            vector: vector(2),
        };
        plant(&db, |b| {
            b.put(ColumnFamily::Embeddings, &key, &stale.encode())
                .unwrap()
        });
        assert_reports(&problems(&db), "stale vector");

        // A vector with no entity.
        let db = Database::in_memory().unwrap();
        filled(&db);
        let key = embedding_key("default", "notes", EMBEDDING, &EntityId::random());
        let orphan = StoredEmbedding {
            text_hash: [1; 16],
            vector: vector(9),
        };
        plant(&db, |b| {
            b.put(ColumnFamily::Embeddings, &key, &orphan.encode())
                .unwrap()
        });
        let p = problems(&db);
        assert_reports(&p, "orphan vector");
        // The loaded index does not hold it either.
        assert_reports(&p, "lacks 1 stored vectors");

        // A missing vector: the loaded index still holds it.
        let db = Database::in_memory().unwrap();
        let ids = filled(&db);
        let key = embedding_key("default", "notes", EMBEDDING, &ids[3]);
        plant(&db, |b| b.delete(ColumnFamily::Embeddings, &key).unwrap());
        let p = problems(&db);
        assert_reports(&p, "missing vector");
        assert_reports(&p, "holds 1 that are not stored");

        // A stored vector changed behind the loaded index (same text hash).
        let db = Database::in_memory().unwrap();
        let ids = filled(&db);
        let key = embedding_key("default", "notes", EMBEDDING, &ids[1]);
        let mut changed = StoredEmbedding::decode(
            &db.store()
                .get(ColumnFamily::Embeddings, &key)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        changed.vector = vec![-1.0, 0.0, 0.0, 0.0];
        plant(&db, |b| {
            b.put(ColumnFamily::Embeddings, &key, &changed.encode())
                .unwrap()
        });
        assert_reports(&problems(&db), "differ from the stored ones");

        // A vector that does not decode.
        let db = Database::in_memory().unwrap();
        let ids = filled(&db);
        let key = embedding_key("default", "notes", EMBEDDING, &ids[4]);
        plant(&db, |b| {
            b.put(ColumnFamily::Embeddings, &key, b"short").unwrap()
        });
        assert_reports(&problems(&db), "does not decode");
    }

    #[test]
    fn a_saved_index_that_disagrees_with_the_stored_vectors_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let ids = {
            let create = OpenOptions {
                create: true,
                ..OpenOptions::default()
            };
            let db = Database::open(&path, &create).unwrap();
            let ids = filled(&db);
            db.save_vector_indexes().unwrap();
            assert!(db.verify().unwrap().is_ok());
            // The stored vector goes, without a change record: the saved file still
            // holds it and catching up from the log cannot know.
            let key = embedding_key("default", "notes", EMBEDDING, &ids[5]);
            plant(&db, |b| b.delete(ColumnFamily::Embeddings, &key).unwrap());
            ids
        };
        let db = Database::open(&path, &OpenOptions::default()).unwrap();
        let p = problems(&db);
        assert_reports(&p, "the saved vector index");
        assert_reports(&p, "holds 1 that are not stored");
        assert_eq!(ids.len(), 6);
    }
}
