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

/// A database written by format version 1 (`tests/fixtures/format-v1`, made with the
/// `rem` CLI: a `person` schema in tenants `default` and `navy`, two people, one
/// soft-deleted chunk) must keep opening with the same answers.
#[test]
fn opens_the_format_v1_fixture() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let ro = Database::open(
        dir.path(),
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(ro.last_seq(), 18);
    drop(ro);
    let db = Database::open(dir.path(), &OpenOptions::default()).unwrap();
    let ada = db.lookup("ada@example.com").unwrap();
    assert_eq!(ada.len(), 1);
    assert_eq!(
        ada[0].id.to_string(),
        "4d68973b-a5d9-41eb-43fa-07f72d817fae"
    );
    assert_eq!(ada[0].properties["role"], "engineer");
    assert_eq!(rem::format_ts(&ada[0].created_at).len(), 27);
    let navy = db.for_tenant("navy").unwrap();
    assert_eq!(
        navy.lookup("grace@example.com").unwrap()[0].id.to_string(),
        "8aa6e74d-364a-5057-40bf-3c7cf16edad1"
    );
    assert!(db.lookup("grace@example.com").unwrap().is_empty());
    let chunk = EntityId::parse("0f85eb8b-6c51-9038-2090-2ae638e65df3").unwrap();
    assert!(db.get(&chunk).unwrap().is_none());
    assert!(db
        .get_including_deleted(&chunk)
        .unwrap()
        .unwrap()
        .deleted_at
        .is_some());
    let r = db
        .scan(
            "person",
            &rem::Filter::eq("age", 36),
            &rem::ScanOptions::default(),
        )
        .unwrap();
    assert_eq!(
        (
            r.path.to_string().starts_with("index on age"),
            r.entities.len()
        ),
        (true, 1)
    );
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// With `sync_writes` (P8_ROCKSDB_SYNC), eight writers' single inserts share fsyncs
/// (group commit): each returns only once its change is durable, so when all have
/// returned every change is durable and announced, and every record is there after a
/// reopen.
#[test]
fn synced_writers_share_fsyncs_and_every_acknowledged_write_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut options = rem::OpenOptions {
        create: true,
        ..rem::OpenOptions::default()
    };
    options.store.sync_writes = true;
    let db = rem::Database::open(&path, &options).unwrap();
    db.register_schema(serde_json::json!({
        "name": "notes", "key_field": "slug",
        "properties": {"slug": {"type": "string"}, "n": {"type": "integer"}}
    }))
    .unwrap();
    let watch = db.watch_commits();
    let ids: Vec<Vec<rem::EntityId>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let db = db.clone();
                s.spawn(move || {
                    (0..100)
                        .map(|i| {
                            let before = db.last_seq();
                            let id = db
                                .insert(
                                    "notes",
                                    serde_json::json!({"slug": format!("w{w}-{i}"), "n": i}),
                                )
                                .unwrap();
                            // Acknowledged means durable: this write's sequence number
                            // (after `before`) is covered by an fsync.
                            assert!(db.durable_seq() > before, "acknowledged before its fsync");
                            id
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(db.durable_seq(), db.last_seq());
    assert_eq!(
        *watch.borrow(),
        db.last_seq(),
        "watchers hear of the durable position"
    );
    drop(db);
    let db = rem::Database::open(&path, &options).unwrap();
    for id in ids.iter().flatten() {
        assert!(db.get(id).unwrap().is_some(), "{id} lost");
    }
    assert_eq!(db.durable_seq(), db.last_seq());
    assert!(db.verify().unwrap().is_ok());
}
