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

/// A replica behind the retained log takes a checkpoint of the primary, swapped in for
/// its database, and continues from the copy's sequence number.
#[test]
fn a_replica_bootstraps_from_a_checkpoint_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let primary = open(dir.path(), "p");
    primary
        .register_schema(json!({
            "name": "doc", "key_field": "k", "indexed_fields": ["tag"],
            "properties": {"k": {"type": "string"}, "tag": {"type": "string"}}
        }))
        .unwrap();
    for i in 0..40 {
        primary
            .insert(
                "doc",
                json!({"k": format!("d{i}"), "tag": format!("t{}", i % 4)}),
            )
            .unwrap();
    }
    primary.apply_retention(5).unwrap();
    let replica_path = dir.path().join("r");
    let replica = open(dir.path(), "r");
    replica.become_replica("127.0.0.1:1").unwrap();
    // The primary no longer holds change 1: the batch does not start where the replica is.
    assert!(primary.replication_batch(0, 10).unwrap()[0].seq > 1);

    // The primary's copy, as the Snapshot RPC would send it, lands in the staging folder.
    let staging = rem::snapshot_staging_path(&replica_path);
    primary.checkpoint(&staging).unwrap();
    let seq = rem::prepare_snapshot(&staging, "127.0.0.1:1").unwrap();
    assert_eq!(seq, primary.last_seq());
    // A reader opening the database meanwhile leaves a staged copy alone.
    rem::recover_snapshot_install(&replica_path).unwrap();
    assert!(staging.exists());
    drop(replica);
    rem::install_snapshot(&replica_path).unwrap();
    assert!(!staging.exists());

    let replica = open(dir.path(), "r");
    assert_eq!(
        replica.replication_role(),
        ReplicationRole::Replica {
            primary: "127.0.0.1:1".into()
        }
    );
    assert_eq!(replica.last_seq(), seq);
    assert!(replica.insert("doc", json!({"k": "local"})).is_err());
    primary
        .insert("doc", json!({"k": "after", "tag": "t9"}))
        .unwrap();
    sync(&primary, &replica, 100);
    assert_eq!(
        replica.content_checksum().unwrap(),
        primary.content_checksum().unwrap()
    );
    assert!(replica.verify().unwrap().is_ok());
    assert_eq!(replica.lookup("after").unwrap().len(), 1);
}

/// A crash between the two renames of an install is finished or undone on the next
/// open, whichever keeps a whole database.
#[test]
fn an_interrupted_snapshot_install_is_recovered_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(dir.path(), "source");
    source
        .register_schema(json!({"name": "doc", "key_field": "k",
                                "properties": {"k": {"type": "string"}}}))
        .unwrap();
    source.insert("doc", json!({"k": "from-snapshot"})).unwrap();
    let path = dir.path().join("r");
    let old = open(dir.path(), "r");
    old.become_replica("127.0.0.1:1").unwrap();
    drop(old);
    let staging = rem::snapshot_staging_path(&path);
    let replaced = path.with_file_name(".r.replaced");

    // Crash after the first rename, with the copy complete: the copy is installed.
    source.checkpoint(&staging).unwrap();
    rem::prepare_snapshot(&staging, "127.0.0.1:1").unwrap();
    std::fs::rename(&path, &replaced).unwrap();
    let db = open(dir.path(), "r");
    assert_eq!(db.lookup("from-snapshot").unwrap().len(), 1);
    assert!(!staging.exists() && !replaced.exists());
    drop(db);

    // Crash after the first rename of a copy that was never completed (no marker):
    // the old database is put back.
    source.checkpoint(&staging).unwrap();
    std::fs::rename(&path, &replaced).unwrap();
    std::fs::remove_dir_all(&staging).unwrap();
    let db = open(dir.path(), "r");
    assert_eq!(db.lookup("from-snapshot").unwrap().len(), 1);
    assert!(!replaced.exists());
    // Installing without a complete copy is refused and changes nothing.
    assert!(rem::install_snapshot(&path).is_err());
    assert!(path.exists());
}
