//! Entities: a record of some table plus the system fields, and timestamps in their
//! text form. The stored encoding is in `format/entities.rs`.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::EntityId;

/// Names reserved for system fields; records cannot set them as properties (`id` is
/// honoured as the entity id, `edges` as the edge list, the rest are ignored).
pub const SYSTEM_FIELDS: [&str; 8] = [
    "id",
    "entity_type",
    "created_at",
    "modified_at",
    "deleted_at",
    "edges",
    "embedding",
    "embedding_alt",
];

/// A stored entity: system fields and the record's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The id (deterministic from the key, or random).
    pub id: EntityId,
    /// The table (schema) name, `entity_type` in output.
    pub table: String,
    /// Creation time; kept on upsert.
    pub created_at: DateTime<Utc>,
    /// Time of the last write.
    pub modified_at: DateTime<Utc>,
    /// Soft-delete time, if deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Ids or qualified keys of related entities.
    pub edges: Vec<String>,
    /// The record's own fields, as validated against the schema.
    pub properties: Map<String, Value>,
}

impl Entity {
    /// True when soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The entity as one flat JSON object: system fields first, then the properties.
    pub fn to_json(&self) -> Value {
        let mut out = Map::with_capacity(self.properties.len() + 6);
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert("entity_type".into(), Value::String(self.table.clone()));
        out.insert(
            "created_at".into(),
            Value::String(format_ts(&self.created_at)),
        );
        out.insert(
            "modified_at".into(),
            Value::String(format_ts(&self.modified_at)),
        );
        out.insert(
            "deleted_at".into(),
            self.deleted_at
                .as_ref()
                .map(|t| Value::String(format_ts(t)))
                .unwrap_or(Value::Null),
        );
        out.insert(
            "edges".into(),
            Value::Array(self.edges.iter().cloned().map(Value::String).collect()),
        );
        for (k, v) in &self.properties {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }

    /// A field by name: system fields, else a property (`None` when absent).
    pub fn field(&self, name: &str) -> Option<Value> {
        match name {
            "id" => Some(Value::String(self.id.to_string())),
            "entity_type" => Some(Value::String(self.table.clone())),
            "created_at" => Some(Value::String(format_ts(&self.created_at))),
            "modified_at" => Some(Value::String(format_ts(&self.modified_at))),
            "deleted_at" => Some(
                self.deleted_at
                    .as_ref()
                    .map(|t| Value::String(format_ts(t)))
                    .unwrap_or(Value::Null),
            ),
            "edges" => Some(Value::Array(
                self.edges.iter().cloned().map(Value::String).collect(),
            )),
            _ => self.properties.get(name).cloned(),
        }
    }
}

/// Formats a timestamp as RFC 3339 in UTC with microseconds, e.g.
/// `2025-10-24T10:30:00.000000Z`.
pub fn format_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 / ISO-8601 timestamp (a date alone means midnight UTC; a time
/// without offset is taken as UTC).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Now, truncated to microseconds (the stored precision).
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = parse_ts("2025-10-24T10:30:00Z").unwrap();
        assert_eq!(format_ts(&t), "2025-10-24T10:30:00.000000Z");
        assert_eq!(
            parse_ts("2025-10-24").unwrap(),
            parse_ts("2025-10-24T00:00:00+00:00").unwrap()
        );
        assert!(parse_ts("yesterday").is_none());
    }
}
