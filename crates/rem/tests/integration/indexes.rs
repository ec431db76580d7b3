//! Access paths: each indexed predicate is answered by the index, with the same rows a
//! full scan gives.

use std::ops::Bound;

use rem::{
    AccessPath, Database, Direction, EdgeOptions, Filter, KdfParams, OpenOptions, Password,
    ScanOptions, StoreOptions, TraverseOptions,
};
use serde_json::{json, Value};

use crate::{fill, register_tasks, tasks_db};

fn codes(db: &rem::Database, f: &Filter) -> (AccessPath, Vec<String>) {
    let r = db.scan("tasks", f, &ScanOptions::default()).unwrap();
    let mut codes: Vec<String> = r
        .entities
        .iter()
        .map(|e| e.properties["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    (r.path, codes)
}

/// The same filter evaluated on every row, the slow way.
fn brute(db: &rem::Database, f: &Filter) -> Vec<String> {
    let schema = db.schema("tasks").unwrap();
    let all = db
        .scan("tasks", &Filter::All, &ScanOptions::default())
        .unwrap();
    let mut out: Vec<String> = all
        .entities
        .iter()
        .filter(|e| f.matches(e, &schema))
        .map(|e| e.properties["code"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn each_predicate_uses_its_index_and_matches_a_full_scan() {
    let db = tasks_db();
    fill(&db);
    let cases: Vec<(Filter, &str)> = vec![
        (Filter::eq("status", "done"), "index on status (equality"),
        (
            Filter::In("status".into(), vec![json!("done"), json!("blocked")]),
            "index on status (equality",
        ),
        (Filter::eq("priority", -3), "index on priority (equality"),
        (
            Filter::range(
                "priority",
                Bound::Included(json!(-2)),
                Bound::Excluded(json!(2)),
            ),
            "index on priority (range)",
        ),
        (
            Filter::range(
                "effort",
                Bound::Excluded(json!(-5.5)),
                Bound::Included(json!(10)),
            ),
            "index on effort (range)",
        ),
        (
            Filter::range("effort", Bound::Unbounded, Bound::Excluded(json!(-19))),
            "index on effort (range)",
        ),
        (
            Filter::range(
                "due",
                Bound::Included(json!("2025-03-01")),
                Bound::Excluded(json!("2025-05-01T00:00:00Z")),
            ),
            "index on due (range)",
        ),
        (Filter::eq("tags", "urgent"), "index on tags (equality"),
        (Filter::eq("code", "T-042"), "key index on code"),
        (
            Filter::And(vec![
                Filter::eq("status", "open"),
                Filter::range("priority", Bound::Included(json!(0)), Bound::Unbounded),
            ]),
            "index on status (equality",
        ),
        (Filter::eq("note", "note 7"), "full scan"),
        (
            Filter::Or(vec![
                Filter::eq("status", "open"),
                Filter::eq("status", "done"),
            ]),
            "full scan",
        ),
        // A fractional bound cannot be encoded for an integer index: exact full scan.
        (
            Filter::range("priority", Bound::Excluded(json!(2.5)), Bound::Unbounded),
            "full scan",
        ),
    ];
    for (f, expected_path) in cases {
        let (path, got) = codes(&db, &f);
        assert!(
            path.to_string().starts_with(expected_path),
            "{f:?}: path {path}"
        );
        assert_eq!(got, brute(&db, &f), "{f:?}");
        assert!(
            !got.is_empty() || expected_path == "full scan",
            "{f:?} matched nothing"
        );
    }
    // Ranges on two bounds of the same field are merged into one index range.
    let f = Filter::And(vec![
        Filter::range("priority", Bound::Included(json!(1)), Bound::Unbounded),
        Filter::range("priority", Bound::Unbounded, Bound::Included(json!(3))),
    ]);
    match db.explain("tasks", &f).unwrap() {
        AccessPath::IndexRange { lower, upper, .. } => {
            assert_eq!(
                (lower, upper),
                (Bound::Included(json!(1)), Bound::Included(json!(3)))
            );
        }
        other => panic!("expected a range, got {other}"),
    }
    assert_eq!(codes(&db, &f).1, brute(&db, &f));
}

#[test]
fn id_filter_and_limit() {
    let db = tasks_db();
    fill(&db);
    let some = db.lookup("T-010").unwrap().remove(0);
    let (path, got) = codes(&db, &Filter::eq("id", some.id.to_string()));
    assert!(matches!(path, AccessPath::Ids(_)));
    assert_eq!(got, vec!["T-010"]);
    let r = db
        .scan(
            "tasks",
            &Filter::eq("status", "open"),
            &ScanOptions {
                limit: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.entities.len(), 7);
    let r = db
        .scan(
            "tasks",
            &Filter::range("priority", Bound::Unbounded, Bound::Unbounded),
            &ScanOptions {
                limit: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    // An index range returns rows in value order.
    let prios: Vec<i64> = r
        .entities
        .iter()
        .map(|e| e.properties["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(prios, vec![-3, -3, -3]);
}

#[test]
fn upserts_and_deletes_keep_indexes_exact() {
    let db = tasks_db();
    fill(&db);
    // Move T-001 from "done" to "open" and drop its urgent tag: the old entries go.
    db.insert(
        "tasks",
        json!({"code": "T-001", "status": "open", "priority": 99, "tags": []}),
    )
    .unwrap();
    let (_, done) = codes(&db, &Filter::eq("status", "done"));
    assert!(!done.contains(&"T-001".to_string()));
    assert_eq!(codes(&db, &Filter::eq("priority", 99)).1, vec!["T-001"]);
    // Soft-deleted rows disappear from scans unless asked for.
    let t2 = db.lookup("T-002").unwrap().remove(0);
    db.delete(&t2.id).unwrap();
    assert!(!codes(&db, &Filter::eq("status", "blocked"))
        .1
        .contains(&"T-002".to_string()));
    let with_deleted = db
        .scan(
            "tasks",
            &Filter::eq("status", "blocked"),
            &ScanOptions {
                include_deleted: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(with_deleted.entities.iter().any(|e| e.id == t2.id));
    // Several writes of one key in one batch: the last wins, one row, exact indexes.
    db.insert_batch(
        "tasks",
        vec![
            json!({"code": "T-900", "status": "open"}),
            json!({"code": "T-900", "status": "review"}),
        ],
    )
    .unwrap();
    assert!(codes(&db, &Filter::eq("status", "review"))
        .1
        .contains(&"T-900".to_string()));
    assert!(!codes(&db, &Filter::eq("status", "open"))
        .1
        .contains(&"T-900".to_string()));
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn reregistering_a_schema_backfills_and_drops_indexes() {
    let db = tasks_db();
    fill(&db);
    let mut doc: Value = db.schema("tasks").unwrap().document.clone();
    doc["indexed_fields"] = json!(["note"]);
    db.register_schema(doc).unwrap();
    let (path, got) = codes(&db, &Filter::eq("note", "note 7"));
    assert!(path.to_string().starts_with("index on note"), "{path}");
    assert_eq!(got, vec!["T-007"]);
    assert!(db.explain("tasks", &Filter::eq("status", "open")).unwrap() == AccessPath::FullScan);
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn shards_partition_a_scan_and_projection_keeps_filter_fields() {
    let db = tasks_db();
    fill(&db);
    for filter in [Filter::All, Filter::eq("status", "open")] {
        let whole = codes(&db, &filter).1;
        for n in [2u32, 3, 7] {
            let mut parts = Vec::new();
            for i in 0..n {
                let r = db
                    .scan(
                        "tasks",
                        &filter,
                        &ScanOptions {
                            shard: Some((i, n)),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                parts.extend(
                    r.entities
                        .iter()
                        .map(|e| e.properties["code"].as_str().unwrap().to_string()),
                );
            }
            parts.sort();
            assert_eq!(parts, whole, "{n} shards of {filter:?}");
        }
    }
    // Only `code` is decoded, plus `status`, which the filter reads; the rows are the
    // same as a full decode gives.
    let r = db
        .scan(
            "tasks",
            &Filter::eq("status", "open"),
            &ScanOptions {
                properties: Some(vec!["code".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!r.entities.is_empty());
    let mut got: Vec<String> = Vec::new();
    for e in &r.entities {
        let mut keys: Vec<&str> = e.properties.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, vec!["code", "status"]);
        got.push(e.properties["code"].as_str().unwrap().to_string());
    }
    got.sort();
    assert_eq!(got, brute(&db, &Filter::eq("status", "open")));
}

/// An encrypted database's index keys hold keyed hashes: equality, `IN`, array elements
/// and key lookups still go through the indexes with the rows of a plain database; a
/// range reads the table (hashes keep no order), with the rows the plain database's
/// index range gives. Edges, whose keys hold hashed types and targets, read back in both
/// directions, by type, and in a traversal; verify finds nothing wrong.
#[test]
fn an_encrypted_database_keeps_equality_indexed_and_scans_for_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        create: true,
        store: StoreOptions {
            password: Some(Password::new("pw")),
            kdf: KdfParams {
                m_kib: 7 * 1024,
                t: 5,
                p: 1,
            },
            ..StoreOptions::default()
        },
        ..OpenOptions::default()
    };
    let db = Database::open(dir.path().join("db"), &options).unwrap();
    assert!(db.is_encrypted());
    register_tasks(&db);
    fill(&db);
    let plain = tasks_db();
    fill(&plain);
    let priority = Filter::range(
        "priority",
        Bound::Included(json!(-2)),
        Bound::Excluded(json!(2)),
    );
    let due = Filter::range(
        "due",
        Bound::Included(json!("2025-03-01T00:00:00Z")),
        Bound::Unbounded,
    );
    let cases: Vec<(Filter, &str)> = vec![
        (Filter::eq("status", "done"), "index on status (equality"),
        (
            Filter::In("status".into(), vec![json!("done"), json!("blocked")]),
            "index on status (equality",
        ),
        (Filter::eq("priority", -3), "index on priority (equality"),
        (Filter::eq("tags", "urgent"), "index on tags (equality"),
        (Filter::eq("code", "T-010"), "key index on code"),
        (priority.clone(), "full scan"),
        (due, "full scan"),
    ];
    for (f, expected_path) in cases {
        let (path, got) = codes(&db, &f);
        assert!(
            path.to_string().starts_with(expected_path),
            "{f:?}: path {path}"
        );
        assert!(!got.is_empty(), "{f:?} matched nothing");
        assert_eq!(got, codes(&plain, &f).1, "{f:?}");
        assert_eq!(got, brute(&db, &f), "{f:?}");
    }
    assert!(matches!(
        plain.explain("tasks", &priority).unwrap(),
        AccessPath::IndexRange { .. }
    ));
    assert_eq!(db.lookup("T-010").unwrap().len(), 1);

    for (a, b) in [("T-001", "T-002"), ("T-002", "T-003")] {
        db.add_edge(a, b, "blocks", &EdgeOptions::default())
            .unwrap();
    }
    db.add_edge("T-003", "T-001", "cites", &EdgeOptions::default())
        .unwrap();
    let id = |code: &str| db.lookup(code).unwrap().remove(0).id;
    let mut out = Vec::new();
    db.scan_edges(Some(&id("T-002")), None, |e| {
        out.push((e.edge_type, e.dst));
        true
    })
    .unwrap();
    assert_eq!(out, vec![("blocks".to_string(), id("T-003").to_string())]);
    let mut into = Vec::new();
    db.scan_edges(None, Some(&id("T-001").to_string()), |e| {
        into.push((e.edge_type, e.src));
        true
    })
    .unwrap();
    assert_eq!(into, vec![("cites".to_string(), id("T-003"))]);
    let reached = |direction: Direction, edge_type: Option<&str>| -> Vec<String> {
        db.traverse(
            &id("T-001"),
            &TraverseOptions {
                depth: 3,
                direction,
                edge_type: edge_type.map(str::to_string),
                ..TraverseOptions::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|n| n.id.to_string())
        .collect()
    };
    let codes_of = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|i| db.get(&rem::EntityId::parse(i).unwrap()).unwrap().unwrap())
            .map(|e| e.properties["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        codes_of(&reached(Direction::Out, Some("blocks"))),
        ["T-001", "T-002", "T-003"]
    );
    assert_eq!(
        codes_of(&reached(Direction::In, None)),
        ["T-001", "T-003", "T-002"]
    );
    assert_eq!(codes_of(&reached(Direction::Out, Some("cites"))), ["T-001"]);
    let report = db.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(db.remove_edge("T-003", "T-001", "cites").unwrap());
    let report = db.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
