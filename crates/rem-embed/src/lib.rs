//! Embedding providers for the REM database.
//!
//! A provider turns a batch of texts into vectors with one call ([`EmbeddingProvider::embed`]);
//! callers split their work into batches of `P8_EMBEDDING_BATCH_SIZE` and never call once
//! per record. Two providers exist:
//! - [`LocalBert`] (`local:<model>`): a BERT-family sentence-embedding model in Hugging Face
//!   layout, run in-process with candle; mean pooling and L2 normalisation as
//!   sentence-transformers does.
//! - [`OpenAiProvider`] (`openai:<model>`): an OpenAI-compatible `/embeddings` endpoint.
//!
//! [`resolve`] maps a provider name (`all-MiniLM-L6-v2`, `local:...`,
//! `text-embedding-3-small`, `openai:...`) to a provider.
//!
//! This crate owns the heavy dependencies (candle, tokenizers, HTTP) so that editing the
//! engine does not rebuild them.

mod bf16_gemm;
mod error;
mod fast_bert;
mod local;
mod models;
mod openai;

use std::sync::Arc;

pub use error::EmbedError;
pub use local::{LocalBert, LocalEngine};
pub use models::{find_model_dir, ModelLocation};
pub use openai::{OpenAiProvider, OpenAiSettings};

/// The default local model.
pub const DEFAULT_LOCAL_MODEL: &str = "all-MiniLM-L6-v2";

/// Turns texts into vectors, a batch per call.
pub trait EmbeddingProvider: Send + Sync {
    /// Canonical name, e.g. `local:all-MiniLM-L6-v2`; stored with every index.
    fn name(&self) -> &str;
    /// Vector length.
    fn dims(&self) -> usize;
    /// Embeds `texts` in one call (one model run or one HTTP request).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Settings that providers read (from the engine's configuration).
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// `P8_MODELS_DIR`.
    pub models_dir: std::path::PathBuf,
    /// `P8_LOCAL_ENGINE`.
    pub local_engine: LocalEngine,
    /// OpenAI-compatible endpoint settings.
    pub openai: OpenAiSettings,
}

/// Which provider a name means: `local:<model>`, `openai:<model>`, or a bare model
/// name (`text-embedding-*` is OpenAI's; anything else is a local model).
pub fn parse_provider_name(name: &str) -> Result<(ProviderKind, String), EmbedError> {
    let name = name.trim();
    if let Some(model) = name.strip_prefix("local:") {
        return Ok((ProviderKind::Local, model.to_string()));
    }
    if let Some(model) = name.strip_prefix("openai:") {
        return Ok((ProviderKind::OpenAi, model.to_string()));
    }
    if name.is_empty() || name.contains(':') {
        return Err(EmbedError::UnknownModel(format!(
            "'{name}' is not a provider name (use local:<model>, openai:<model> or a model name such as {DEFAULT_LOCAL_MODEL})"
        )));
    }
    if name.starts_with("text-embedding-") {
        Ok((ProviderKind::OpenAi, name.to_string()))
    } else {
        Ok((ProviderKind::Local, name.to_string()))
    }
}

/// Kinds of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderKind {
    /// In-process model.
    Local,
    /// OpenAI-compatible HTTP endpoint.
    OpenAi,
}

/// Builds the provider a name means (loading a local model, which takes a moment).
pub fn resolve(
    name: &str,
    settings: &ProviderSettings,
) -> Result<Arc<dyn EmbeddingProvider>, EmbedError> {
    match parse_provider_name(name)? {
        (ProviderKind::Local, model) => {
            let location = find_model_dir(&model, &settings.models_dir)?;
            Ok(Arc::new(LocalBert::load_dir_with(
                &model,
                location.dir(),
                settings.local_engine,
            )?))
        }
        (ProviderKind::OpenAi, model) => Ok(Arc::new(OpenAiProvider::new(
            &model,
            settings.openai.clone(),
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_providers() {
        assert_eq!(
            parse_provider_name("all-MiniLM-L6-v2").unwrap(),
            (ProviderKind::Local, "all-MiniLM-L6-v2".into())
        );
        assert_eq!(
            parse_provider_name("text-embedding-3-small").unwrap(),
            (ProviderKind::OpenAi, "text-embedding-3-small".into())
        );
        assert_eq!(
            parse_provider_name("openai:my-model").unwrap(),
            (ProviderKind::OpenAi, "my-model".into())
        );
        assert_eq!(
            parse_provider_name("local:bge-small").unwrap(),
            (ProviderKind::Local, "bge-small".into())
        );
        assert!(parse_provider_name("cohere:embed").is_err());
        assert!(parse_provider_name("").is_err());
    }
}
