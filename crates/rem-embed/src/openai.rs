//! `openai:<model>`: an OpenAI-compatible embeddings endpoint (`POST {base}/embeddings`).
//!
//! One request per batch; retries with exponential backoff on 429 and 5xx (honouring
//! `Retry-After`); a clear error on 401/403 and on replies that are not embeddings.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{EmbedError, EmbeddingProvider};

/// Endpoint settings (`P8_OPENAI_BASE_URL`, `P8_OPENAI_API_KEY` / `OPENAI_API_KEY`).
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL up to `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token, if any.
    pub api_key: Option<String>,
    /// Retries after the first attempt for 429, 5xx and connection failures.
    pub max_retries: u32,
    /// First backoff delay; doubled per retry, capped at 10 s.
    pub initial_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        OpenAiSettings {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            max_retries: 4,
            initial_backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(60),
        }
    }
}

/// An OpenAI-compatible embeddings provider.
#[derive(Debug)]
pub struct OpenAiProvider {
    name: String,
    model: String,
    url: String,
    settings: OpenAiSettings,
    agent: ureq::Agent,
    dims: OnceLock<usize>,
}

/// Dimensions of OpenAI's own models; others are learned from the first reply.
fn known_dims(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

impl OpenAiProvider {
    /// A provider for `model` at `settings.base_url`. For models whose size is not
    /// known, one probe request learns it.
    pub fn new(model: &str, settings: OpenAiSettings) -> Result<OpenAiProvider, EmbedError> {
        let url = format!("{}/embeddings", settings.base_url.trim_end_matches('/'));
        let agent = ureq::AgentBuilder::new().timeout(settings.timeout).build();
        let provider = OpenAiProvider {
            name: format!("openai:{model}"),
            model: model.to_string(),
            url,
            settings,
            agent,
            dims: OnceLock::new(),
        };
        match known_dims(model) {
            Some(d) => {
                let _ = provider.dims.set(d);
            }
            None => {
                provider.embed(&["dimension probe"])?;
            }
        }
        Ok(provider)
    }

    fn request(&self, texts: &[&str]) -> Result<Value, EmbedError> {
        let body = json!({"model": self.model, "input": texts});
        let mut delay = self.settings.initial_backoff;
        let mut attempt = 0;
        loop {
            let mut req = self
                .agent
                .post(&self.url)
                .set("Content-Type", "application/json");
            if let Some(key) = &self.settings.api_key {
                req = req.set("Authorization", &format!("Bearer {key}"));
            }
            let (retry_after, message) = match req.send_json(body.clone()) {
                Ok(resp) => {
                    return resp
                        .into_json::<Value>()
                        .map_err(|e| EmbedError::MalformedReply {
                            url: self.url.clone(),
                            message: format!("not JSON ({e})"),
                        })
                }
                Err(ureq::Error::Status(status @ (401 | 403), _)) => {
                    return Err(EmbedError::Unauthorized {
                        url: self.url.clone(),
                        status,
                    })
                }
                Err(ureq::Error::Status(status, resp)) if status == 429 || status >= 500 => {
                    let after = resp
                        .header("Retry-After")
                        .and_then(|s| s.trim().parse::<f64>().ok());
                    (after, format!("HTTP {status}"))
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let detail = resp
                        .into_json::<Value>()
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(String::from))
                        .unwrap_or_default();
                    return Err(EmbedError::Http {
                        url: self.url.clone(),
                        message: format!("HTTP {status} {detail}").trim().to_string(),
                    });
                }
                Err(ureq::Error::Transport(t)) => (None, t.to_string()),
            };
            if attempt >= self.settings.max_retries {
                return Err(EmbedError::Http {
                    url: self.url.clone(),
                    message: format!("{message} after {} attempts", attempt + 1),
                });
            }
            let wait = retry_after
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 30.0)))
                .unwrap_or(delay);
            tracing::warn!(url = %self.url, %message, wait_ms = wait.as_millis() as u64, "embeddings request failed; retrying");
            std::thread::sleep(wait);
            delay = (delay * 2).min(Duration::from_secs(10));
            attempt += 1;
        }
    }
}

impl EmbeddingProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn dims(&self) -> usize {
        self.dims.get().copied().unwrap_or(0)
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(vec![]);
        }
        let reply = self.request(texts)?;
        let malformed = |message: String| EmbedError::MalformedReply {
            url: self.url.clone(),
            message,
        };
        let data = reply["data"]
            .as_array()
            .ok_or_else(|| malformed("no 'data' list".into()))?;
        if data.len() != texts.len() {
            return Err(malformed(format!(
                "{} embeddings for {} inputs",
                data.len(),
                texts.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().map(|i| i as usize).unwrap_or(pos);
            let vector: Vec<f32> = item["embedding"]
                .as_array()
                .ok_or_else(|| malformed(format!("item {index} has no 'embedding' list")))?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| malformed(format!("item {index} has a non-numeric value")))?;
            let slot = out
                .get_mut(index)
                .ok_or_else(|| malformed(format!("index {index} out of range")))?;
            *slot = Some(vector);
        }
        let vectors: Vec<Vec<f32>> = out
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| malformed(format!("no embedding for input {i}"))))
            .collect::<Result<_, _>>()?;
        let dims = *self.dims.get_or_init(|| vectors[0].len());
        if let Some(bad) = vectors.iter().find(|v| v.len() != dims || v.is_empty()) {
            return Err(malformed(format!(
                "a vector has {} dimensions, expected {dims}",
                bad.len()
            )));
        }
        Ok(vectors)
    }
}
