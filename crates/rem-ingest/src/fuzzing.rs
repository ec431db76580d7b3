//! Entry point of the chunker fuzz target in `fuzz/` (`cargo fuzz`, see
//! `scripts/fuzz.sh`); the test suite replays its committed corpus. Not part of the API.

use crate::chunk::Chunker;
use crate::extract::Section;

/// The chunker on `data`: its first byte picks the size (1–128 characters) and Markdown
/// or plain text, the rest is the text. Every chunk sits at its offset, fits the size,
/// and together they cover every non-blank character; the heading paths of Markdown
/// sections come out without error.
pub fn chunker(data: &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let max = 1 + usize::from(b & 0x7f);
    let markdown = b & 0x80 != 0;
    let chunker = Chunker::by_chars(max);
    let chunks = chunker
        .split(text, markdown)
        .expect("a size of at least one chunks any text");
    let mut covered = vec![false; text.len()];
    for (offset, chunk) in &chunks {
        let at = text.get(*offset..).expect("offset on a character boundary");
        assert!(at.starts_with(chunk.as_str()), "chunk at its offset");
        assert!(chunker.size(chunk) <= max, "chunk within its size");
        covered[*offset..offset + chunk.len()].fill(true);
    }
    for (i, c) in text.char_indices() {
        assert!(
            c.is_whitespace() || covered[i],
            "character {c:?} at {i} is in no chunk"
        );
    }
    let sections = [Section {
        text: text.to_string(),
        page: Some(1),
    }];
    let out = chunker
        .chunk_sections(&sections, markdown)
        .expect("sections chunk");
    assert!(out.len() <= chunks.len());
}

/// Seed inputs for the chunker: plain text and Markdown with headings, lists and code,
/// in several sizes.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let markdown = "# Title\n\nIntro paragraph with *emphasis*.\n\n## Part 1\n\n- one\n- two\n\n```rust\nfn main() {}\n```\n\n### Deep\n\nText é ü 日本語.\n";
    let plain =
        "First sentence. Second one, longer than the first! Third?\n\nNew paragraph\twith tabs.";
    [
        (0x80u8 | 20, markdown),
        (0x80 | 127, markdown),
        (8, plain),
        (0, plain),
    ]
    .iter()
    .map(|(b, text)| ("chunker", [&[*b][..], text.as_bytes()].concat()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds and the committed corpus run clean.
    #[test]
    fn fuzz_corpus_replays_clean() {
        rem::fuzzing::replay("chunker", &seeds(), chunker);
    }

    /// `scripts/fuzz.sh` runs this to write the seed inputs into `fuzz/corpus/`.
    #[test]
    #[ignore = "writes files into fuzz/corpus; run by scripts/fuzz.sh"]
    fn write_seed_corpora() {
        rem::fuzzing::write_seeds(&seeds());
    }
}
