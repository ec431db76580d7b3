//! Entity ids: deterministic from the entity's key (SPEC §2.3) or random.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// A 16-byte entity id, shown as a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(pub uuid::Uuid);

impl EntityId {
    /// The id of the entity whose key is `key_value` in `table` of `tenant`:
    /// the first 16 bytes of `blake3("{tenant}:{table}:{key_value}")`.
    ///
    /// This formula is part of the on-disk format (a golden test pins it).
    pub fn from_key(tenant: &str, table: &str, key_value: &str) -> Self {
        let digest = blake3::hash(format!("{tenant}:{table}:{key_value}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_bytes()[..16]);
        EntityId(uuid::Uuid::from_bytes(bytes))
    }

    /// A random (v4) id, for entities without a key.
    pub fn random() -> Self {
        EntityId(uuid::Uuid::new_v4())
    }

    /// Parses the textual UUID form.
    pub fn parse(s: &str) -> Result<Self> {
        uuid::Uuid::parse_str(s.trim())
            .map(EntityId)
            .map_err(|_| Error::InvalidInput(format!("'{s}' is not a valid id (expected a UUID)")))
    }

    /// The 16 raw bytes (used in keys).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from 16 raw bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(bytes).ok().map(EntityId)
    }
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The key of a record and where it came from, by the precedence of SPEC §2.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityKey {
    /// The value hashed into the id (`uri#ordinal` for chunks).
    pub(crate) value: String,
    /// Further values under which lookup finds the entity (the bare `uri` of a chunk).
    pub(crate) aliases: Vec<String>,
}

/// Finds a record's key: the schema's key field; else `uri` (with `ordinal` or
/// `chunk_ordinal`); else `key`; else `name`. `None` means the id is random.
pub(crate) fn entity_key(key_field: Option<&str>, props: &Map<String, Value>) -> Option<EntityKey> {
    if let Some(field) = key_field {
        if field == "uri" {
            if let Some(k) = uri_key(props) {
                return Some(k);
            }
        } else if let Some(v) = props.get(field).and_then(key_text) {
            return Some(EntityKey {
                value: v,
                aliases: vec![],
            });
        }
    }
    if let Some(k) = uri_key(props) {
        return Some(k);
    }
    for field in ["key", "name"] {
        if let Some(v) = props.get(field).and_then(key_text) {
            return Some(EntityKey {
                value: v,
                aliases: vec![],
            });
        }
    }
    None
}

fn uri_key(props: &Map<String, Value>) -> Option<EntityKey> {
    let uri = props.get("uri").and_then(key_text)?;
    let ordinal = props
        .get("ordinal")
        .or_else(|| props.get("chunk_ordinal"))
        .and_then(key_text);
    Some(match ordinal {
        Some(ord) => EntityKey {
            value: format!("{uri}#{ord}"),
            aliases: vec![uri],
        },
        None => EntityKey {
            value: uri,
            aliases: vec![],
        },
    })
}

/// The text form of a key value: strings as they are, numbers and booleans in JSON
/// notation; null, arrays, objects and empty strings are not keys.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn golden_id_formula() {
        // Pinned: changing these values changes every stored id (docs/format.md).
        // Values computed independently with the Python `blake3` package:
        // uuid.UUID(bytes=blake3.blake3(b"default:person:alice@example.com").digest()[:16])
        let id = EntityId::from_key("default", "person", "alice@example.com");
        let digest = blake3::hash(b"default:person:alice@example.com");
        assert_eq!(id.as_bytes(), &digest.as_bytes()[..16]);
        assert_eq!(id.to_string(), "2b8afd88-062a-960f-575f-889fe1f87678");
        assert_eq!(
            EntityId::from_key("default", "resources", "file:///a.md#0").to_string(),
            "0f85eb8b-6c51-9038-2090-2ae638e65df3"
        );
    }

    #[test]
    fn key_precedence() {
        let p = props(json!({"email": "a@x", "uri": "u", "name": "n"}));
        assert_eq!(entity_key(Some("email"), &p).unwrap().value, "a@x");
        assert_eq!(entity_key(None, &p).unwrap().value, "u");
        let p = props(json!({"uri": "u", "ordinal": 3, "key": "k"}));
        let k = entity_key(None, &p).unwrap();
        assert_eq!(
            (k.value.as_str(), k.aliases),
            ("u#3", vec!["u".to_string()])
        );
        let p = props(json!({"uri": "u", "chunk_ordinal": 0}));
        assert_eq!(entity_key(Some("uri"), &p).unwrap().value, "u#0");
        assert_eq!(
            entity_key(None, &props(json!({"key": "k", "name": "n"})))
                .unwrap()
                .value,
            "k"
        );
        assert_eq!(
            entity_key(None, &props(json!({"name": "n"})))
                .unwrap()
                .value,
            "n"
        );
        assert_eq!(entity_key(None, &props(json!({"title": "t"}))), None);
        // A key field absent from the record falls through to the default precedence.
        assert_eq!(
            entity_key(Some("email"), &props(json!({"name": "n"})))
                .unwrap()
                .value,
            "n"
        );
    }
}
