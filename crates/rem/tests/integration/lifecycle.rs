//! Opening modes, ids, system fields and the change log.

use rem::{Database, EntityId, Error, OpenOptions};
use serde_json::json;

use crate::tasks_db;

#[test]
fn explicit_ids_are_honoured_and_cannot_jump_tables() {
    let db = tasks_db();
    let id = "5f0c6a0e-4b7a-4a53-9d6e-1f2a3b4c5d6e";
    let got = db.insert("tasks", json!({"id": id, "code": "X"})).unwrap();
    assert_eq!(got.to_string(), id);
    let err = db
        .insert("resources", json!({"id": id, "content": "c"}))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already belongs to an entity of table 'tasks'"),
        "{err}"
    );
    assert!(db
        .insert("tasks", json!({"id": "nope", "code": "Y"}))
        .is_err());
    // System fields in a record are not stored as properties.
    let id2 = db
        .insert(
            "tasks",
            json!({"code": "Z", "created_at": "1999-01-01T00:00:00Z", "entity_type": "x"}),
        )
        .unwrap();
    let e = db.get(&id2).unwrap().unwrap();
    assert!(!e.properties.contains_key("created_at") && !e.properties.contains_key("entity_type"));
    assert!(e.created_at.timestamp() > 1_700_000_000);
}

#[test]
fn batches_are_all_or_nothing_and_logged() {
    let db = tasks_db();
    let before = db.last_seq();
    let err = db
        .insert_batch(
            "tasks",
            vec![
                json!({"code": "A"}),
                json!({"code": "B", "priority": "high"}),
                json!({"code": "C"}),
            ],
        )
        .unwrap_err();
    match err {
        Error::Record { index, .. } => assert_eq!(index, 1),
        other => panic!("expected a record error, got {other}"),
    }
    assert_eq!(db.last_seq(), before);
    assert!(db.lookup("A").unwrap().is_empty());
    db.insert_batch("tasks", vec![json!({"code": "A"}), json!({"code": "B"})])
        .unwrap();
    assert_eq!(db.last_seq(), before + 2, "one change record per entity");
}

#[test]
fn read_only_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let opts = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    let id = {
        let db = Database::open(&path, &opts).unwrap();
        db.insert(
            "resources",
            json!({"name": "n", "content": "c", "uri": "u"}),
        )
        .unwrap()
    };
    let ro = Database::open(
        &path,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(ro.get(&id).unwrap().unwrap().properties["content"], "c");
    assert!(matches!(
        ro.insert("resources", json!({"content": "x"})),
        Err(Error::ReadOnly)
    ));
    assert_eq!(id, EntityId::from_key("default", "resources", "u"));
    let missing = Database::open(dir.path().join("nope"), &OpenOptions::default()).unwrap_err();
    assert!(matches!(missing, Error::NotInitialized { .. }));
}
