//! Semantic search: `Database::search`, table detection, and the stored vectors read
//! back. The vector indexes searched are loaded, kept up to date and saved by
//! `vector_indexes.rs`.

use std::collections::HashSet;

use rem_storage::ColumnFamily;

use crate::embedding::{embed_all, provider_name};
use crate::format::vectors::{
    column_meta_key, embedding_key, parse_column_meta, StoredEmbedding, EMBEDDING, EMBEDDING_ALT,
};
use crate::vector::{cosine, normalized};
use crate::vector_indexes::{IndexKey, SharedIndex};
use crate::{Database, Entity, EntityId, Error, Filter, Result, ScanOptions};

/// Options of a search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Results to return.
    pub top_k: usize,
    /// Drop results scoring below this cosine similarity.
    pub min_score: Option<f32>,
    /// Only entities matching this filter (applied during the index search).
    pub filter: Filter,
    /// Search `embedding_alt` instead of `embedding`.
    pub alt: bool,
    /// HNSW search beam width for this query (default `P8_HNSW_EF_SEARCH`).
    pub ef_search: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            top_k: 10,
            min_score: None,
            filter: Filter::All,
            alt: false,
            ef_search: None,
        }
    }
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The entity.
    pub entity: Entity,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// What a search returned.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// The table searched.
    pub table: String,
    /// True when the table was chosen by similarity to schema descriptions.
    pub table_detected: bool,
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
}

impl Database {
    /// Semantic search over `table` (or, with `None`, the table whose description is
    /// most similar to the query).
    pub fn search(
        &self,
        table: Option<&str>,
        query: &str,
        options: &SearchOptions,
    ) -> Result<SearchResult> {
        let (table, detected) = match table {
            Some(t) => (self.schema(t)?.name.clone(), false),
            None => (self.detect_table(query)?, true),
        };
        let schema = self.schema(&table)?;
        let column = if options.alt {
            EMBEDDING_ALT
        } else {
            EMBEDDING
        };
        let Some(model) = provider_name(&schema, column, &self.inner.embedding) else {
            return Err(Error::InvalidInput(if options.alt {
                format!("table '{table}' has no alternative embeddings (set P8_ALT_EMBEDDING)")
            } else {
                format!(
                    "table '{table}' has no embedded fields, so it cannot be searched by meaning"
                )
            }));
        };
        let provider = self.inner.providers.get(&model, &self.inner.embedding)?;
        let query_vec = provider
            .embed(&[query])
            .map_err(Error::from)?
            .pop()
            .unwrap_or_default();
        self.search_in(
            table,
            detected,
            column,
            provider.as_ref(),
            &query_vec,
            options,
        )
    }

    /// Search by the caller's query vector (of the table's `embedding` column size,
    /// or `embedding_alt`'s with `options.alt`): for frameworks that embed themselves.
    pub fn search_by_vector(
        &self,
        table: &str,
        vector: &[f32],
        options: &SearchOptions,
    ) -> Result<SearchResult> {
        let schema = self.schema(table)?;
        let column = if options.alt {
            EMBEDDING_ALT
        } else {
            EMBEDDING
        };
        let Some(provider) = self.column_provider(&schema, column)? else {
            return Err(Error::InvalidInput(format!(
                "table '{}' has no {column} vectors to search",
                schema.name
            )));
        };
        if vector.len() != provider.dims() {
            return Err(Error::InvalidInput(format!(
                "the query vector has {} dimensions; table '{}' holds {}-dimensional vectors ({})",
                vector.len(),
                schema.name,
                provider.dims(),
                provider.name()
            )));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(
                "the query vector holds a NaN or an infinity".into(),
            ));
        }
        self.search_in(
            schema.name.clone(),
            false,
            column,
            provider.as_ref(),
            vector,
            options,
        )
    }

    fn search_in(
        &self,
        table: String,
        detected: bool,
        column: &'static str,
        provider: &dyn rem_embed::EmbeddingProvider,
        query_vec: &[f32],
        options: &SearchOptions,
    ) -> Result<SearchResult> {
        let index = self.vector_index(&table, column, provider.name(), provider.dims())?;
        let allowed = match &options.filter {
            Filter::All => None,
            filter => {
                let mut ids = HashSet::new();
                self.scan_each(&table, filter, &ScanOptions::default(), |e| {
                    ids.insert(e.id);
                    true
                })?;
                Some(ids)
            }
        };
        let found = {
            let guard = index.read().unwrap_or_else(|p| p.into_inner());
            // With a score threshold, `top_k` may be "everything above it": search a
            // small k first and widen it while the last hit still clears the threshold.
            let mut k = match options.min_score {
                Some(_) => options.top_k.min(64),
                None => options.top_k,
            };
            loop {
                let found = guard.search(query_vec, k, allowed.as_ref(), options.ef_search)?;
                let exhausted = found.len() < k || k >= options.top_k || k >= guard.len();
                let below = match (options.min_score, found.last()) {
                    (Some(m), Some((_, s))) => *s < m,
                    _ => true,
                };
                if exhausted || below {
                    break found;
                }
                k = k.saturating_mul(4).min(options.top_k);
            }
        };
        // The index may hold reduced-precision vectors: score the hits again with the
        // stored f32 vectors so scores (and thresholds on them) are exact.
        let query_unit = normalized(query_vec);
        let mut scored = Vec::with_capacity(found.len());
        for (id, approx) in found {
            let key = embedding_key(&self.tenant, &table, column, &id);
            let score = match self.store().get(ColumnFamily::Embeddings, &key)? {
                Some(v) => cosine(&StoredEmbedding::decode(&v)?.vector, &query_unit),
                None => approx,
            };
            scored.push((id, score));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut hits = Vec::with_capacity(scored.len());
        for (id, score) in scored {
            if options.min_score.is_some_and(|m| score < m) {
                continue;
            }
            if let Some(entity) = self.get_in(&table, &id)? {
                hits.push(SearchHit { entity, score });
            }
        }
        Ok(SearchResult {
            table,
            table_detected: detected,
            hits,
        })
    }

    /// The table whose schema description is most similar to `query`, among tables
    /// with embedded fields (descriptions not yet embedded are embedded now).
    fn detect_table(&self, query: &str) -> Result<String> {
        let candidates: Vec<_> = self
            .schemas()?
            .into_iter()
            .filter(|s| s.name != "schemas" && !s.embedding_fields.is_empty())
            .collect();
        if candidates.is_empty() {
            return Err(Error::InvalidInput(
                "no table has embedded fields; name one with --schema".into(),
            ));
        }
        let provider = self
            .inner
            .providers
            .get(&self.inner.embedding.default_model, &self.inner.embedding)?;
        // Descriptions were embedded into `schemas` at registration (by the default
        // provider); only those missing (or made by another provider) are embedded now.
        let made_by = self
            .store()
            .get(
                ColumnFamily::Meta,
                &column_meta_key(&self.tenant, "schemas", EMBEDDING),
            )?
            .and_then(|b| parse_column_meta(&b));
        let usable = made_by.is_some_and(|m| {
            m.model.as_deref() == Some(provider.name()) && m.dims == Some(provider.dims() as u64)
        });
        let keys: Vec<Vec<u8>> = candidates
            .iter()
            .map(|s| {
                let id = EntityId::from_key(&self.tenant, "schemas", &s.name);
                embedding_key(&self.tenant, "schemas", EMBEDDING, &id)
            })
            .collect();
        let stored = self.store().multi_get(ColumnFamily::Embeddings, &keys)?;
        let mut vectors: Vec<Option<Vec<f32>>> = stored
            .into_iter()
            .map(|v| match v {
                Some(bytes) if usable => StoredEmbedding::decode(&bytes).ok().map(|e| e.vector),
                _ => None,
            })
            .collect();
        let missing: Vec<usize> = (0..candidates.len())
            .filter(|&i| vectors[i].is_none())
            .collect();
        let mut texts: Vec<String> = vec![query.to_string()];
        texts.extend(missing.iter().map(|&i| {
            let s = &candidates[i];
            s.description.clone().unwrap_or_else(|| s.name.clone())
        }));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut fresh =
            embed_all(provider.as_ref(), &refs, self.inner.embedding.batch_size)?.into_iter();
        let q = fresh.next().unwrap_or_default();
        for (i, v) in missing.into_iter().zip(fresh) {
            vectors[i] = Some(v);
        }
        let best = candidates
            .iter()
            .zip(&vectors)
            .filter_map(|(s, v)| v.as_ref().map(|v| (s.name.clone(), cosine(&q, v))))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        best.map(|(name, _)| name)
            .ok_or_else(|| Error::InvalidInput("no table to search".into()))
    }

    /// The loaded index of a column, loading (and catching up) or building it first.
    pub(crate) fn vector_index(
        &self,
        table: &str,
        column: &str,
        model: &str,
        dims: usize,
    ) -> Result<SharedIndex> {
        let key = IndexKey::new(&self.tenant, table, column);
        if let Some(i) = self.inner.vectors.loaded(&key) {
            return Ok(i);
        }
        // Hold the write lock while loading so no commit slips between the watermark
        // and the index becoming visible to writers.
        let _w = self.lock_writes();
        self.inner
            .vectors
            .load(self.store(), &self.inner.embedding, &key, model, dims)
    }

    /// Saves every loaded vector index with the current watermark (also done when the
    /// last handle is dropped). Until then, a reopened index catches up from the log.
    pub fn save_vector_indexes(&self) -> Result<()> {
        let _w = self.lock_writes();
        self.inner.vectors.save_all(self.store())
    }
}

impl Database {
    /// The stored vectors of `ids` in `table`'s `column` (`embedding` or
    /// `embedding_alt`), `None` where an entity has none; one multi-get.
    pub fn stored_embeddings(
        &self,
        table: &str,
        column: &str,
        ids: &[EntityId],
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| embedding_key(&self.tenant, table, column, id))
            .collect();
        self.store()
            .multi_get(ColumnFamily::Embeddings, &keys)?
            .into_iter()
            .map(|v| match v {
                Some(bytes) => Ok(Some(StoredEmbedding::decode(&bytes)?.vector)),
                None => Ok(None),
            })
            .collect()
    }

    /// Whether an alternative embedding (`embedding_alt`) is configured.
    pub fn has_alt_embedding(&self) -> bool {
        self.inner.embedding.alt_model.is_some()
    }
}
