//! Tenant isolation at the API level: every read path stays inside its tenant.

use rem::{Filter, ScanOptions};
use serde_json::json;

use crate::{fill, tasks_db};

#[test]
fn no_read_path_crosses_tenants() {
    let db = tasks_db();
    fill(&db);
    let other = db.for_tenant("other").unwrap();
    // The table is per tenant: not registered for `other`.
    assert!(matches!(
        other.scan("tasks", &Filter::All, &ScanOptions::default()),
        Err(rem::Error::UnknownTable(_))
    ));
    other
        .register_schema(db.schema("tasks").unwrap().document.clone())
        .unwrap();
    other
        .insert(
            "tasks",
            json!({"code": "T-001", "status": "open", "tags": ["urgent"]}),
        )
        .unwrap();

    let mine = db.lookup("T-001").unwrap();
    let theirs = other.lookup("T-001").unwrap();
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_ne!(mine[0].id, theirs[0].id);
    assert!(other.get(&mine[0].id).unwrap().is_none());
    assert!(db.get(&theirs[0].id).unwrap().is_none());
    assert!(other.lookup(&mine[0].id.to_string()).unwrap().is_empty());
    for f in [
        Filter::All,
        Filter::eq("status", "open"),
        Filter::eq("tags", "urgent"),
        Filter::eq("code", "T-001"),
        Filter::eq("id", mine[0].id.to_string()),
    ] {
        let r = other.scan("tasks", &f, &ScanOptions::default()).unwrap();
        assert!(
            r.entities.iter().all(|e| e.id == theirs[0].id),
            "{f:?} leaked"
        );
    }
    assert_eq!(
        other
            .scan("tasks", &Filter::All, &ScanOptions::default())
            .unwrap()
            .entities
            .len(),
        1
    );
    assert!(other.delete(&mine[0].id).is_err());
    let stats = other.stats().unwrap();
    let tasks = stats.tables.iter().find(|(t, _, _)| t == "tasks").unwrap();
    assert_eq!(tasks.1, 1);
    assert!(db.verify().unwrap().is_ok());
}
