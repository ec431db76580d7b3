//! Embeddings in the engine: which provider a table uses, the text embedded for a
//! record, batch-first embedding (⌈N / batch size⌉ provider calls for N texts), and
//! staging the vectors of a write. The stored form in the `embeddings` column family is
//! in `format/vectors.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rem_embed::{EmbeddingProvider, OpenAiSettings, ProviderSettings};
use rem_storage::ColumnFamily;
use serde_json::{Map, Value};

use crate::format::vectors::{
    column_meta_key, column_meta_value, embedding_key, parse_column_meta, StoredEmbedding,
};
use crate::{EmbeddingOptions, EntityId, Error, Result, Schema};

pub use crate::format::vectors::{EMBEDDING, EMBEDDING_ALT};

/// Loaded providers, by resolved name (loading a local model takes a moment).
#[derive(Default)]
pub(crate) struct Providers {
    loaded: Mutex<HashMap<String, Arc<dyn EmbeddingProvider>>>,
}

impl Providers {
    pub(crate) fn get(
        &self,
        name: &str,
        options: &EmbeddingOptions,
    ) -> Result<Arc<dyn EmbeddingProvider>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = loaded.get(name) {
            return Ok(p.clone());
        }
        if let Some(dims) = name.strip_prefix(EXTERNAL) {
            let dims = dims.parse::<usize>().ok().filter(|d| *d > 0).ok_or_else(|| {
                Error::InvalidSchema(format!(
                    "'{name}': an external embedding provider is '{EXTERNAL}<dimensions>', e.g. '{EXTERNAL}384'"
                ))
            })?;
            let provider: Arc<dyn EmbeddingProvider> = Arc::new(External {
                name: name.to_string(),
                dims,
            });
            loaded.insert(name.to_string(), provider.clone());
            return Ok(provider);
        }
        let settings = ProviderSettings {
            models_dir: options.models_dir.clone(),
            local_engine: options.local_engine,
            openai: OpenAiSettings {
                base_url: options.openai_base_url.clone(),
                api_key: options.openai_api_key.clone(),
                ..OpenAiSettings::default()
            },
        };
        let provider = rem_embed::resolve(name, &settings).map_err(Error::from)?;
        loaded.insert(name.to_string(), provider.clone());
        Ok(provider)
    }
}

/// The provider of tables whose vectors come from the caller (`external:<dims>`), for
/// frameworks that embed themselves: it knows its size and embeds nothing.
pub const EXTERNAL: &str = "external:";

struct External {
    name: String,
    dims: usize,
}

impl EmbeddingProvider for External {
    fn name(&self) -> &str {
        &self.name
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, _texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, rem_embed::EmbedError> {
        Err(rem_embed::EmbedError::Inference(format!(
            "this table's vectors come from the caller ({}): give a vector with each record, and search by vector",
            self.name
        )))
    }
}

/// The provider name for a column of `schema`: the first embedded field's provider
/// (`default` means `P8_DEFAULT_EMBEDDING`); the alt column uses `P8_ALT_EMBEDDING`.
pub(crate) fn provider_name(
    schema: &Schema,
    column: &str,
    options: &EmbeddingOptions,
) -> Option<String> {
    if schema.embedding_fields.is_empty() {
        return None;
    }
    if column == EMBEDDING_ALT {
        return options.alt_model.clone();
    }
    let first = &schema.embedding_fields[0];
    let named = schema
        .embedding_providers
        .get(first)
        .map(String::as_str)
        .unwrap_or("default");
    Some(if named == "default" {
        options.default_model.clone()
    } else {
        named.to_string()
    })
}

/// The text embedded for a record: its embedded fields' text, in schema order, joined
/// by blank lines. `None` when there is no text.
pub(crate) fn embedding_text(schema: &Schema, props: &Map<String, Value>) -> Option<String> {
    let parts: Vec<String> = schema
        .embedding_fields
        .iter()
        .filter_map(|f| match props.get(f) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Array(items)) => {
                let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                (!joined.is_empty()).then(|| joined.join(", "))
            }
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Embeds `texts` with `provider` in batches of `batch_size`: ⌈N / batch_size⌉ calls.
pub(crate) fn embed_all(
    provider: &dyn EmbeddingProvider,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch_size.max(1)) {
        let vectors = provider.embed(chunk).map_err(Error::from)?;
        if vectors.len() != chunk.len() {
            return Err(Error::Embedding(format!(
                "{} returned {} vectors for {} texts",
                provider.name(),
                vectors.len(),
                chunk.len()
            )));
        }
        out.extend(vectors);
    }
    Ok(out)
}

/// Hash of an embedded text, stored beside the vector: an upsert re-embeds only when
/// the text changed.
pub(crate) fn text_hash(text: &str) -> [u8; 16] {
    let mut h = [0u8; 16];
    h.copy_from_slice(&blake3::hash(text.as_bytes()).as_bytes()[..16]);
    h
}

/// The updates of the `embedding` column from the caller's vectors: each must have the
/// column's size; the text hash is still recorded, so a later write of the same text
/// without a vector keeps it.
fn given_updates(
    schema: &Schema,
    ids: &[EntityId],
    props: &[&Map<String, Value>],
    vectors: Vec<Vec<f32>>,
    provider: &dyn EmbeddingProvider,
) -> Result<ColumnUpdates> {
    if vectors.len() != ids.len() {
        return Err(Error::InvalidInput(format!(
            "{} vectors for {} records: give one vector per record",
            vectors.len(),
            ids.len()
        )));
    }
    let mut updates = Vec::with_capacity(ids.len());
    for (index, (vector, p)) in vectors.into_iter().zip(props).enumerate() {
        if vector.len() != provider.dims() {
            return Err(Error::Record {
                index,
                source: Box::new(Error::Embedding(format!(
                    "the vector has {} dimensions; table '{}' holds {}-dimensional vectors ({})",
                    vector.len(),
                    schema.name,
                    provider.dims(),
                    provider.name()
                ))),
            });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::Record {
                index,
                source: Box::new(Error::Embedding(
                    "the vector holds a NaN or an infinity".into(),
                )),
            });
        }
        let text = embedding_text(schema, p).unwrap_or_default();
        updates.push(EmbedUpdate::Put(StoredEmbedding {
            text_hash: text_hash(&text),
            vector,
        }));
    }
    Ok(ColumnUpdates {
        column: EMBEDDING,
        model: provider.name().to_string(),
        dims: provider.dims(),
        updates,
    })
}

/// What a write does to one record's stored vector in one column.
#[derive(Debug, Clone)]
pub(crate) enum EmbedUpdate {
    /// The embedded text is unchanged (or the record is superseded later in its batch).
    Keep,
    /// Store this vector.
    Put(StoredEmbedding),
    /// The record has no text any more: remove its vector.
    Delete,
}

/// The planned vector changes of a batch for one column, aligned with its records.
pub(crate) struct ColumnUpdates {
    pub(crate) column: &'static str,
    pub(crate) model: String,
    pub(crate) dims: usize,
    pub(crate) updates: Vec<EmbedUpdate>,
}

/// The position of the last record of each id in a batch (the one that counts).
fn last_of(ids: &[EntityId]) -> HashMap<EntityId, usize> {
    ids.iter().enumerate().map(|(i, id)| (*id, i)).collect()
}

impl crate::Database {
    /// Works out, before taking the write lock, which records need new vectors, and
    /// embeds their texts in batches (⌈N / batch size⌉ provider calls).
    /// `given` are the caller's vectors for the `embedding` column, one per record.
    pub(crate) fn plan_embeddings(
        &self,
        schema: &Schema,
        ids: &[EntityId],
        props: &[&Map<String, Value>],
        given: Option<Vec<Vec<f32>>>,
    ) -> Result<Vec<ColumnUpdates>> {
        let options = &self.inner.embedding;
        let mut out = Vec::new();
        if given.is_some() && provider_name(schema, EMBEDDING, options).is_none() {
            return Err(Error::InvalidInput(format!(
                "table '{}' has no embedded fields, so it takes no vectors",
                schema.name
            )));
        }
        let mut given = given;
        for column in [EMBEDDING, EMBEDDING_ALT] {
            let Some(model) = provider_name(schema, column, options) else {
                continue;
            };
            if column == EMBEDDING {
                if let Some(vectors) = given.take() {
                    let provider = self.inner.providers.get(&model, options)?;
                    self.check_column_meta(&schema.name, column, provider.name(), provider.dims())?;
                    out.push(given_updates(
                        schema,
                        ids,
                        props,
                        vectors,
                        provider.as_ref(),
                    )?);
                    continue;
                }
            }
            if let Some(plan) = self.plan_column(schema, column, &model, ids, props)? {
                out.push(plan);
            }
        }
        Ok(out)
    }

    /// The plan of one embedding column made by `model` from the stored text hashes:
    /// `None` when nothing is to be embedded or removed.
    fn plan_column(
        &self,
        schema: &Schema,
        column: &'static str,
        model: &str,
        ids: &[EntityId],
        props: &[&Map<String, Value>],
    ) -> Result<Option<ColumnUpdates>> {
        let options = &self.inner.embedding;
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| embedding_key(&self.tenant, &schema.name, column, id))
            .collect();
        let stored = self.store().multi_get(ColumnFamily::Embeddings, &keys)?;
        // Only the last record of an id in the batch counts.
        let last_of = last_of(ids);
        let mut updates = vec![EmbedUpdate::Keep; ids.len()];
        let mut to_embed: Vec<(usize, String)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if last_of.get(id) != Some(&i) {
                continue;
            }
            let old_hash = match &stored[i] {
                Some(bytes) => Some(StoredEmbedding::decode(bytes)?.text_hash),
                None => None,
            };
            match embedding_text(schema, props[i]) {
                Some(text) if old_hash == Some(text_hash(&text)) => {}
                Some(text) => to_embed.push((i, text)),
                None if old_hash.is_some() => updates[i] = EmbedUpdate::Delete,
                None => {}
            }
        }
        // Nothing to embed or remove (e.g. a schema registered again unchanged): the
        // provider is not even loaded.
        if to_embed.is_empty() && updates.iter().all(|u| matches!(u, EmbedUpdate::Keep)) {
            return Ok(None);
        }
        let provider = self.inner.providers.get(model, options)?;
        self.check_column_meta(&schema.name, column, provider.name(), provider.dims())?;
        if !to_embed.is_empty() {
            let texts: Vec<&str> = to_embed.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = embed_all(provider.as_ref(), &texts, options.batch_size)?;
            for ((i, text), vector) in to_embed.iter().zip(vectors) {
                if vector.len() != provider.dims() {
                    return Err(Error::Embedding(format!(
                        "{} returned a vector of {} dimensions, expected {}",
                        provider.name(),
                        vector.len(),
                        provider.dims()
                    )));
                }
                updates[*i] = EmbedUpdate::Put(StoredEmbedding {
                    text_hash: text_hash(text),
                    vector,
                });
            }
        }
        Ok(Some(ColumnUpdates {
            column,
            model: provider.name().to_string(),
            dims: provider.dims(),
            updates,
        }))
    }

    /// The columns whose plan no longer fits the stored vectors: another writer
    /// committed a vector for one of these records after the plan read the stored text
    /// hashes, so a kept vector would belong to another text (or a vector the plan
    /// thought absent now exists). Run under the write lock, before staging.
    pub(crate) fn stale_columns(
        &self,
        schema: &Schema,
        ids: &[EntityId],
        props: &[&Map<String, Value>],
        plans: &[ColumnUpdates],
    ) -> Result<Vec<&'static str>> {
        let options = &self.inner.embedding;
        let last_of = last_of(ids);
        let mut stale = Vec::new();
        for column in [EMBEDDING, EMBEDDING_ALT] {
            if provider_name(schema, column, options).is_none() {
                continue;
            }
            let plan = plans.iter().find(|p| p.column == column);
            // Records whose plan keeps what is stored: the stored state must still be
            // what the plan saw (a hash of the record's text, or no vector).
            let kept: Vec<usize> = (0..ids.len())
                .filter(|&i| last_of.get(&ids[i]) == Some(&i))
                .filter(|&i| plan.is_none_or(|p| matches!(p.updates[i], EmbedUpdate::Keep)))
                .collect();
            if kept.is_empty() {
                continue;
            }
            let keys: Vec<Vec<u8>> = kept
                .iter()
                .map(|&i| embedding_key(&self.tenant, &schema.name, column, &ids[i]))
                .collect();
            let stored = self.store().multi_get(ColumnFamily::Embeddings, &keys)?;
            for (&i, bytes) in kept.iter().zip(&stored) {
                let hash = match bytes {
                    Some(b) => Some(StoredEmbedding::decode(b)?.text_hash),
                    None => None,
                };
                let expected = embedding_text(schema, props[i]).map(|t| text_hash(&t));
                if hash != expected {
                    stale.push(column);
                    break;
                }
            }
        }
        Ok(stale)
    }

    /// Plans `columns` again (after [`Self::stale_columns`] found them stale), replacing
    /// their old plans in `plans`.
    pub(crate) fn replan_columns(
        &self,
        schema: &Schema,
        ids: &[EntityId],
        props: &[&Map<String, Value>],
        columns: &[&'static str],
        plans: &mut Vec<ColumnUpdates>,
    ) -> Result<()> {
        plans.retain(|p| !columns.contains(&p.column));
        for &column in columns {
            let Some(model) = provider_name(schema, column, &self.inner.embedding) else {
                continue;
            };
            if let Some(plan) = self.plan_column(schema, column, &model, ids, props)? {
                plans.push(plan);
            }
        }
        Ok(())
    }

    /// Checks the size of a caller's query vector against the table's column.
    pub(crate) fn column_provider(
        &self,
        schema: &Schema,
        column: &str,
    ) -> Result<Option<Arc<dyn EmbeddingProvider>>> {
        match provider_name(schema, column, &self.inner.embedding) {
            Some(model) => Ok(Some(
                self.inner.providers.get(&model, &self.inner.embedding)?,
            )),
            None => Ok(None),
        }
    }

    /// Refuses vectors from a provider other than the one that made the column's
    /// existing vectors (a different model or size would make the index meaningless).
    fn check_column_meta(&self, table: &str, column: &str, model: &str, dims: usize) -> Result<()> {
        let key = column_meta_key(&self.tenant, table, column);
        if let Some(bytes) = self.store().get(ColumnFamily::Meta, &key)? {
            let meta = parse_column_meta(&bytes).unwrap_or_default();
            let (old_model, old_dims) =
                (meta.model.as_deref().unwrap_or(""), meta.dims.unwrap_or(0));
            if old_dims as usize != dims || old_model != model {
                return Err(Error::Embedding(format!(
                    "table '{table}' holds {old_dims}-dimensional {column} vectors from {old_model}, but the configured provider is {model} ({dims} dimensions); set P8_DEFAULT_EMBEDDING back to {old_model} or use a new table"
                )));
            }
        }
        Ok(())
    }

    /// Stages the planned vector changes (the caller holds the write lock).
    pub(crate) fn stage_embeddings(
        &self,
        batch: &mut rem_storage::Batch<'_>,
        table: &str,
        ids: &[EntityId],
        plans: &[ColumnUpdates],
    ) -> Result<()> {
        for plan in plans {
            batch.put(
                ColumnFamily::Meta,
                &column_meta_key(&self.tenant, table, plan.column),
                &column_meta_value(&plan.model, plan.dims),
            )?;
            for (id, update) in ids.iter().zip(&plan.updates) {
                let key = embedding_key(&self.tenant, table, plan.column, id);
                match update {
                    EmbedUpdate::Keep => {}
                    EmbedUpdate::Put(e) => {
                        batch.put(ColumnFamily::Embeddings, &key, &e.encode())?
                    }
                    EmbedUpdate::Delete => batch.delete(ColumnFamily::Embeddings, &key)?,
                }
            }
        }
        Ok(())
    }
}
