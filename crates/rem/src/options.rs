//! Engine options that are not storage options: embedding providers and the vector
//! index. The CLI (or any embedding program) fills them from its configuration; the
//! engine never reads the environment or configuration files itself.

use std::path::PathBuf;

use rem_embed::LocalEngine;

/// Vector index kind (`P8_VECTOR_INDEX_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VectorIndexType {
    /// Approximate search over an HNSW graph.
    Hnsw,
    /// Exact (brute-force) search.
    Flat,
}

/// How the vector index stores vectors (`P8_VECTOR_QUANTIZATION`). RocksDB always keeps
/// the full f32 vectors; this is the in-memory index copy only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VectorQuantization {
    /// bfloat16: half the memory of f32, the fastest kernels on CPUs with AVX-512 BF16.
    Bf16,
    /// IEEE half precision.
    F16,
    /// Full precision.
    F32,
}

impl VectorQuantization {
    /// From its name (`bf16`, `f16`, `f32`; any case).
    pub fn parse(name: &str) -> Option<VectorQuantization> {
        match name.to_ascii_lowercase().as_str() {
            "bf16" => Some(VectorQuantization::Bf16),
            "f16" => Some(VectorQuantization::F16),
            "f32" => Some(VectorQuantization::F32),
            _ => None,
        }
    }

    /// Lower-case name, as in the setting.
    pub fn name(self) -> &'static str {
        match self {
            VectorQuantization::Bf16 => "bf16",
            VectorQuantization::F16 => "f16",
            VectorQuantization::F32 => "f32",
        }
    }
}

/// Embedding providers and vector index parameters.
#[derive(Debug, Clone)]
pub struct EmbeddingOptions {
    /// Provider of fields whose provider is `default`.
    pub default_model: String,
    /// Provider filling `embedding_alt`, if any.
    pub alt_model: Option<String>,
    /// Texts per provider call.
    pub batch_size: usize,
    /// Where local models are looked for first.
    pub models_dir: PathBuf,
    /// Which engine runs local models.
    pub local_engine: LocalEngine,
    /// OpenAI-compatible endpoint.
    pub openai_base_url: String,
    /// API key for it.
    pub openai_api_key: Option<String>,
    /// HNSW or exact.
    pub index_type: VectorIndexType,
    /// Vector precision inside the index.
    pub quantization: VectorQuantization,
    /// HNSW M.
    pub hnsw_m: usize,
    /// HNSW ef_construction.
    pub hnsw_ef_construction: usize,
    /// HNSW ef_search.
    pub hnsw_ef_search: usize,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            default_model: "all-MiniLM-L6-v2".into(),
            alt_model: None,
            batch_size: 32,
            models_dir: expand_home("~/.p8/models"),
            local_engine: LocalEngine::Auto,
            openai_base_url: "https://api.openai.com/v1".into(),
            openai_api_key: None,
            index_type: VectorIndexType::Hnsw,
            quantization: VectorQuantization::Bf16,
            hnsw_m: 16,
            hnsw_ef_construction: 200,
            hnsw_ef_search: 50,
        }
    }
}

/// Expands a leading `~` to the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix('~') {
        Some(rest) => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/"));
            home.join(rest.trim_start_matches('/'))
        }
        None => PathBuf::from(p),
    }
}
