//! Which index entries an entity needs: its `ids` entry, its key-index entries, a
//! field-index entry per indexed value, and the derived `references` edges. The key
//! layouts and the encoding of indexed values are in `format/indexes.rs`.

use rem_storage::{ColumnFamily, ValueCodec};

use crate::format::indexes::{
    field_index_key, id_key, id_value, index_values, key_index_key, stored_index_value,
};
use crate::id::entity_key;
use crate::{Entity, FieldType, Schema};

/// The type under which a field's values are indexed: the element type for arrays.
pub(crate) fn scalar_type(schema: &Schema, field: &str) -> FieldType {
    match schema.field_type(field) {
        Some(FieldType::Array(inner)) => (**inner).clone(),
        Some(other) => other.clone(),
        None => FieldType::Any,
    }
}

/// All index entries (family, key, value) that `entity` needs under `schema`. Used
/// on every write (old entries minus new ones are deleted) and by `verify`. `codec`
/// decides whether values inside keys are stored as they are or as keyed hashes.
pub(crate) fn index_entries(
    codec: &dyn ValueCodec,
    tenant: &str,
    schema: &Schema,
    entity: &Entity,
    canonical: &dyn Fn(&str) -> Option<String>,
) -> Vec<(ColumnFamily, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(4 + schema.indexed_fields.len());
    out.push((
        ColumnFamily::Ids,
        id_key(tenant, &entity.id),
        id_value(&entity.table).to_vec(),
    ));
    if let Some(key) = entity_key(schema.key_field.as_deref(), &entity.properties) {
        for k in std::iter::once(&key.value).chain(key.aliases.iter()) {
            out.push((
                ColumnFamily::KeyIndex,
                key_index_key(codec, tenant, k, &entity.table, &entity.id),
                vec![],
            ));
        }
    }
    for field in &schema.indexed_fields {
        let Some(v) = entity.properties.get(field) else {
            continue;
        };
        let ty = schema.field_type(field).unwrap_or(&FieldType::Any);
        for enc in index_values(ty, v) {
            out.push((
                ColumnFamily::FieldIndex,
                field_index_key(
                    tenant,
                    &entity.table,
                    field,
                    &stored_index_value(codec, tenant, &entity.table, field, &enc),
                    &entity.id,
                ),
                vec![],
            ));
        }
    }
    out.extend(crate::edges::edge_entries(codec, tenant, entity, canonical));
    out
}
