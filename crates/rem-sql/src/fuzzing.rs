//! Entry points of the fuzz targets in `fuzz/` (`cargo fuzz`, see `scripts/fuzz.sh`);
//! the test suite replays the committed corpora through the same functions. Each takes
//! arbitrary bytes, must not panic, and checks an invariant where one exists. Not part
//! of the API.

use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use rem::{Filter, ScanOptions};

use crate::rewrite::{rewrite_statement, rewrite_text};

/// The significant tokens of `sql` (no whitespace); `None` when it does not tokenize.
fn tokens(sql: &str) -> Option<Vec<Token>> {
    let all = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    Some(
        all.into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect(),
    )
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// The SQL rewrite (`SEARCH`, `LOOKUP`, `TRAVERSE`, `embedding.cosine`) on `data` as
/// text. Other statements pass through unchanged. A `SEARCH` rewrite keeps its search
/// text exactly: the text is a string literal of the rewritten SQL, whatever quotes it
/// holds. Every statement that parses goes through the syntax-tree rewrite.
pub fn sql_rewrite(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rewritten) = rewrite_text(sql) else {
        return;
    };
    let toks = tokens(sql);
    let first = toks.as_ref().and_then(|t| t.first());
    let extension = ["SEARCH", "LOOKUP", "TRAVERSE"]
        .iter()
        .any(|w| is_word(first, w));
    if !extension {
        assert_eq!(rewritten.sql, sql, "plain SQL passes through unchanged");
    }
    if is_word(first, "SEARCH") {
        if let Some(Token::SingleQuotedString(text)) = toks.as_ref().and_then(|t| t.get(2)) {
            let out = tokens(&rewritten.sql).expect("the rewritten SEARCH tokenizes");
            assert!(
                out.iter()
                    .any(|t| matches!(t, Token::SingleQuotedString(s) if s == text)),
                "the search text survives the rewrite: {:?}",
                rewritten.sql
            );
        }
    }
    let Ok(statements) = DFParser::parse_sql_with_dialect(&rewritten.sql, &GenericDialect {})
    else {
        return;
    };
    for mut statement in statements {
        let mut virtuals = Vec::new();
        let _ = rewrite_statement(&mut statement, &mut virtuals);
    }
}

/// A `--where` predicate from `data`, resolved against the `notes` table of
/// [`rem::fuzzing::sample_database`] (and against every table): refused with an error,
/// or a filter that a scan of the table evaluates without error.
pub fn where_predicate(data: &[u8]) {
    let Ok(predicate) = std::str::from_utf8(data) else {
        return;
    };
    let db = rem::fuzzing::sample_database();
    let _ = crate::check_where(predicate);
    let _ = crate::parse_where(db, None, predicate);
    let Ok(filter) = crate::parse_where(db, Some("notes"), predicate) else {
        return;
    };
    let all = db
        .scan("notes", &Filter::All, &ScanOptions::default())
        .expect("scan of the sample table");
    let _ = db.scan("notes", &filter, &ScanOptions::default());
    let schema = db.schema("notes").expect("sample schema");
    for entity in &all.entities {
        let _ = filter.matches(entity, &schema);
    }
}

/// Seed inputs for the targets of this crate.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let sql = [
        "SELECT slug, n FROM notes WHERE n > 1 ORDER BY n LIMIT 5",
        "SEARCH notes 'what it''s about' WHERE n >= 2 LIMIT 3",
        "SEARCH notes 'x'",
        "LOOKUP 'a'",
        "TRAVERSE 'notes:a' DEPTH 2 DIRECTION both TYPE cites DFS",
        "SELECT slug, embedding.cosine('query') AS s FROM notes ORDER BY s DESC LIMIT 2",
        "EXPLAIN SELECT * FROM notes WHERE embedding_alt.cosine('q') > 0.5",
        "SELECT (SELECT count(*) FROM notes b WHERE b.n < a.n) FROM notes a",
    ];
    let predicates = [
        "n = 1",
        "n BETWEEN 1 AND 3 AND slug <> 'b'",
        "slug IN ('a', 'b') OR body LIKE 'x%'",
        "at > '2025-01-01T00:00:00Z'",
        "NOT (n IS NULL)",
        "tags = 't'",
    ];
    sql.iter()
        .map(|s| ("sql_rewrite", s.as_bytes().to_vec()))
        .chain(
            predicates
                .iter()
                .map(|p| ("where_predicate", p.as_bytes().to_vec())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, f: fn(&[u8])) {
        rem::fuzzing::replay(target, &seeds(), f);
    }

    /// The seeds and the committed corpus of every target of this crate run clean.
    #[test]
    fn fuzz_corpora_replay_clean() {
        run("sql_rewrite", sql_rewrite);
        run("where_predicate", where_predicate);
    }

    /// The `SEARCH` invariant holds for a text with quotes in it.
    #[test]
    fn a_search_text_with_quotes_survives() {
        sql_rewrite(b"SEARCH notes 'it''s \"quoted\"' LIMIT 2");
    }

    /// `scripts/fuzz.sh` runs this to write the seed inputs into `fuzz/corpus/`.
    #[test]
    #[ignore = "writes files into fuzz/corpus; run by scripts/fuzz.sh"]
    fn write_seed_corpora() {
        rem::fuzzing::write_seeds(&seeds());
    }
}
