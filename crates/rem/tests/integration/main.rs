//! Engine integration tests through the public `Database` API.

// Test helpers may panic: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod crash;
mod edges;
mod graph;
mod indexes;
mod isolation;
mod lifecycle;
mod model;
mod replication;
mod search;

use rem::Database;
use serde_json::json;

/// An in-memory database with a `tasks` table: indexed string, integer, number,
/// timestamp and array fields, key field `code`.
pub(crate) fn tasks_db() -> Database {
    let db = Database::in_memory().expect("in-memory database");
    register_tasks(&db);
    db
}

/// Registers the `tasks` table: a key field and an index of every type.
pub(crate) fn register_tasks(db: &Database) {
    db.register_schema(json!({
        "name": "tasks", "key_field": "code",
        "indexed_fields": ["status", "priority", "effort", "due", "tags"],
        "properties": {
            "code": {"type": "string"},
            "status": {"type": "string"},
            "priority": {"type": "integer"},
            "effort": {"type": "number"},
            "due": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"}
        },
        "required": ["code"]
    }))
    .expect("register tasks");
}

const STATUSES: [&str; 4] = ["open", "done", "blocked", "review"];

/// 200 tasks with predictable field values.
pub(crate) fn fill(db: &Database) {
    let records = (0..200)
        .map(|i| {
            json!({
                "code": format!("T-{i:03}"),
                "status": STATUSES[i % 4],
                "priority": (i % 10) as i64 - 3,
                "effort": (i as f64) * 0.5 - 20.0,
                "due": format!("2025-{:02}-{:02}T12:00:00Z", 1 + i % 12, 1 + i % 28),
                "tags": if i % 3 == 0 { json!(["urgent", "db"]) } else { json!(["db"]) },
                "note": format!("note {i}")
            })
        })
        .collect();
    db.insert_batch("tasks", records).expect("fill");
}
