//! Applying a primary's change log on a replica, in process: the same content and
//! index entries (checksums), gaps refused, schema changes re-indexing rows applied
//! earlier in the same call, local writes refused, promotion.

use rem::{Database, EdgeOptions, Error, OpenOptions, ReplicationRole};
use serde_json::json;

fn open(dir: &std::path::Path, name: &str) -> Database {
    Database::open(
        dir.join(name),
        &OpenOptions {
            create: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Copies everything after the replica's watermark, `step` records per call.
fn sync(primary: &Database, replica: &Database, step: usize) {
    loop {
        let batch = primary.replication_batch(replica.last_seq(), step).unwrap();
        if batch.is_empty() {
            break;
        }
        replica.apply_replicated(&batch).unwrap();
    }
}

#[test]
fn a_replica_applies_the_log_to_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let primary = open(dir.path(), "p");
    let replica = open(dir.path(), "r");
    replica.become_replica("127.0.0.1:1").unwrap();
    assert_eq!(replica.last_seq(), 0);
    primary
        .register_schema(json!({
            "name": "doc", "key_field": "k", "indexed_fields": ["tag"],
            "properties": {"k": {"type": "string"}, "tag": {"type": "string"}}
        }))
        .unwrap();
    for i in 0..50 {
        primary
            .insert(
                "doc",
                json!({"k": format!("d{i}"), "tag": format!("t{}", i % 3),
                                  "edges": [format!("doc:d{}", (i + 1) % 50)]}),
            )
            .unwrap();
    }
    primary
        .add_edge("d1", "d2", "cites", &EdgeOptions::default())
        .unwrap();
    let d3 = primary.resolve("d3").unwrap().id;
    primary.delete(&d3).unwrap();
    // Another tenant's records travel in the same log.
    let other = primary.for_tenant("acme").unwrap();
    other
        .register_schema(json!({"name": "doc", "key_field": "k",
                                "properties": {"k": {"type": "string"}}}))
        .unwrap();
    other.insert("doc", json!({"k": "x"})).unwrap();
    sync(&primary, &replica, 7);
    // A re-registration with another index, then upserts, in one apply call: the
    // schema change commits after the rows before it, then re-indexes them.
    primary
        .register_schema(json!({
            "name": "doc", "key_field": "k", "indexed_fields": ["tag", "k"],
            "properties": {"k": {"type": "string"}, "tag": {"type": "string"}}
        }))
        .unwrap();
    primary
        .insert("doc", json!({"k": "d0", "tag": "new"}))
        .unwrap();
    primary.remove_edge("d1", "d2", "cites").unwrap();
    sync(&primary, &replica, 1000);
    assert_eq!(replica.last_seq(), primary.last_seq());
    assert_eq!(
        replica.content_checksum().unwrap(),
        primary.content_checksum().unwrap()
    );
    assert!(replica.verify().unwrap().is_ok());
    let walk = |db: &Database| {
        let start = db.resolve("d0").unwrap().id;
        db.traverse(
            &start,
            &rem::TraverseOptions {
                depth: 5,
                ..Default::default()
            },
        )
        .unwrap()
        .len()
    };
    assert_eq!(walk(&replica), walk(&primary));

    // Out of order: refused, nothing applied.
    primary.insert("doc", json!({"k": "late1"})).unwrap();
    primary.insert("doc", json!({"k": "late2"})).unwrap();
    let batch = primary.replication_batch(replica.last_seq(), 10).unwrap();
    let before = replica.last_seq();
    match replica.apply_replicated(&batch[1..]) {
        Err(Error::Gap { expected, got }) => {
            assert_eq!((expected, got), (before + 1, before + 2))
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(replica.last_seq(), before);

    // Local writes are refused on a replica; promotion makes it a primary whose
    // sequence continues.
    let err = replica.insert("doc", json!({"k": "local"})).unwrap_err();
    assert!(matches!(err, Error::Replica { .. }), "{err}");
    let seq = replica.promote().unwrap();
    assert_eq!(replica.replication_role(), ReplicationRole::Primary);
    replica.insert("doc", json!({"k": "local"})).unwrap();
    assert_eq!(replica.last_seq(), seq + 1);
}

#[test]
fn only_a_new_database_becomes_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "x");
    db.register_schema(json!({"name": "t", "properties": {"a": {"type": "string"}}}))
        .unwrap();
    let err = db.become_replica("127.0.0.1:1").unwrap_err();
    assert!(err.to_string().contains("its own data"), "{err}");
    assert_eq!(db.replication_role(), ReplicationRole::Standalone);
    // Retention keeps the newest records and reports the oldest kept.
    let last = db.last_seq();
    assert_eq!(db.apply_retention(2).unwrap(), last - 1);
    let status = db.log_status().unwrap();
    assert_eq!(
        (status.entries, status.first_seq, status.last_seq),
        (2, last - 1, last)
    );
    assert!(db.replication_batch(0, 10).unwrap()[0].seq == last - 1);
}
