//! Edges mirrored from entities' `edges` lists: written, diffed and removed with the
//! entity, both directions scannable, soft-deleted sources hidden, verify clean.

use rem::{Edge, REFERENCES};
use serde_json::json;

use crate::tasks_db;

/// The stored target of the qualified key `tasks:<code>`: the id that key determines.
fn task(code: &str) -> String {
    rem::EntityId::from_key("default", "tasks", code).to_string()
}

fn targets(db: &rem::Database, src: &rem::EntityId) -> Vec<String> {
    let mut out = Vec::new();
    db.scan_edges(Some(src), None, |e: Edge| {
        assert_eq!(e.edge_type, REFERENCES);
        out.push(e.dst);
        true
    })
    .unwrap();
    out.sort();
    out
}

fn sources(db: &rem::Database, dst: &str) -> Vec<rem::EntityId> {
    let mut out = Vec::new();
    db.scan_edges(None, Some(dst), |e| {
        out.push(e.src);
        true
    })
    .unwrap();
    out
}

#[test]
fn edges_follow_the_entity() {
    let db = tasks_db();
    let a = db
        .insert(
            "tasks",
            json!({"code": "A", "edges": ["tasks:B", "tasks:C"]}),
        )
        .unwrap();
    let b = db
        .insert("tasks", json!({"code": "B", "edges": ["tasks:C"]}))
        .unwrap();
    let mut want = vec![task("B"), task("C")];
    want.sort();
    assert_eq!(targets(&db, &a), want);
    let mut c_sources = sources(&db, &task("C"));
    c_sources.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(c_sources, expected);

    // The edge's creation time survives an upsert that keeps it.
    let mut first = None;
    db.scan_edges(Some(&a), Some(task("B").as_str()), |e| {
        first = Some(e.created_at);
        false
    })
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    db.insert(
        "tasks",
        json!({"code": "A", "edges": ["tasks:B", "tasks:D"]}),
    )
    .unwrap();
    let mut want = vec![task("B"), task("D")];
    want.sort();
    assert_eq!(targets(&db, &a), want);
    let mut again = None;
    db.scan_edges(Some(&a), Some(task("B").as_str()), |e| {
        again = Some(e.created_at);
        false
    })
    .unwrap();
    assert_eq!(first, again);
    assert_eq!(sources(&db, &task("C")), vec![b]);

    // An upsert without `edges` keeps them; an empty list removes them.
    db.insert("tasks", json!({"code": "A", "note": "x"}))
        .unwrap();
    assert_eq!(targets(&db, &a).len(), 2);
    db.insert("tasks", json!({"code": "A", "edges": []}))
        .unwrap();
    assert!(targets(&db, &a).is_empty());
    assert!(sources(&db, &task("D")).is_empty());

    // A soft-deleted source's edges stop appearing; verify stays clean throughout.
    db.delete(&b).unwrap();
    assert!(sources(&db, &task("C")).is_empty());
    let mut all = 0;
    db.scan_edges(None, None, |_| {
        all += 1;
        true
    })
    .unwrap();
    assert_eq!(all, 0);
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}
