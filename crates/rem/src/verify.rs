//! `verify`: checks that indexes and entities agree, across all tenants, and that the
//! change log has no gaps.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rem_storage::ColumnFamily;

use crate::change::decode_change;
use crate::embedding::embedding_text;
use crate::format::changes::parse_change_key;
use crate::format::edges::{edge_key, is_explicit, parse_edge_key, parse_reverse_key, reverse_key};
use crate::format::entities::parse_entity_key;
use crate::format::vectors::{embedding_key, EMBEDDING, EMBEDDING_ALT};
use crate::index::index_entries;
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
    /// key index and field indexes hold exactly the entries the entities need; the
    /// change log is numbered without gaps up to the last sequence number.
    pub fn verify(&self) -> Result<VerifyReport> {
        let store = self.store();
        let mut report = VerifyReport::default();
        let mut expected: BTreeSet<(ColumnFamily, Vec<u8>)> = BTreeSet::new();
        let mut schemas: HashMap<(String, String), Option<Arc<Schema>>> = HashMap::new();
        let mut expected_vectors: BTreeSet<Vec<u8>> = BTreeSet::new();
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
            for (cf, k, _) in index_entries(&tenant, &schema, &entity, &canonical) {
                expected.insert((cf, k));
            }
            // A live entity with embedded text has a vector in each of its columns;
            // deleted entities and entities without text have none.
            if !entity.is_deleted() && embedding_text(&schema, &entity.properties).is_some() {
                let columns = if self.inner.embedding.alt_model.is_some() {
                    vec![EMBEDDING, EMBEDDING_ALT]
                } else {
                    vec![EMBEDDING]
                };
                for column in columns {
                    expected_vectors.insert(embedding_key(&tenant, &table, column, &entity.id));
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
            let Some((tenant, src, ty, dst)) = parse_edge_key(key) else {
                return Ok(false);
            };
            let rev = reverse_key(&tenant, &dst, &ty, &src);
            Ok(is_explicit(value) && store.contains(ColumnFamily::EdgesRev, &rev)?)
        }
        ColumnFamily::EdgesRev => {
            let Some((tenant, src, ty, dst)) = parse_reverse_key(key) else {
                return Ok(false);
            };
            let fwd = edge_key(&tenant, &src, &ty, &dst);
            Ok(store
                .get(ColumnFamily::Edges, &fwd)?
                .is_some_and(|v| is_explicit(&v)))
        }
        _ => Ok(false),
    }
}
