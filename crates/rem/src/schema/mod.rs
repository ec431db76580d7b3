//! Schemas: a table is a JSON Schema document plus extension keys (SPEC §2.1).
//!
//! [`Schema::from_document`] reads the extension keys (schema level, under
//! `json_schema_extra`, and field level), derives the table name, works out each
//! property's type for indexing, and compiles the validator once.

mod builtin;
mod python;

pub(crate) use builtin::BUILTIN_TABLES;
pub use builtin::{builtin_schemas, canonical_table_name, template, TEMPLATES};
pub use python::load_pydantic_schema;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The type of a property, as far as indexing and SQL care.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldType {
    /// `type: string`.
    String,
    /// `type: integer`.
    Integer,
    /// `type: number`.
    Number,
    /// `type: boolean`.
    Boolean,
    /// `type: string, format: date-time`.
    Timestamp,
    /// `type: array` of the item type.
    Array(Box<FieldType>),
    /// `type: object` or anything else structured.
    Object,
    /// No usable type information.
    Any,
}

/// A registered table: its JSON Schema and what the database does with each field.
#[derive(Debug)]
pub struct Schema {
    /// Table name: lowercase identifier.
    pub name: String,
    /// e.g. `myapp.Person`.
    pub fully_qualified_name: Option<String>,
    /// Semantic version of the schema.
    pub version: Option<String>,
    /// `system`, `agents`, `public` or `user`.
    pub category: String,
    /// The model docstring; embedded so tables can be found by meaning.
    pub description: Option<String>,
    /// Field whose value is the entity key.
    pub key_field: Option<String>,
    /// Fields with a secondary index.
    pub indexed_fields: Vec<String>,
    /// Fields whose text is embedded.
    pub embedding_fields: Vec<String>,
    /// Embedding provider per embedded field (`default` means `P8_DEFAULT_EMBEDDING`).
    pub embedding_providers: BTreeMap<String, String>,
    /// Fields indexed for fuzzy matching.
    pub trigram_fields: Vec<String>,
    /// MCP tool references (stored, not interpreted).
    pub tools: Vec<Value>,
    /// The document as registered, with `name` filled in.
    pub document: Value,
    field_types: BTreeMap<String, FieldType>,
    validator: jsonschema::Validator,
}

impl Schema {
    /// Builds a schema from a JSON Schema document. Fails with
    /// [`Error::InvalidSchema`] on anything unusable; never registers anything itself.
    pub fn from_document(doc: Value) -> Result<Schema> {
        let Value::Object(mut obj) = doc else {
            return Err(Error::InvalidSchema(
                "a schema must be a JSON object".into(),
            ));
        };
        if let Some(t) = obj.get("type") {
            if t != "object" {
                return Err(Error::InvalidSchema(format!(
                    "top-level type must be \"object\", not {t}"
                )));
            }
        }
        let extra = obj
            .get("json_schema_extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let ext = |key: &str| obj.get(key).or_else(|| extra.get(key)).cloned();
        let ext_str = |key: &str| -> Result<Option<String>> {
            match ext(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(Error::InvalidSchema(format!(
                    "'{key}' must be a string, not {other}"
                ))),
            }
        };
        let ext_list = |key: &str| -> Result<Vec<String>> {
            match ext(key) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(items)) => items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(Error::InvalidSchema(format!(
                            "'{key}' must list field names, found {other}"
                        ))),
                    })
                    .collect(),
                Some(other) => Err(Error::InvalidSchema(format!(
                    "'{key}' must be a list of field names, not {other}"
                ))),
            }
        };

        let raw_name = match (ext_str("name")?, ext_str("short_name")?, ext_str("title")?) {
            (Some(n), _, _) => n,
            (None, Some(n), _) => n,
            (None, None, Some(title)) => snake_case(&title),
            (None, None, None) => {
                return Err(Error::InvalidSchema(
                    "the schema has no name: set 'name', 'short_name' or 'title'".into(),
                ))
            }
        };
        let name = canonical_table_name(&raw_name);
        validate_table_name(&name)?;

        let properties = match obj.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => {
                return Err(Error::InvalidSchema(
                    "'properties' must be an object".into(),
                ))
            }
        };
        let defs = obj.get("$defs").or_else(|| obj.get("definitions")).cloned();

        let mut key_field = ext_str("key_field")?;
        let mut indexed_fields = ext_list("indexed_fields")?;
        let mut embedding_fields = ext_list("embedding_fields")?;
        let mut trigram_fields = ext_list("trigram_fields")?;
        let schema_provider = ext_str("embedding_provider")?;
        let mut embedding_providers = BTreeMap::new();
        let mut field_types = BTreeMap::new();

        for (field, prop) in &properties {
            if crate::entity::SYSTEM_FIELDS.contains(&field.as_str()) {
                return Err(Error::InvalidSchema(format!(
                    "property '{field}' is a system field and cannot be declared"
                )));
            }
            field_types.insert(field.clone(), field_type(prop, defs.as_ref()));
            let Some(p) = prop.as_object() else { continue };
            let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
            if flag("key_field") {
                if key_field.as_deref().is_some_and(|k| k != field) {
                    return Err(Error::InvalidSchema(format!(
                        "two key fields: '{}' and '{field}'",
                        key_field.unwrap_or_default()
                    )));
                }
                key_field = Some(field.clone());
            }
            if flag("indexed") && !indexed_fields.contains(field) {
                indexed_fields.push(field.clone());
            }
            if flag("trigram") && !trigram_fields.contains(field) {
                trigram_fields.push(field.clone());
            }
            if let Some(provider) = p.get("embedding_provider").and_then(Value::as_str) {
                if !embedding_fields.contains(field) {
                    embedding_fields.push(field.clone());
                }
                embedding_providers.insert(field.clone(), provider.to_string());
            }
        }
        // A schema naming a provider but no fields embeds `content` / `description`.
        if embedding_fields.is_empty() && schema_provider.is_some() {
            for candidate in ["content", "description"] {
                if field_types.get(candidate) == Some(&FieldType::String) {
                    embedding_fields.push(candidate.to_string());
                }
            }
        }
        for field in &embedding_fields {
            embedding_providers
                .entry(field.clone())
                .or_insert_with(|| schema_provider.clone().unwrap_or_else(|| "default".into()));
        }
        for (what, list) in [
            ("indexed field", &indexed_fields),
            ("embedding field", &embedding_fields),
            ("trigram field", &trigram_fields),
        ] {
            for f in list {
                if !field_types.contains_key(f) {
                    return Err(Error::InvalidSchema(format!(
                        "{what} '{f}' is not a property of the schema"
                    )));
                }
            }
        }
        if let Some(k) = &key_field {
            if !field_types.contains_key(k) {
                return Err(Error::InvalidSchema(format!(
                    "key field '{k}' is not a property of the schema"
                )));
            }
        }
        let category = ext_str("category")?.unwrap_or_else(|| "user".into());
        if !["system", "agents", "public", "user"].contains(&category.as_str()) {
            return Err(Error::InvalidSchema(format!(
                "category must be system, agents, public or user, not '{category}'"
            )));
        }
        let tools = match ext("tools") {
            Some(Value::Array(t)) => t,
            None | Some(Value::Null) => vec![],
            Some(_) => return Err(Error::InvalidSchema("'tools' must be a list".into())),
        };

        let fully_qualified_name = ext_str("fully_qualified_name")?;
        let version = ext_str("version")?;
        let description = ext_str("description")?;
        obj.insert("name".into(), Value::String(name.clone()));
        let document = Value::Object(obj);
        let validator = compile_validator(&document)?;
        Ok(Schema {
            fully_qualified_name,
            version,
            description,
            category,
            key_field,
            indexed_fields,
            embedding_fields,
            embedding_providers,
            trigram_fields,
            tools,
            name,
            document,
            field_types,
            validator,
        })
    }

    /// Reads a schema file: `.json`, `.yaml`/`.yml`, or `models.py::Class` (Pydantic,
    /// exported by running the interpreter `python`).
    pub fn from_source(source: &str, python: &str) -> Result<Schema> {
        if let Some((file, class)) = source.split_once("::") {
            return Schema::from_document(load_pydantic_schema(Path::new(file), class, python)?);
        }
        let path = Path::new(source);
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: source.to_string(),
            source: e,
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let doc: Value = match ext.as_str() {
            "yaml" | "yml" => serde_yaml::from_str(&text).map_err(|e| Error::InvalidJson {
                location: Some(format!("(YAML) in {source}")),
                message: e.to_string(),
            })?,
            "py" => {
                return Err(Error::InvalidInput(format!(
                    "name the model class: `rem schema add {source}::ClassName`"
                )))
            }
            _ => serde_json::from_str(&text).map_err(|e| Error::InvalidJson {
                location: Some(format!("in {source}")),
                message: e.to_string(),
            })?,
        };
        Schema::from_document(doc)
    }

    /// The type of a property (`None` for unknown fields).
    pub fn field_type(&self, field: &str) -> Option<&FieldType> {
        self.field_types.get(field)
    }

    /// Every property with its type, in name order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &FieldType)> {
        self.field_types.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when `field` has a secondary index.
    pub fn is_indexed(&self, field: &str) -> bool {
        self.indexed_fields.iter().any(|f| f == field)
    }

    /// Validates a record's properties; the error names the field and the rule.
    pub fn validate(&self, props: &Value) -> Result<()> {
        if self.validator.is_valid(props) {
            return Ok(());
        }
        let first = self.validator.iter_errors(props).next();
        let field = first.as_ref().and_then(|e| {
            let path = e.instance_path.to_string();
            let mut f = path.trim_start_matches('/').replace('/', ".");
            // A missing field is reported at its parent: name the field itself.
            if let jsonschema::error::ValidationErrorKind::Required { property } = &e.kind {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_string);
                f = if f.is_empty() {
                    name
                } else {
                    format!("{f}.{name}")
                };
            }
            (!f.is_empty()).then_some(f)
        });
        let rule = first.as_ref().and_then(|e| {
            let path = e.schema_path.to_string();
            path.rsplit('/')
                .next()
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        });
        let detail = self
            .validator
            .iter_errors(props)
            .take(3)
            .map(|e| {
                let path = e.instance_path.to_string();
                let field = path.trim_start_matches('/').replace('/', ".");
                if field.is_empty() {
                    e.to_string()
                } else {
                    format!("field '{field}': {e}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::Validation {
            table: self.name.clone(),
            detail,
            field,
            rule,
        })
    }
}

fn compile_validator(document: &Value) -> Result<jsonschema::Validator> {
    // Extension keys are unknown keywords to the validator and are ignored by it.
    jsonschema::options()
        .should_validate_formats(true)
        .build(document)
        .map_err(|e| Error::InvalidSchema(e.to_string()))
}

/// Table names: lowercase ASCII identifiers of at most 64 characters.
pub(crate) fn validate_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchema(format!(
            "'{name}' is not a valid table name (letters, digits and _, starting with a letter)"
        )))
    }
}

/// `ArticleChunk` → `article_chunk`; spaces and dashes become `_`.
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c == ' ' || c == '-' || c == '.' {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Works out a property's type from `type`, `format`, `anyOf`/`oneOf` (Pydantic's
/// `Optional[...]`), `items` and local `$ref`s.
fn field_type(prop: &Value, defs: Option<&Value>) -> FieldType {
    field_type_depth(prop, defs, 0)
}

fn field_type_depth(prop: &Value, defs: Option<&Value>, depth: usize) -> FieldType {
    if depth > 8 {
        return FieldType::Any;
    }
    let Some(p) = prop.as_object() else {
        return FieldType::Any;
    };
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        return match defs.and_then(|d| d.get(name)) {
            Some(target) => field_type_depth(target, defs, depth + 1),
            None => FieldType::Any,
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = p.get(key) {
            let types: Vec<FieldType> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .map(|o| field_type_depth(o, defs, depth + 1))
                .collect();
            return match types.as_slice() {
                [single] => single.clone(),
                _ => FieldType::Any,
            };
        }
    }
    let ty = match p.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match ty {
        Some("string") => match p.get("format").and_then(Value::as_str) {
            Some("date-time") => FieldType::Timestamp,
            _ => FieldType::String,
        },
        Some("integer") => FieldType::Integer,
        Some("number") => FieldType::Number,
        Some("boolean") => FieldType::Boolean,
        Some("array") => FieldType::Array(Box::new(
            p.get("items")
                .map(|i| field_type_depth(i, defs, depth + 1))
                .unwrap_or(FieldType::Any),
        )),
        Some("object") => FieldType::Object,
        _ if p.contains_key("properties") => FieldType::Object,
        _ if p.contains_key("enum") => FieldType::String,
        _ => FieldType::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extension_keys_at_every_level() {
        let s = Schema::from_document(json!({
            "title": "PersonRecord",
            "description": "A person.",
            "json_schema_extra": {"key_field": "email", "indexed_fields": ["role"], "category": "public"},
            "properties": {
                "email": {"type": "string"},
                "role": {"type": "string"},
                "age": {"type": "integer", "indexed": true},
                "bio": {"anyOf": [{"type": "string"}, {"type": "null"}], "embedding_provider": "default"},
                "nick": {"type": "string", "trigram": true},
                "born": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        }))
        .unwrap();
        assert_eq!(s.name, "person_record");
        assert_eq!(s.key_field.as_deref(), Some("email"));
        assert_eq!(s.indexed_fields, vec!["role", "age"]);
        assert_eq!(s.embedding_fields, vec!["bio"]);
        assert_eq!(s.trigram_fields, vec!["nick"]);
        assert_eq!(s.category, "public");
        assert_eq!(s.field_type("bio"), Some(&FieldType::String));
        assert_eq!(s.field_type("born"), Some(&FieldType::Timestamp));
        assert_eq!(
            s.field_type("tags"),
            Some(&FieldType::Array(Box::new(FieldType::String)))
        );
    }

    #[test]
    fn validation_names_field_and_rule() {
        let s = Schema::from_document(json!({
            "name": "t", "required": ["age"],
            "properties": {"age": {"type": "integer"}, "when": {"type": "string", "format": "date-time"}}
        }))
        .unwrap();
        assert!(s.validate(&json!({"age": 3})).is_ok());
        let msg = s.validate(&json!({"age": "x"})).unwrap_err().to_string();
        assert!(msg.contains("'age'") && msg.contains("integer"), "{msg}");
        let msg = s.validate(&json!({})).unwrap_err().to_string();
        assert!(msg.contains("required"), "{msg}");
        let msg = s
            .validate(&json!({"age": 1, "when": "not a time"}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("'when'") && msg.contains("date-time"), "{msg}");
    }

    #[test]
    fn bad_schemas_are_refused() {
        for (doc, needle) in [
            (json!([1]), "JSON object"),
            (json!({"properties": {}}), "no name"),
            (json!({"name": "9x"}), "not a valid table name"),
            (
                json!({"name": "t", "indexed_fields": ["nope"], "properties": {}}),
                "'nope'",
            ),
            (
                json!({"name": "t", "properties": {"id": {"type": "string"}}}),
                "system field",
            ),
            (
                json!({"name": "t", "properties": {"a": {"type": 5}}}),
                "invalid schema",
            ),
            (json!({"name": "t", "category": "weird"}), "category"),
        ] {
            let msg = Schema::from_document(doc).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(snake_case("ArticleChunk"), "article_chunk");
        assert_eq!(snake_case("My Docs"), "my_docs");
        assert_eq!(canonical_table_name("Resource"), "resources");
        assert_eq!(canonical_table_name("Articles"), "articles");
    }
}
