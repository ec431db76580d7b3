//! File types and their text: plain text and Markdown as written, HTML as the text a
//! browser would show (html2text), PDF page by page (pdf-extract).

use std::path::Path;

use rem::{Error, Result};

/// A supported document type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// Plain UTF-8 text.
    Text,
    /// Markdown.
    Markdown,
    /// HTML (text only).
    Html,
    /// PDF (text per page).
    Pdf,
}

impl FileType {
    /// The name stored in `files.file_type`.
    pub fn name(&self) -> &'static str {
        match self {
            FileType::Text => "text",
            FileType::Markdown => "markdown",
            FileType::Html => "html",
            FileType::Pdf => "pdf",
        }
    }
}

/// A run of text and the PDF page it came from.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// Text.
    pub text: String,
    /// 1-based page (PDF only).
    pub page: Option<u32>,
}

/// The type of `path` from its extension (and, for PDFs, its signature); binary or
/// unknown files are refused with the reason.
pub fn detect(path: &Path, bytes: &[u8]) -> Result<FileType> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let kind = match ext.as_str() {
        "md" | "markdown" | "mdx" => FileType::Markdown,
        "html" | "htm" | "xhtml" => FileType::Html,
        "pdf" => FileType::Pdf,
        "txt" | "text" | "log" | "rst" | "org" | "adoc" => FileType::Text,
        "" if bytes.starts_with(b"%PDF-") => FileType::Pdf,
        _ => {
            return Err(Error::InvalidInput(format!(
                "{}: unsupported file type{} (ingest reads .txt, .md, .html and .pdf)",
                path.display(),
                if ext.is_empty() {
                    String::new()
                } else {
                    format!(" '.{ext}'")
                }
            )))
        }
    };
    if kind == FileType::Pdf && !bytes.starts_with(b"%PDF-") {
        return Err(Error::InvalidInput(format!(
            "{}: not a PDF file (no %PDF- header)",
            path.display()
        )));
    }
    if kind != FileType::Pdf && (std::str::from_utf8(bytes).is_err() || bytes.contains(&0)) {
        return Err(Error::InvalidInput(format!(
            "{}: binary content, not UTF-8 text",
            path.display()
        )));
    }
    Ok(kind)
}

/// Name of the threads extraction runs on (a panic hook can tell their panics, which
/// fail one file, from a bug's).
pub const EXTRACT_THREAD: &str = "rem-extract";

/// Longest an extraction may run before its file fails (a parser looping on a hostile
/// file must not hold up a folder).
pub const EXTRACT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// [`extract`] on its own thread: a parser that panics fails this file only, and one
/// that runs past `limit` is left behind (its thread finishes or not on its own) while
/// the file fails with a clear error.
pub(crate) fn extract_isolated(
    kind: FileType,
    bytes: &[u8],
    limit: std::time::Duration,
) -> Result<Vec<Section>> {
    let owned = bytes.to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(EXTRACT_THREAD.into())
        .spawn(move || {
            let result = std::panic::catch_unwind(|| extract(kind, &owned));
            let _ = tx.send(result);
        })
        .map_err(|e| Error::InvalidInput(format!("cannot start the extraction: {e}")))?;
    match rx.recv_timeout(limit) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no reason given".into());
            Err(Error::InvalidInput(format!(
                "the {} parser failed on this file ({})",
                kind.name(),
                why.lines().next().unwrap_or_default()
            )))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::InvalidInput(format!(
            "reading this {} file took more than {} s; it was skipped",
            kind.name(),
            limit.as_secs()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::InvalidInput(format!(
            "the {} parser stopped without a result",
            kind.name()
        ))),
    }
}

/// The text of a file of type `kind`.
pub(crate) fn extract(kind: FileType, bytes: &[u8]) -> Result<Vec<Section>> {
    let utf8 = || {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| Error::InvalidInput("binary content, not UTF-8 text".into()))
    };
    Ok(match kind {
        FileType::Text | FileType::Markdown => vec![Section {
            text: utf8()?,
            page: None,
        }],
        FileType::Html => vec![Section {
            text: html2text::from_read(bytes, usize::MAX)
                .map_err(|e| Error::InvalidInput(format!("cannot read the HTML: {e}")))?,
            page: None,
        }],
        FileType::Pdf => pdf_extract::extract_text_from_mem_by_pages(bytes)
            .map_err(|e| Error::InvalidInput(format!("cannot read the PDF: {e}")))?
            .into_iter()
            .enumerate()
            .map(|(i, text)| Section {
                text,
                page: Some(i as u32 + 1),
            })
            .collect(),
    })
}
