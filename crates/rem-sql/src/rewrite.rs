//! The semantic extensions, rewritten before planning:
//!
//! - `SEARCH <table> 'text' [WHERE p] [LIMIT n]` becomes
//!   `SELECT * FROM <table> [WHERE p] ORDER BY embedding.cosine('text') DESC LIMIT n`
//!   (n defaults to 10);
//! - `LOOKUP 'key'` becomes a scan of a lookup table holding the matches;
//! - `TRAVERSE <id> [DEPTH n] [DIRECTION out|in|both] [TYPE t] [DFS]` becomes a scan of
//!   a table holding the traversal's nodes (id, entity_type, depth, edge_type, path);
//! - in a `SELECT` from one table, `embedding.cosine('text')` (or `embedding_alt.…`)
//!   becomes the `_score` column of a vector-search table that replaces the table, with
//!   k = LIMIT + OFFSET when the query orders by that score descending.
//!
//! The rewrite works on tokens and on the parsed syntax tree, never on raw text.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, LimitClause, ObjectName,
    ObjectNamePart, OrderByKind, Query, SetExpr, Statement, TableAlias, TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::convert::SCORE;
use crate::search::SearchSpec;

/// A table that exists for one statement only.
#[derive(Debug, Clone)]
pub(crate) enum Virtual {
    /// A vector search over a REM table.
    Search { name: String, spec: SearchSpec },
    /// The entities whose key is `key`, in any table.
    Lookup { name: String, key: String },
    /// The nodes a graph traversal reaches.
    Traverse { name: String, spec: TraverseSpec },
}

/// A `TRAVERSE` statement's arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraverseSpec {
    /// Start: id, qualified key or unique key.
    pub(crate) start: String,
    pub(crate) depth: usize,
    pub(crate) direction: String,
    pub(crate) edge_type: Option<String>,
    pub(crate) dfs: bool,
}

/// Parses the tokens after `TRAVERSE`.
fn traverse_spec(sig: &[(usize, &Token)]) -> Result<TraverseSpec, String> {
    let usage = "TRAVERSE needs a start entity: TRAVERSE <id> [DEPTH n] [DIRECTION out|in|both] [TYPE t] [DFS]";
    let is_clause = |t: &Token| {
        ["DEPTH", "DIRECTION", "TYPE", "DFS"]
            .iter()
            .any(|k| is_word(t, k))
            || matches!(t, Token::SemiColon)
    };
    // The start: a quoted string, or the tokens up to the first clause (an unquoted id
    // such as 0b9c...-... is several tokens).
    let mut i = 0;
    let start = match sig.first() {
        Some((_, Token::SingleQuotedString(s))) => {
            i = 1;
            s.clone()
        }
        _ => {
            let mut text = String::new();
            while let Some((_, t)) = sig.get(i) {
                if is_clause(t) {
                    break;
                }
                text.push_str(&t.to_string());
                i += 1;
            }
            text
        }
    };
    if start.is_empty() {
        return Err(usage.into());
    }
    let mut spec = TraverseSpec {
        start,
        depth: 2,
        direction: "out".into(),
        edge_type: None,
        dfs: false,
    };
    while let Some((_, t)) = sig.get(i) {
        let value = sig.get(i + 1).map(|(_, v)| v);
        let text = |v: Option<&&Token>| match v {
            Some(Token::Word(w)) => Some(w.value.clone()),
            Some(Token::SingleQuotedString(s)) => Some(s.clone()),
            _ => None,
        };
        if is_word(t, "DEPTH") {
            spec.depth = match value {
                Some(Token::Number(n, _)) => n
                    .parse()
                    .map_err(|_| format!("TRAVERSE DEPTH must be a whole number, not {n}"))?,
                _ => return Err("TRAVERSE DEPTH needs a number".into()),
            };
            i += 2;
        } else if is_word(t, "DIRECTION") {
            spec.direction = text(value).ok_or("TRAVERSE DIRECTION needs out, in or both")?;
            i += 2;
        } else if is_word(t, "TYPE") {
            spec.edge_type = Some(text(value).ok_or("TRAVERSE TYPE needs an edge type")?);
            i += 2;
        } else if is_word(t, "DFS") {
            spec.dfs = true;
            i += 1;
        } else if matches!(t, Token::SemiColon) && i + 1 == sig.len() {
            i += 1;
        } else {
            return Err(format!("unexpected '{t}' in TRAVERSE; {usage}"));
        }
    }
    Ok(spec)
}

/// Result of the text-level rewrite: plain SQL, plus virtual tables it refers to.
#[derive(Debug)]
pub(crate) struct TextRewrite {
    pub(crate) sql: String,
    pub(crate) virtuals: Vec<Virtual>,
}

fn significant(tokens: &[Token]) -> Vec<(usize, &Token)> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
        .collect()
}

/// The byte offset in `sql` of a tokenizer location (1-based line and column, counted
/// in characters, lines ending at `\n`).
fn byte_offset(sql: &str, at: Location) -> usize {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in sql.char_indices() {
        if line == at.line && column == at.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    sql.len()
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn is_word(t: &Token, keyword: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

/// Rewrites `SEARCH`, `LOOKUP` and `TRAVERSE` statements into SQL; other text passes
/// through unchanged.
pub(crate) fn rewrite_text(sql: &str) -> Result<TextRewrite, String> {
    let plain = TextRewrite {
        sql: sql.to_string(),
        virtuals: vec![],
    };
    let spans = match Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() {
        Ok(t) => t,
        // Let the parser report the error with its position.
        Err(_) => return Ok(plain),
    };
    let tokens: Vec<Token> = spans.iter().map(|t| t.token.clone()).collect();
    let sig = significant(&tokens);
    let Some((_, first)) = sig.first() else {
        return Ok(plain);
    };
    if is_word(first, "LOOKUP") {
        let key = match sig.get(1) {
            Some((_, Token::SingleQuotedString(k))) => k.clone(),
            _ => return Err("LOOKUP needs a quoted key: LOOKUP 'key'".into()),
        };
        if sig.len() > 2 && !(sig.len() == 3 && matches!(sig[2].1, Token::SemiColon)) {
            return Err("LOOKUP takes one quoted key and nothing else".into());
        }
        let name = "__rem_lookup".to_string();
        return Ok(TextRewrite {
            sql: format!("SELECT * FROM {}", quote_ident(&name)),
            virtuals: vec![Virtual::Lookup { name, key }],
        });
    }
    if is_word(first, "TRAVERSE") {
        let spec = traverse_spec(&sig[1..])?;
        let name = "__rem_traverse".to_string();
        return Ok(TextRewrite {
            sql: format!("SELECT * FROM {}", quote_ident(&name)),
            virtuals: vec![Virtual::Traverse { name, spec }],
        });
    }
    if !is_word(first, "SEARCH") {
        return Ok(plain);
    }
    let usage = "SEARCH needs a table and a quoted text: SEARCH <table> 'text' [WHERE <predicate>] [LIMIT n]";
    let table = match sig.get(1) {
        Some((_, Token::Word(w))) => w.value.clone(),
        _ => return Err(usage.into()),
    };
    let (text_at, text) = match sig.get(2) {
        Some((i, Token::SingleQuotedString(s))) => (*i, s.clone()),
        _ => return Err(usage.into()),
    };
    let rest = &tokens[text_at + 1..];
    // Split off a top-level LIMIT clause; refuse an ORDER BY (SEARCH orders by score).
    let mut depth = 0i32;
    let mut limit_at = None;
    for (i, t) in rest.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.keyword == Keyword::ORDER => {
                return Err(
                    "SEARCH orders by similarity; use SELECT ... ORDER BY for other orders".into(),
                )
            }
            Token::Word(w) if depth == 0 && w.keyword == Keyword::LIMIT => limit_at = Some(i),
            _ => {}
        }
    }
    // The clauses are cut from the statement's own text, at token boundaries: tokens
    // do not print back as they were written (a string literal loses its escapes).
    let offset = |i: usize| {
        spans
            .get(i)
            .map_or(sql.len(), |t| byte_offset(sql, t.span.start))
    };
    let after_text = offset(text_at + 1);
    let (filter_part, limit_part) = match limit_at {
        Some(i) => {
            let limit = offset(text_at + 1 + i);
            (&sql[after_text..limit], &sql[limit..])
        }
        None => (&sql[after_text..], "LIMIT 10"),
    };
    let filter_part = filter_part.trim().trim_end_matches(';');
    let limit_part = limit_part.trim().trim_end_matches(';');
    if !filter_part.is_empty() && !filter_part.to_ascii_uppercase().starts_with("WHERE") {
        return Err(usage.into());
    }
    // A line comment in the filter would swallow the ORDER BY written after it.
    let gap = if filter_part.contains("--") {
        "\n"
    } else {
        " "
    };
    let filter_part = if filter_part.is_empty() {
        " ".to_string()
    } else {
        format!(" {filter_part}{gap}")
    };
    Ok(TextRewrite {
        sql: format!(
            "SELECT * FROM {}{filter_part}ORDER BY embedding.cosine({}) DESC {limit_part}",
            quote_ident(&table),
            quote_str(&text)
        ),
        virtuals: vec![],
    })
}

/// Rewrites `embedding.cosine('text')` in a parsed statement (see the module docs).
/// `next_name` gives the virtual table's name.
pub(crate) fn rewrite_statement(
    stmt: &mut DfStatement,
    virtuals: &mut Vec<Virtual>,
) -> Result<(), String> {
    match stmt {
        DfStatement::Statement(s) => rewrite_sql(s, virtuals),
        DfStatement::Explain(e) => rewrite_statement(&mut e.statement, virtuals),
        _ => Ok(()),
    }
}

fn rewrite_sql(stmt: &mut Statement, virtuals: &mut Vec<Virtual>) -> Result<(), String> {
    if let Statement::Explain { statement, .. } = stmt {
        return rewrite_sql(statement, virtuals);
    }
    let mut calls: Vec<(bool, String)> = Vec::new();
    let mut bad: Option<String> = None;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(stmt, |e| {
        if let Some(found) = cosine_call(e) {
            match found {
                Ok(call) => {
                    if !calls.contains(&call) {
                        calls.push(call);
                    }
                    *e = Expr::Identifier(Ident::new(SCORE));
                }
                Err(msg) => bad = Some(msg),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(msg) = bad {
        return Err(msg);
    }
    let (alt, text) =
        match calls.len() {
            0 => return Ok(()),
            1 => calls.remove(0),
            _ => return Err(
                "a query may rank by one text only: use the same embedding.cosine('…') everywhere"
                    .into(),
            ),
        };
    let Statement::Query(query) = stmt else {
        return Err("embedding.cosine(...) is only available in SELECT queries".into());
    };
    let k = top_k(query);
    let one_table =
        "embedding.cosine(...) needs a SELECT from one table (join its results in an outer query)";
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(one_table.into());
    };
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(one_table.into());
    }
    let TableFactor::Table {
        name, alias, args, ..
    } = &mut select.from[0].relation
    else {
        return Err(one_table.into());
    };
    if args.is_some() {
        return Err(one_table.into());
    }
    let table = match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => id.value.clone(),
        _ => return Err(one_table.into()),
    };
    let vname = format!("__rem_search_{}", virtuals.len());
    *name = ObjectName::from(vec![Ident::new(vname.clone())]);
    if alias.is_none() {
        *alias = Some(TableAlias {
            explicit: true,
            name: Ident::new(table.clone()),
            columns: vec![],
            at: None,
        });
    }
    virtuals.push(Virtual::Search {
        name: vname,
        spec: SearchSpec {
            table,
            alt,
            text,
            k,
        },
    });
    Ok(())
}

/// `Some(Ok((alt, text)))` for `embedding.cosine('text')` / `embedding_alt.cosine('text')`.
fn cosine_call(e: &Expr) -> Option<Result<(bool, String), String>> {
    let Expr::Function(f) = e else {
        return None;
    };
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(id) => Some(id.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let alt = match parts.as_slice() {
        [col, func] if func == "cosine" && col == "embedding" => false,
        [col, func] if func == "cosine" && col == "embedding_alt" => true,
        _ => return None,
    };
    let usage = "embedding.cosine takes one quoted text: embedding.cosine('what to look for')";
    let FunctionArguments::List(list) = &f.args else {
        return Some(Err(usage.into()));
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
            Value::SingleQuotedString(s) => Some(Ok((alt, s.clone()))),
            _ => Some(Err(usage.into())),
        },
        _ => Some(Err(usage.into())),
    }
}

/// k for the index: LIMIT + OFFSET when the query's first ordering is `_score DESC`.
fn top_k(query: &Query) -> Option<usize> {
    let order = query.order_by.as_ref()?;
    let OrderByKind::Expressions(exprs) = &order.kind else {
        return None;
    };
    let first = exprs.first()?;
    let by_score = matches!(&first.expr, Expr::Identifier(id) if id.value == SCORE);
    if !by_score || first.options.asc != Some(false) {
        return None;
    }
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    };
    match query.limit_clause.as_ref()? {
        LimitClause::LimitOffset { limit, offset, .. } => {
            let limit = number(limit.as_ref()?)?;
            let offset = match offset {
                Some(o) => number(&o.value)?,
                None => 0,
            };
            limit.checked_add(offset)
        }
        LimitClause::OffsetCommaLimit { offset, limit } => {
            number(limit)?.checked_add(number(offset)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_becomes_an_ordered_select() {
        let r = rewrite_text("SEARCH resources 'rocks db' WHERE category = 'x' LIMIT 5").unwrap();
        assert_eq!(
            r.sql.split_whitespace().collect::<Vec<_>>().join(" "),
            "SELECT * FROM \"resources\" WHERE category = 'x' ORDER BY embedding.cosine('rocks db') DESC LIMIT 5"
        );
        let r = rewrite_text("search notes 'it''s'").unwrap();
        assert!(
            r.sql.contains("embedding.cosine('it''s') DESC LIMIT 10"),
            "{}",
            r.sql
        );
    }

    #[test]
    fn search_and_lookup_errors() {
        // A quoted literal in the filter keeps its escapes (found by the sql_rewrite
        // fuzz target).
        let r = rewrite_text("SEARCH resources 'x' WHERE name = 'it''s' LIMIT 3").unwrap();
        assert_eq!(
            r.sql,
            "SELECT * FROM \"resources\" WHERE name = 'it''s' ORDER BY embedding.cosine('x') DESC LIMIT 3"
        );
        let r = rewrite_text("SEARCH resources 'x' WHERE a = 1 -- a note").unwrap();
        assert_eq!(
            r.sql,
            "SELECT * FROM \"resources\" WHERE a = 1 -- a note\nORDER BY embedding.cosine('x') DESC LIMIT 10"
        );
        assert!(rewrite_text("SEARCH resources").is_err());
        assert!(rewrite_text("SEARCH resources 'x' ORDER BY name").is_err());
        assert!(rewrite_text("LOOKUP key").is_err());
        assert!(rewrite_text("LOOKUP 'a' 'b'").is_err());
        let r = rewrite_text("LOOKUP 'file:///a.md'").unwrap();
        assert!(matches!(&r.virtuals[0], Virtual::Lookup { key, .. } if key == "file:///a.md"));
    }

    #[test]
    fn traverse_clauses() {
        let spec = |sql: &str| match rewrite_text(sql).map(|r| r.virtuals) {
            Ok(v) => match &v[0] {
                Virtual::Traverse { spec, .. } => Ok(spec.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e),
        };
        let s = spec("TRAVERSE 'ada' DEPTH 3 DIRECTION in TYPE knows DFS").unwrap();
        assert_eq!(
            s,
            TraverseSpec {
                start: "ada".into(),
                depth: 3,
                direction: "in".into(),
                edge_type: Some("knows".into()),
                dfs: true
            }
        );
        let s = spec("traverse b9d875e0-e0cf-b719-3200-e669c374a433 depth 1;").unwrap();
        assert_eq!(s.start, "b9d875e0-e0cf-b719-3200-e669c374a433");
        assert_eq!(s.depth, 1);
        assert_eq!(s.direction, "out");
        assert!(spec("TRAVERSE").is_err());
        assert!(spec("TRAVERSE 'a' DEPTH x").is_err());
        assert!(spec("TRAVERSE 'a' SIDEWAYS").is_err());
    }

    fn rewrite(sql: &str) -> Result<(String, Vec<Virtual>), String> {
        let mut stmts = datafusion::sql::parser::DFParser::parse_sql(sql).unwrap();
        let mut stmt = stmts.pop_front().unwrap();
        let mut v = vec![];
        rewrite_statement(&mut stmt, &mut v)?;
        Ok((stmt.to_string(), v))
    }

    #[test]
    fn cosine_becomes_a_search_table() {
        let (sql, v) = rewrite(
            "SELECT name FROM resources WHERE category = 'a' ORDER BY embedding.cosine('q') DESC LIMIT 3 OFFSET 2",
        )
        .unwrap();
        assert!(sql.contains("FROM __rem_search_0 AS resources"), "{sql}");
        assert!(sql.contains("ORDER BY _score DESC"), "{sql}");
        let Virtual::Search { spec, .. } = &v[0] else {
            panic!()
        };
        assert_eq!(
            (spec.table.as_str(), spec.text.as_str(), spec.k, spec.alt),
            ("resources", "q", Some(5), false)
        );

        // A threshold without ORDER BY ... DESC LIMIT: every row above it (k = all).
        let (sql, v) =
            rewrite("SELECT id FROM r AS x WHERE embedding_alt.cosine('q') > 0.7").unwrap();
        assert!(
            sql.contains("FROM __rem_search_0 AS x WHERE _score > 0.7"),
            "{sql}"
        );
        assert!(matches!(&v[0], Virtual::Search { spec, .. } if spec.k.is_none() && spec.alt));

        assert!(rewrite(
            "SELECT * FROM a JOIN b ON a.id = b.id ORDER BY embedding.cosine('q') DESC"
        )
        .is_err());
        assert!(rewrite("SELECT * FROM a ORDER BY embedding.cosine(name) DESC").is_err());
        assert!(rewrite("SELECT embedding.cosine('a'), embedding.cosine('b') FROM a").is_err());
        let (sql, v) = rewrite("SELECT * FROM a WHERE x = 1").unwrap();
        assert!(v.is_empty() && sql.contains("FROM a"));
    }
}
