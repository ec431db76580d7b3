//! `rem ingest`: files into a `files` record and `resources` chunks (SPEC §6).
//!
//! For each file: read it, hash it (SHA-256), and skip it when a completed `files`
//! record with the same hash exists. Otherwise mark it `processing`, extract its text
//! (plain text, Markdown, HTML as text, PDF page by page), split the text into chunks
//! that fit the embedding model's window — sized by the model's own tokenizer, with
//! overlap, at headings and paragraphs first (`text-splitter`) — and write the chunks
//! (`uri`, `ordinal`, `name`, `content`, `metadata` with page and heading path) in
//! batches, which embeds them. Chunks left over from a longer earlier version are
//! soft-deleted. The `files` record ends `completed` with the chunk count and
//! `file → chunk` edges (its `edges` list), or `failed` with the reason.

mod chunk;
mod extract;
#[doc(hidden)]
pub mod fuzzing;

use std::path::{Path, PathBuf};

use rem::{Database, EntityId, Error, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use chunk::Chunker;
pub use extract::{detect, FileType, EXTRACT_THREAD, EXTRACT_TIME_LIMIT};

/// Options of an ingestion.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Table the chunks go to (default `resources`).
    pub schema: String,
    /// Walk sub-folders of a folder.
    pub recursive: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            schema: "resources".into(),
            recursive: false,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Chunked and written.
    Completed {
        /// Chunks written.
        chunks: usize,
    },
    /// Same content as the completed record: nothing written.
    Unchanged,
    /// Refused or failed (the `files` record says `failed` when one was written).
    Failed {
        /// Why.
        reason: String,
    },
}

/// One file's result.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file's `file://` URI.
    pub uri: String,
    /// Detected type (`markdown`, `text`, `html`, `pdf`), if known.
    pub file_type: Option<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Outcome.
    pub outcome: Outcome,
}

/// The files a path names: the file itself, or a folder's files (sorted; sub-folders
/// when `recursive`; hidden entries skipped).
pub fn collect_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", dir.display())))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                if recursive {
                    dirs.push(p);
                }
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `file://` URI of an absolute path.
pub fn file_uri(path: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?;
    Ok(format!("file://{}", abs.display()))
}

/// Ingests `path` (a file or a folder); `progress(done, total, file)` is called after
/// each file. A single file that cannot be read or has an unsupported type is an
/// error (nothing written); in a folder such files are reported and skipped, and a
/// failing file does not stop the run.
pub fn ingest(
    db: &Database,
    path: &Path,
    options: &IngestOptions,
    mut progress: impl FnMut(usize, usize, &Path),
) -> Result<Vec<FileReport>> {
    db.schema(&options.schema)?;
    let single = std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false);
    let files = collect_files(path, options.recursive)?;
    let chunker = Chunker::for_database(db)?;
    let mut reports = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let report = ingest_file(db, file, options, &chunker);
        progress(i + 1, files.len(), file);
        match report {
            Ok(r) => reports.push(r),
            // A lone file's refusal is the command's error.
            Err(e) if single => return Err(e),
            Err(e) => reports.push(FileReport {
                uri: file_uri(file).unwrap_or_else(|_| file.display().to_string()),
                file_type: None,
                size_bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
                outcome: Outcome::Failed {
                    reason: e.to_string(),
                },
            }),
        }
    }
    Ok(reports)
}

/// Ingests one file. Errors before anything is written (unreadable file, unsupported
/// type) are returned; errors after the `files` record exists mark it `failed`.
pub fn ingest_file(
    db: &Database,
    path: &Path,
    options: &IngestOptions,
    chunker: &Chunker,
) -> Result<FileReport> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?;
    let uri = file_uri(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| uri.clone());
    ingest_bytes(db, &uri, &name, &bytes, options, chunker)
}

/// Ingests the content `bytes` of the file `name` (its type is told by the name's
/// extension and the bytes), recorded under `uri`. Nothing is read from the file
/// system: a server ingests what its client sent this way.
pub fn ingest_bytes(
    db: &Database,
    uri: &str,
    name: &str,
    bytes: &[u8],
    options: &IngestOptions,
    chunker: &Chunker,
) -> Result<FileReport> {
    let file_type = detect(Path::new(name), bytes)?;
    let uri = uri.to_string();
    let name = name.to_string();
    let hash = hex(&Sha256::digest(bytes));
    let file_id = EntityId::from_key(db.tenant(), "files", &uri);
    let previous = db.get(&file_id)?;
    let prev_prop = |k: &str| previous.as_ref().and_then(|e| e.properties.get(k).cloned());
    let mut report = FileReport {
        uri: uri.clone(),
        file_type: Some(file_type.name().to_string()),
        size_bytes: bytes.len() as u64,
        outcome: Outcome::Unchanged,
    };
    if prev_prop("content_hash") == Some(Value::String(hash.clone()))
        && prev_prop("status") == Some(Value::String("completed".into()))
    {
        return Ok(report);
    }
    let old_chunks = prev_prop("chunk_count")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    let record = |status: &str, chunks: usize, meta: Map<String, Value>, edges: Vec<String>| {
        json!({
            "uri": uri, "name": name, "file_type": file_type.name(),
            "size_bytes": bytes.len(), "content_hash": hash, "status": status,
            "chunk_count": chunks, "metadata": meta, "edges": edges,
        })
    };
    let keep_edges: Vec<String> = previous
        .as_ref()
        .map(|e| e.edges.clone())
        .unwrap_or_default();
    db.insert(
        "files",
        record("processing", old_chunks, Map::new(), keep_edges.clone()),
    )?;
    let written = (|| -> Result<Vec<EntityId>> {
        let sections = extract::extract_isolated(file_type, bytes, extract::EXTRACT_TIME_LIMIT)?;
        let chunks = chunker.chunk_sections(&sections, file_type == FileType::Markdown)?;
        let mut records = Vec::with_capacity(chunks.len());
        for (ordinal, c) in chunks.iter().enumerate() {
            let mut meta = Map::new();
            meta.insert("file_uri".into(), json!(uri));
            if let Some(p) = c.page {
                meta.insert("page".into(), json!(p));
            }
            if !c.headings.is_empty() {
                meta.insert("heading_path".into(), json!(c.headings));
            }
            records.push(json!({
                "uri": uri, "ordinal": ordinal, "name": format!("{name}#{ordinal}"),
                "content": c.text, "metadata": meta,
            }));
        }
        let mut ids = Vec::with_capacity(records.len());
        for batch in records.chunks(256) {
            ids.extend(db.insert_batch(&options.schema, batch.to_vec())?);
        }
        // Chunks of a longer earlier version.
        for ordinal in ids.len()..old_chunks {
            let stale = EntityId::from_key(
                db.tenant(),
                &db.schema(&options.schema)?.name,
                &format!("{uri}#{ordinal}"),
            );
            if db.get(&stale)?.is_some() {
                db.delete(&stale)?;
            }
        }
        Ok(ids)
    })();
    match written {
        Ok(ids) => {
            let edges = ids.iter().map(|id| id.to_string()).collect();
            db.insert("files", record("completed", ids.len(), Map::new(), edges))?;
            report.outcome = Outcome::Completed { chunks: ids.len() };
        }
        Err(e) => {
            let mut meta = Map::new();
            meta.insert("error".into(), json!(e.to_string()));
            db.insert("files", record("failed", old_chunks, meta, keep_edges))?;
            report.outcome = Outcome::Failed {
                reason: e.to_string(),
            };
        }
    }
    Ok(report)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
