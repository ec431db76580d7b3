//! Model-based test: random sequences of writes against a `Database` and against a plain
//! map, compared after every step through every read path (lookup by key, get by id,
//! index scans, full scans), with close-and-reopen and schema changes that add and drop
//! an index in the sequence. `PROPTEST_CASES` raises the number of sequences
//! (`scripts/stress.sh` runs many more); a failure prints the minimal sequence.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rem::{Database, Filter, OpenOptions, ScanOptions};
use serde_json::json;

const KEYS: u8 = 8;
const VALUES: i64 = 4;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, i64),
    Batch(Vec<(u8, i64)>),
    Delete(u8),
    Reopen,
    /// Registers the schema again with the field `n` indexed (true) or not.
    Index(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, 0..VALUES).prop_map(|(k, n)| Op::Put(k, n)),
        2 => proptest::collection::vec((0..KEYS, 0..VALUES), 1..6).prop_map(Op::Batch),
        2 => (0..KEYS).prop_map(Op::Delete),
        1 => Just(Op::Reopen),
        1 => any::<bool>().prop_map(Op::Index),
    ]
}

fn schema(indexed: bool) -> serde_json::Value {
    json!({
        "name": "items", "key_field": "slug",
        "indexed_fields": if indexed { json!(["n"]) } else { json!([]) },
        "properties": {"slug": {"type": "string"}, "n": {"type": "integer"}}
    })
}

fn open(path: &std::path::Path) -> Database {
    Database::open(
        path,
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

/// Live keys and their values, as the model has them.
type Model = BTreeMap<u8, (i64, bool)>;

fn check(db: &Database, model: &Model, step: usize) {
    for k in 0..KEYS {
        let found = db.lookup(&format!("k{k}")).unwrap();
        match model.get(&k) {
            Some((n, false)) => {
                assert_eq!(found.len(), 1, "step {step}: k{k}");
                assert_eq!(found[0].properties["n"], json!(n), "step {step}: k{k}");
                let by_id = db.get(&found[0].id).unwrap().unwrap();
                assert_eq!(by_id.properties["n"], json!(n), "step {step}: get k{k}");
            }
            _ => assert!(found.is_empty(), "step {step}: k{k} should not be live"),
        }
    }
    for n in 0..VALUES {
        let mut got: Vec<String> = db
            .scan("items", &Filter::eq("n", json!(n)), &ScanOptions::default())
            .unwrap()
            .entities
            .into_iter()
            .map(|e| e.properties["slug"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let want: Vec<String> = model
            .iter()
            .filter(|(_, (v, deleted))| *v == n && !deleted)
            .map(|(k, _)| format!("k{k}"))
            .collect();
        assert_eq!(got, want, "step {step}: n = {n}");
    }
    let all = db
        .scan("items", &Filter::All, &ScanOptions::default())
        .unwrap()
        .entities
        .len();
    assert_eq!(
        all,
        model.values().filter(|(_, d)| !d).count(),
        "step {step}: full scan"
    );
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "step {step}: {:?}", report.problems);
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = open(&path);
    db.register_schema(schema(true)).unwrap();
    let mut model = Model::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put(k, n) => {
                db.insert("items", json!({"slug": format!("k{k}"), "n": n}))
                    .unwrap();
                model.insert(*k, (*n, false));
            }
            Op::Batch(items) => {
                let records = items
                    .iter()
                    .map(|(k, n)| json!({"slug": format!("k{k}"), "n": n}))
                    .collect();
                db.insert_batch("items", records).unwrap();
                for (k, n) in items {
                    model.insert(*k, (*n, false));
                }
            }
            Op::Delete(k) => {
                let live = db.lookup(&format!("k{k}")).unwrap();
                match model.get_mut(k) {
                    Some((_, deleted)) if !*deleted => {
                        db.delete(&live[0].id).unwrap();
                        *deleted = true;
                    }
                    _ => assert!(live.is_empty()),
                }
            }
            Op::Reopen => {
                drop(db);
                db = open(&path);
            }
            Op::Index(indexed) => {
                db.register_schema(schema(*indexed)).unwrap();
            }
        }
        check(&db, &model, step);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn the_database_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..30)) {
        run(&ops);
    }
}
