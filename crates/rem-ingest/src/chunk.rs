//! Chunking that fits the embedding model's window: `text-splitter` sized by the
//! model's own tokenizer (characters for remote models, whose tokenizer is not local),
//! with overlap, preferring headings and paragraphs as split points.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use rem::{Database, Error, Result};

use crate::extract::Section;

/// Characters per chunk when no local tokenizer is known (about 4 per token).
const CHARS_PER_CHUNK: usize = 1600;

/// How chunks are sized.
#[derive(Debug)]
enum Sizer {
    Tokens(Box<Tokenizer>),
    Chars,
}

/// Splits text into chunks of at most `max` tokens (or characters) with `overlap`.
#[derive(Debug)]
pub struct Chunker {
    sizer: Sizer,
    max: usize,
    overlap: usize,
}

/// One chunk with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub(crate) text: String,
    pub(crate) page: Option<u32>,
    /// Markdown headings enclosing the chunk's start, outermost first.
    pub(crate) headings: Vec<String>,
}

impl Chunker {
    /// A chunker for the database's default embedding model: a local model's tokenizer
    /// and window (`max_seq_length`, minus the two special tokens); characters for
    /// remote models.
    pub fn for_database(db: &Database) -> Result<Chunker> {
        let options = db.embedding_options();
        let model = options.default_model.as_str();
        let local = model.strip_prefix("local:").unwrap_or(model);
        let remote = model.starts_with("openai:")
            || model.starts_with("text-embedding-")
            || model.eq_ignore_ascii_case("none");
        if remote {
            return Ok(Chunker::by_chars(CHARS_PER_CHUNK));
        }
        let dir = rem_embed::find_model_dir(local, &options.models_dir)
            .map_err(|e| Error::Embedding(e.to_string()))?;
        let dir = dir.dir();
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::Embedding(format!("tokenizer.json: {e}")))?;
        // Count every token: no truncation or padding while sizing.
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Embedding(e.to_string()))?;
        tokenizer.with_padding(None);
        let window = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(256) as usize;
        Ok(Chunker::by_tokens(
            tokenizer,
            window.saturating_sub(2).max(16),
        ))
    }

    /// Chunks of at most `max_tokens` tokens of `tokenizer`, overlapping by an eighth.
    pub fn by_tokens(tokenizer: Tokenizer, max_tokens: usize) -> Chunker {
        Chunker {
            sizer: Sizer::Tokens(Box::new(tokenizer)),
            max: max_tokens,
            overlap: max_tokens / 8,
        }
    }

    /// Chunks of at most `max_chars` characters, overlapping by an eighth.
    pub fn by_chars(max_chars: usize) -> Chunker {
        Chunker {
            sizer: Sizer::Chars,
            max: max_chars,
            overlap: max_chars / 8,
        }
    }

    /// The largest chunk, in tokens (or characters).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Size of `text` in this chunker's unit.
    pub fn size(&self, text: &str) -> usize {
        match &self.sizer {
            Sizer::Tokens(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().len())
                .unwrap_or(usize::MAX),
            Sizer::Chars => text.chars().count(),
        }
    }

    /// `(byte offset, chunk)` pairs of `text`.
    pub fn split(&self, text: &str, markdown: bool) -> Result<Vec<(usize, String)>> {
        let bad = |e: text_splitter::ChunkConfigError| Error::InvalidInput(e.to_string());
        let out = match &self.sizer {
            Sizer::Tokens(t) => split_with(
                ChunkConfig::new(self.max)
                    .with_sizer(t.as_ref())
                    .with_overlap(self.overlap)
                    .map_err(bad)?,
                text,
                markdown,
            ),
            Sizer::Chars => split_with(
                ChunkConfig::new(self.max)
                    .with_overlap(self.overlap)
                    .map_err(bad)?,
                text,
                markdown,
            ),
        };
        Ok(out)
    }

    /// Chunks of every section, with page and (Markdown) heading path.
    pub(crate) fn chunk_sections(
        &self,
        sections: &[Section],
        markdown: bool,
    ) -> Result<Vec<Chunk>> {
        let mut out = Vec::new();
        for s in sections {
            let headings = if markdown {
                heading_marks(&s.text)
            } else {
                vec![]
            };
            for (offset, text) in self.split(&s.text, markdown)? {
                if text.trim().is_empty() {
                    continue;
                }
                out.push(Chunk {
                    text,
                    page: s.page,
                    headings: heading_path(&headings, offset),
                });
            }
        }
        Ok(out)
    }
}

/// `(byte offset, chunk)` pairs from the Markdown or plain-text splitter.
fn split_with<S: ChunkSizer>(
    config: ChunkConfig<S>,
    text: &str,
    markdown: bool,
) -> Vec<(usize, String)> {
    let own = |(o, c): (usize, &str)| (o, c.to_string());
    if markdown {
        MarkdownSplitter::new(config)
            .chunk_indices(text)
            .map(own)
            .collect()
    } else {
        TextSplitter::new(config)
            .chunk_indices(text)
            .map(own)
            .collect()
    }
}

/// Every Markdown heading: (byte offset, level, text), from the Markdown parser.
fn heading_marks(text: &str) -> Vec<(usize, usize, String)> {
    let mut marks = Vec::new();
    let mut current: Option<(usize, usize, String)> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((range.start, level_number(level), String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, s)) = current.as_mut() {
                    s.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => marks.extend(current.take()),
            _ => {}
        }
    }
    marks
}

fn level_number(level: HeadingLevel) -> usize {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// The headings in force at `offset`: the last heading of each level above it.
fn heading_path(marks: &[(usize, usize, String)], offset: usize) -> Vec<String> {
    let mut path: Vec<(usize, String)> = Vec::new();
    for (at, level, text) in marks {
        if *at > offset {
            break;
        }
        path.retain(|(l, _)| l < level);
        path.push((*level, text.clone()));
    }
    path.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_paths_follow_the_outline() {
        let text = "# A\n\nintro\n\n## B\n\ntext b\n\n### C\n\ntext c\n\n## D\n\ntext d\n";
        let marks = heading_marks(text);
        assert_eq!(marks.len(), 4);
        let at = |s: &str| text.find(s).unwrap();
        assert_eq!(heading_path(&marks, at("intro")), vec!["A"]);
        assert_eq!(heading_path(&marks, at("text c")), vec!["A", "B", "C"]);
        assert_eq!(heading_path(&marks, at("text d")), vec!["A", "D"]);
    }

    #[test]
    fn character_chunks_overlap_and_fit() {
        let c = Chunker::by_chars(100);
        let text = "word ".repeat(200);
        let chunks = c.split(&text, false).unwrap();
        assert!(chunks.len() > 5);
        for (_, t) in &chunks {
            assert!(t.chars().count() <= 100);
        }
        // Consecutive chunks share text (overlap).
        let (o1, t1) = &chunks[0];
        let (o2, _) = &chunks[1];
        assert!(o2 < &(o1 + t1.len()));
    }
}
