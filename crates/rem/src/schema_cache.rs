//! The schema cache: compiled schemas by tenant and table, in front of the schema
//! registry in the store (the tenant's `schemas` entities, then the built-in
//! definitions). A schema is compiled once (its validator included) and then shared.
//!
//! Registration puts the new schema in the cache in the same write; a replicated
//! schema change evicts it, so the next use reads the stored document.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rem_storage::{ColumnFamily, Store};
use serde_json::Value;

use crate::format::entities::entity_key_bytes;
use crate::schema::{builtin_schemas, canonical_table_name};
use crate::{Entity, EntityId, Error, Result, Schema};

/// Compiled schemas by `(tenant, table)`.
#[derive(Default)]
pub(crate) struct SchemaCache {
    schemas: RwLock<HashMap<(String, String), Arc<Schema>>>,
}

impl SchemaCache {
    /// The schema of `table` for `tenant` (case-insensitive; built-in singular aliases
    /// accepted): cached, else stored, else built in.
    pub(crate) fn get(&self, store: &Store, tenant: &str, table: &str) -> Result<Arc<Schema>> {
        let name = canonical_table_name(table);
        let cache_key = (tenant.to_string(), name.clone());
        if let Some(s) = self
            .schemas
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
        {
            return Ok(s.clone());
        }
        let schema = match load_stored(store, tenant, &name)? {
            Some(s) => s,
            None => match builtin_schemas()
                .into_iter()
                .find(|d| d["name"] == name.as_str())
            {
                // Read-only handles on a tenant that never wrote see the built-ins too.
                Some(doc) => Arc::new(Schema::from_document(doc)?),
                None => return Err(Error::UnknownTable(name)),
            },
        };
        self.insert(tenant, schema.clone());
        Ok(schema)
    }

    /// Caches `schema` for `tenant` (replacing what was cached for its table).
    pub(crate) fn insert(&self, tenant: &str, schema: Arc<Schema>) {
        self.schemas
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((tenant.to_string(), schema.name.clone()), schema);
    }

    /// Forgets `tenant`'s cached schema of `table`: the next use reads the store.
    pub(crate) fn evict(&self, tenant: &str, table: &str) {
        self.schemas
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_string(), table.to_string()));
    }
}

/// The stored, live schema `name` of `tenant`, compiled.
fn load_stored(store: &Store, tenant: &str, name: &str) -> Result<Option<Arc<Schema>>> {
    let id = EntityId::from_key(tenant, "schemas", name);
    let Some(bytes) = store.get(
        ColumnFamily::Entities,
        &entity_key_bytes(tenant, "schemas", &id),
    )?
    else {
        return Ok(None);
    };
    let entity = Entity::decode("schemas", &bytes)?;
    if entity.is_deleted() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Schema::from_document(Value::Object(
        entity.properties,
    ))?)))
}
