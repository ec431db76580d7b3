//! Built-in tables registered by `rem init` (SPEC §2.4) and the schema templates.

use serde_json::{json, Value};

/// Built-in tables with their singular aliases.
pub(crate) const BUILTIN_TABLES: [(&str, &str); 6] = [
    ("schemas", "schema"),
    ("resources", "resource"),
    ("files", "file"),
    ("moments", "moment"),
    ("sessions", "session"),
    ("messages", "message"),
];

/// Template names with a one-line description, for `rem schema templates`.
pub const TEMPLATES: [(&str, &str); 4] = [
    (
        "resources",
        "Chunked documents with embeddings (URI-based key)",
    ),
    ("entities", "Generic structured data (name-based key)"),
    (
        "agentlets",
        "AI agent definitions (embedded description, tools, resources)",
    ),
    ("moments", "Temporal classifications (time-range queries)"),
];

/// Lowercases a table name and maps built-in singular aliases to their table
/// (`Resource` → `resources`).
pub fn canonical_table_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    BUILTIN_TABLES
        .iter()
        .find(|(_, alias)| *alias == lower)
        .map(|(table, _)| table.to_string())
        .unwrap_or(lower)
}

/// The documents of the built-in tables, `schemas` first.
pub fn builtin_schemas() -> Vec<Value> {
    vec![
        json!({
            "name": "schemas", "title": "Schema", "short_name": "schema",
            "fully_qualified_name": "rem.system.Schema", "version": "1.0.0", "category": "system",
            "description": "Schema definition of a REM table: its JSON Schema, description and indexing configuration.",
            "key_field": "name", "indexed_fields": ["name", "category"],
            "embedding_fields": ["description"], "embedding_provider": "default",
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Schema name (table name)"},
                "fully_qualified_name": {"type": ["string", "null"]},
                "short_name": {"type": ["string", "null"]},
                "version": {"type": ["string", "null"]},
                "category": {"type": "string", "enum": ["system", "agents", "public", "user"]},
                "title": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"], "description": "System prompt from the model docstring"},
                "type": {"type": "string"},
                "properties": {"type": "object"},
                "required": {"type": "array", "items": {"type": "string"}},
                "indexed_fields": {"type": "array", "items": {"type": "string"}},
                "tools": {"type": "array"}
            },
            "required": ["name"]
        }),
        resources_doc("resources", "rem.system.Resource", "system"),
        json!({
            "name": "files", "title": "File", "short_name": "file",
            "fully_qualified_name": "rem.system.File", "version": "1.0.0", "category": "system",
            "description": "Original file record before chunking into resources.",
            "key_field": "uri", "indexed_fields": ["uri", "file_type", "status"],
            "type": "object",
            "properties": {
                "uri": {"type": "string", "description": "File URI (unique)"},
                "name": {"type": "string"},
                "file_type": {"type": "string"},
                "size_bytes": {"type": "integer", "minimum": 0},
                "content_hash": {"type": ["string", "null"], "description": "SHA-256 of the content"},
                "status": {"type": "string", "enum": ["pending", "processing", "completed", "failed"], "default": "pending"},
                "chunk_count": {"type": "integer", "minimum": 0, "default": 0},
                "metadata": {"type": "object"}
            },
            "required": ["uri", "name"]
        }),
        moments_doc("moments", "rem.system.Moment", "system"),
        json!({
            "name": "sessions", "title": "Session", "short_name": "session",
            "fully_qualified_name": "rem.system.Session", "version": "1.0.0", "category": "system",
            "description": "A conversation session with an AI agent.",
            "indexed_fields": ["case_id", "user_id"],
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"]},
                "case_id": {"type": ["string", "null"], "description": "Optional link to a project or case"},
                "user_id": {"type": ["string", "null"]},
                "metadata": {"type": "object"}
            }
        }),
        json!({
            "name": "messages", "title": "Message", "short_name": "message",
            "fully_qualified_name": "rem.system.Message", "version": "1.0.0", "category": "system",
            "description": "A message within a session: user queries, AI responses, tool calls.",
            "indexed_fields": ["session_id", "role"],
            "embedding_fields": ["content"], "embedding_provider": "default",
            "type": "object",
            "properties": {
                "session_id": {"type": "string"},
                "role": {"type": "string", "enum": ["user", "assistant", "system", "tool"]},
                "content": {"type": "string"},
                "tool_calls": {"type": "array"},
                "trace_id": {"type": ["string", "null"]},
                "span_id": {"type": ["string", "null"]}
            },
            "required": ["session_id", "role", "content"]
        }),
    ]
}

fn resources_doc(name: &str, fqn: &str, category: &str) -> Value {
    json!({
        "name": name, "title": "Resource", "short_name": name,
        "fully_qualified_name": fqn, "version": "1.0.0", "category": category,
        "description": "Chunked, embedded content from documents.",
        "key_field": "uri", "indexed_fields": ["category", "name"],
        "embedding_fields": ["content"], "embedding_provider": "default",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Resource name or title"},
            "content": {"type": "string", "description": "Full text content (embedded)"},
            "category": {"type": ["string", "null"]},
            "metadata": {"type": "object"},
            "ordinal": {"type": "integer", "minimum": 0, "default": 0, "description": "Chunk ordinal within the source"},
            "uri": {"type": "string", "description": "Source URI or file path"}
        },
        "required": ["content"]
    })
}

fn moments_doc(name: &str, fqn: &str, category: &str) -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "name": name, "title": "Moment", "short_name": name,
        "fully_qualified_name": fqn, "version": "1.0.0", "category": category,
        "description": "Temporal classification with a time range: events, periods, milestones.",
        "key_field": "name", "indexed_fields": ["moment_type", "start_time", "end_time"],
        "embedding_fields": ["description"], "embedding_provider": "default",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "moment_type": {"type": "string"},
            "start_time": {"type": "string", "format": "date-time"},
            "end_time": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "classifications": strings,
            "summary": {"type": ["string", "null"]},
            "description": {"type": ["string", "null"], "description": "Embedded"},
            "tags": strings,
            "emotion_tags": strings,
            "people": strings,
            "resource_refs": strings,
            "entity_refs": strings,
            "session_ids": strings,
            "parent_moment_id": {"type": ["string", "null"]},
            "metadata": {"type": "object"}
        },
        "required": ["name", "start_time"]
    })
}

/// A new schema document called `name`, cloned from template `template`
/// (see [`TEMPLATES`]); `None` for an unknown template.
pub fn template(template: &str, name: &str) -> Option<Value> {
    let fqn = format!("user.{name}");
    let mut doc = match template {
        "resources" | "resource" => resources_doc(name, &fqn, "user"),
        "moments" | "moment" => moments_doc(name, &fqn, "user"),
        "entities" | "entity" => json!({
            "description": "Generic structured entity with a name, a key and free-form properties.",
            "key_field": "name", "indexed_fields": ["name", "key"],
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "key": {"type": ["string", "null"]},
                "properties": {"type": "object"}
            },
            "required": ["name"]
        }),
        "agentlets" | "agentlet" => json!({
            "description": "An AI agent definition: its system prompt, tools and resources.",
            "key_field": "name", "indexed_fields": ["name"],
            "embedding_fields": ["description"], "embedding_provider": "default",
            "tools": [],
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string", "description": "System prompt (embedded)"},
                "tools": {"type": "array", "items": {"type": "object"}},
                "resources": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name", "description"]
        }),
        _ => return None,
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("name".into(), json!(name));
        obj.insert("short_name".into(), json!(name));
        obj.insert("title".into(), json!(name));
        obj.insert("fully_qualified_name".into(), json!(fqn));
        obj.insert("category".into(), json!("user"));
        obj.insert("version".into(), json!("1.0.0"));
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schema;

    #[test]
    fn builtins_and_templates_parse() {
        for doc in builtin_schemas() {
            Schema::from_document(doc).unwrap();
        }
        for (t, _) in TEMPLATES {
            let s = Schema::from_document(template(t, "my_docs").unwrap()).unwrap();
            assert_eq!(s.name, "my_docs");
            assert_eq!(s.fully_qualified_name.as_deref(), Some("user.my_docs"));
        }
        assert!(template("nope", "x").is_none());
    }
}
