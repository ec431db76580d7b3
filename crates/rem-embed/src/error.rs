//! Errors of the embedding providers.

/// An embedding failure. Every message is one sentence that says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The provider or model name is not known.
    #[error("unknown embedding model: {0}")]
    UnknownModel(String),
    /// The model's files are not installed and cannot be downloaded.
    #[error("{0}")]
    ModelMissing(String),
    /// The model files exist but cannot be loaded.
    #[error("cannot load model {model}: {message}")]
    ModelLoad {
        /// Model name.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// Running the model failed.
    #[error("embedding failed: {0}")]
    Inference(String),
    /// The endpoint refused the API key (HTTP 401/403).
    #[error("the embeddings endpoint {url} refused the API key (HTTP {status}); set P8_OPENAI_API_KEY or OPENAI_API_KEY")]
    Unauthorized {
        /// Endpoint.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The endpoint failed or could not be reached after retries.
    #[error("the embeddings endpoint {url} failed: {message}")]
    Http {
        /// Endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The endpoint answered with something that is not an embeddings reply.
    #[error("the embeddings endpoint {url} sent a malformed reply: {message}")]
    MalformedReply {
        /// Endpoint.
        url: String,
        /// What was wrong.
        message: String,
    },
}
