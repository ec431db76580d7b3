//! `--where` predicates (search filters): the same SQL boolean expressions a `WHERE`
//! clause takes, parsed by DataFusion's parser, planned by DataFusion against the
//! table's columns, and turned into an engine [`Filter`] by the leaf conversions of
//! [`crate::pushdown`], the code that pushes a SQL `WHERE` into a scan.
//!
//! The difference from pushdown: a search filter is the whole predicate (nothing
//! re-checks it afterwards), so every part must convert, and `NOT` may wrap any part.
//! A predicate that SQL accepts but no engine filter can express (`a + 1 > 2`, a
//! comparison of two columns, a function call) is refused with the part named.

use std::sync::OnceLock;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ExprWithAlias, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use rem::{Database, Filter};

use crate::{Error, Result};

use crate::convert::{arrow_schema, columns, system_columns, Column};
use crate::engine::{session, sql_error, syntax_error};
use crate::pushdown::leaf;

/// Checks that `predicate` is one SQL expression, without planning it (no database
/// needed): what a client can tell before it opens anything.
pub fn check_where(predicate: &str) -> Result<()> {
    parse(predicate).map(|_| ())
}

/// The engine filter for a `--where` predicate over `table` (over the columns of every
/// registered table when `None`, as a search that picks its table by similarity needs).
pub fn parse_where(db: &Database, table: Option<&str>, predicate: &str) -> Result<Filter> {
    let ast = parse(predicate)?;
    let cols = match table {
        Some(t) => columns(db.schema(t)?.as_ref()),
        None => {
            let mut cols = system_columns();
            for schema in db.schemas()? {
                for c in columns(&schema) {
                    if !cols.iter().any(|k| k.name == c.name) {
                        cols.push(c);
                    }
                }
            }
            cols
        }
    };
    let df_schema = DFSchema::try_from(arrow_schema(&cols).as_ref().clone())
        .map_err(|e| Error::Query(format!("predicate schema: {e}")))?;
    let expr = state()?
        .create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: ast,
                alias: None,
            },
            &df_schema,
        )
        .map_err(|e| invalid(predicate, &sql_error(e).to_string()))?;
    // Type-check as a WHERE clause would, constants included (`views = 'many'` fails
    // here, as in SQL): coerce, plan, and evaluate over no rows.
    let arrow = arrow_schema(&cols);
    state()?
        .create_physical_expr(expr.clone(), &df_schema)
        .and_then(|p| p.evaluate(&RecordBatch::new_empty(arrow)))
        .map_err(|e| invalid(predicate, &sql_error(e).to_string()))?;
    complete(&expr, &cols).map_err(|part| {
        invalid(
            predicate,
            &format!("'{part}' cannot be a search filter (compare a field with a literal)"),
        )
    })
}

fn invalid(predicate: &str, msg: &str) -> Error {
    let msg = msg.strip_prefix("SQL error: ").unwrap_or(msg);
    Error::Query(format!("invalid predicate '{predicate}': {msg}"))
}

/// How deep parentheses may nest in a search filter. The parser backtracks at each
/// level it cannot settle at once (a `(` may open a subquery, a tuple or an
/// expression), so depth, not length, is what costs; real filters nest a few levels.
const MAX_NESTING: usize = 16;

/// How many `AND`/`OR`/`NOT` a search filter may hold: each makes the expression tree one
/// level deeper, and planning recurses through it (a 2,000-term chain overflowed a
/// thread's stack).
const MAX_CONNECTIVES: usize = 64;

/// Refuses, before the parser sees them, the tokens no search filter uses: `.` chains,
/// `[…]` subscripts, `:` and `::`, operators of other dialects. The parser (sqlparser)
/// tries such shapes several ways and backtracks; on crafted input of under 100 bytes
/// that took tens of seconds (fuzzing found it). What is left, words, literals,
/// comparisons, arithmetic, commas and parentheses nested at most [`MAX_NESTING`]
/// deep, parses in time linear in its length.
fn screen(predicate: &str, tokens: &[TokenWithSpan]) -> Result<()> {
    let mut depth = 0usize;
    let mut connectives = 0usize;
    for t in tokens {
        if let Token::Word(w) = &t.token {
            let connective = ["AND", "OR", "NOT"]
                .iter()
                .any(|k| w.value.eq_ignore_ascii_case(k));
            if w.quote_style.is_none() && connective {
                connectives += 1;
                if connectives > MAX_CONNECTIVES {
                    let at = t.span.start;
                    let msg = format!("more than {MAX_CONNECTIVES} AND/OR/NOT (at {at})");
                    return Err(invalid(predicate, &msg));
                }
            }
        }
        match &t.token {
            Token::LParen => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(invalid(
                        predicate,
                        &format!(
                            "parentheses nest deeper than {MAX_NESTING} at {}",
                            t.span.start
                        ),
                    ));
                }
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Comma
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::EOF => {}
            other => {
                return Err(invalid(
                    predicate,
                    &format!(
                        "'{other}' at {} has no place in a search filter (compare fields with literals, combined by AND, OR and NOT)",
                        t.span.start
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn parse(predicate: &str) -> Result<SqlExpr> {
    let dialect = GenericDialect {};
    let syntax = |e: &datafusion::sql::sqlparser::parser::ParserError| {
        invalid(predicate, &syntax_error(e).to_string())
    };
    let tokens = Tokenizer::new(&dialect, predicate)
        .tokenize_with_location()
        .map_err(|e| syntax(&e.into()))?;
    screen(predicate, &tokens)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let expr = parser.parse_expr().map_err(|e| syntax(&e))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(invalid(
            predicate,
            &format!("unexpected '{}' at {}", next.token, next.span.start),
        ));
    }
    if has_subquery(&expr) {
        return Err(invalid(predicate, "subqueries are not search filters"));
    }
    Ok(expr)
}

/// True when the expression holds a subquery (`IN (SELECT …)`, `EXISTS`), which an
/// expression planner without tables cannot plan.
fn has_subquery(expr: &SqlExpr) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &SqlExpr) -> std::ops::ControlFlow<()> {
            match e {
                SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => {
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            }
        }
    }
    expr.visit(&mut Finder).is_break()
}

/// One session state for planning predicates, configured as the SQL sessions are
/// (case-sensitive identifiers, the JSON functions).
fn state() -> Result<&'static SessionState> {
    static STATE: OnceLock<std::result::Result<SessionState, String>> = OnceLock::new();
    STATE
        .get_or_init(|| session(1).map(|s| s.state()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Query(e.clone()))
}

/// The whole of `expr` as an engine filter, or the first part that cannot be one.
fn complete(expr: &Expr, cols: &[Column]) -> std::result::Result<Filter, String> {
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::And | Operator::Or),
            right,
        }) => connective(
            *op == Operator::And,
            complete(left, cols)?,
            complete(right, cols)?,
        ),
        Expr::Not(inner) => negate(inner, cols)?,
        Expr::Alias(a) => complete(&a.expr, cols)?,
        // `a != x`, `NOT IN`, `NOT BETWEEN`, `NOT LIKE`: the negation of the positive
        // form, with SQL's NULL rule.
        other => match positive(other) {
            Some(p) => negate(&p, cols).map_err(|_| expr.to_string())?,
            None => whole_leaf(other, cols).ok_or_else(|| expr.to_string())?,
        },
    })
}

/// `NOT expr` under SQL's three-valued logic: a row is kept only when `expr` is false,
/// not when it is unknown. De Morgan's laws hold there, so the negation is pushed to
/// the comparisons, and a negated comparison also requires its fields to be present
/// (`NOT (note LIKE 'a%')` keeps no row without a note, as SQL does).
fn negate(expr: &Expr, cols: &[Column]) -> std::result::Result<Filter, String> {
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::And | Operator::Or),
            right,
        }) => connective(
            *op == Operator::Or,
            negate(left, cols)?,
            negate(right, cols)?,
        ),
        Expr::Not(inner) => complete(inner, cols)?,
        Expr::Alias(a) => negate(&a.expr, cols)?,
        Expr::IsNull(inner) => complete(&Expr::IsNotNull(inner.clone()), cols)?,
        Expr::IsNotNull(inner) => complete(&Expr::IsNull(inner.clone()), cols)?,
        other => match positive(other) {
            // NOT (a != x) is a = x: NULL stays unknown either way.
            Some(p) => complete(&p, cols)?,
            None => {
                let mut names: Vec<String> =
                    other.column_refs().iter().map(|c| c.name.clone()).collect();
                names.sort();
                names.dedup();
                let mut parts = vec![Filter::Not(Box::new(complete(other, cols)?))];
                parts.extend(
                    names
                        .into_iter()
                        .map(|n| Filter::Not(Box::new(Filter::IsNull(n)))),
                );
                Filter::And(parts)
            }
        },
    })
}

/// The positive form of a negated comparison (`a != x` → `a = x`, `NOT IN` → `IN`,
/// `NOT BETWEEN`, `NOT LIKE`), or `None` for anything else.
fn positive(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::BinaryExpr(b) if b.op == Operator::NotEq => Some(Expr::BinaryExpr(BinaryExpr {
            op: Operator::Eq,
            ..b.clone()
        })),
        Expr::InList(list) if list.negated => {
            let mut p = list.clone();
            p.negated = false;
            Some(Expr::InList(p))
        }
        Expr::Between(b) if b.negated => Some(Expr::Between(Between {
            negated: false,
            ..b.clone()
        })),
        Expr::Like(l) if l.negated => Some(Expr::Like(Like {
            negated: false,
            ..l.clone()
        })),
        _ => None,
    }
}

/// `l AND r` (flattened) when `and`, else `l OR r`.
fn connective(and: bool, l: Filter, r: Filter) -> Filter {
    let mut parts = Vec::new();
    for side in [l, r] {
        match side {
            Filter::And(inner) if and => parts.extend(inner),
            Filter::Or(inner) if !and => parts.extend(inner),
            other => parts.push(other),
        }
    }
    if and {
        Filter::And(parts)
    } else {
        Filter::Or(parts)
    }
}

fn whole_leaf(expr: &Expr, cols: &[Column]) -> Option<Filter> {
    leaf(expr, cols).map(|c| c.filter)
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;
    use serde_json::json;

    fn db() -> Database {
        let db = Database::in_memory().unwrap();
        db.register_schema(json!({
            "title": "docs",
            "type": "object",
            "properties": {
                "category": {"type": "string"},
                "views": {"type": "integer"},
                "level": {"type": "integer"},
                "score": {"type": "number"},
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "t": {"type": "string", "format": "date-time"}
            }
        }))
        .unwrap();
        db
    }

    #[test]
    fn converts_common_predicates() {
        let db = db();
        let p = |s: &str| parse_where(&db, Some("docs"), s).unwrap();
        assert_eq!(
            p("category = 'tutorial'"),
            Filter::Eq("category".into(), json!("tutorial"))
        );
        assert_eq!(
            p("views >= 10 AND 3 > level"),
            Filter::And(vec![
                Filter::Range {
                    field: "views".into(),
                    lower: Bound::Included(json!(10)),
                    upper: Bound::Unbounded
                },
                Filter::Range {
                    field: "level".into(),
                    lower: Bound::Unbounded,
                    upper: Bound::Excluded(json!(3))
                },
            ])
        );
        assert_eq!(
            p("score IN (1, 2.5, -3)"),
            Filter::In("score".into(), vec![json!(1), json!(2.5), json!(-3)])
        );
        assert_eq!(
            p("'rust' = ANY(tags)"),
            Filter::Eq("tags".into(), json!("rust"))
        );
        assert!(matches!(p("views != 1 OR name IS NOT NULL"), Filter::Or(_)));
        assert!(matches!(
            p("name ILIKE 'ad%'"),
            Filter::Like {
                case_insensitive: true,
                ..
            }
        ));
        assert!(matches!(
            p("t BETWEEN '2025-01-01' AND '2025-02-01'"),
            Filter::Range { .. }
        ));
        // A negated comparison keeps only rows that have the field, as SQL does.
        let not_null = |f: &str| Filter::Not(Box::new(Filter::IsNull(f.into())));
        assert_eq!(
            p("views NOT IN (1, 2)"),
            Filter::And(vec![
                Filter::Not(Box::new(Filter::In(
                    "views".into(),
                    vec![json!(1), json!(2)]
                ))),
                not_null("views"),
            ])
        );
        assert_eq!(
            p("NOT (views = 1 AND name IS NULL)"),
            Filter::Or(vec![
                Filter::And(vec![
                    Filter::Not(Box::new(Filter::Eq("views".into(), json!(1)))),
                    not_null("views"),
                ]),
                not_null("name"),
            ])
        );
        // Across every table when none is named.
        assert_eq!(
            parse_where(&db, None, "category = 'x'").unwrap(),
            Filter::Eq("category".into(), json!("x"))
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        let db = db();
        let e = |s: &str| parse_where(&db, Some("docs"), s).unwrap_err();
        let err = e("views = = 1").to_string();
        assert!(err.contains("invalid predicate"), "{err}");
        let err = e("views = 1 b").to_string();
        assert!(err.contains("unexpected"), "{err}");
        let err = e("views = level").to_string();
        assert!(err.contains("cannot be a search filter"), "{err}");
        assert!(e("views + 1")
            .to_string()
            .contains("cannot be a search filter"));
        let err = e("nosuchfield = 1").to_string();
        assert!(err.contains("nosuchfield"), "{err}");
        assert!(e("views IN (SELECT 1)").to_string().contains("subqueries"));
        assert_eq!(e("views = = 1").kind(), rem::ErrorKind::InvalidInput);
        assert!(check_where("a = = 1").is_err());
        assert!(check_where("a = 1").is_ok());
    }

    /// Inputs that made the parser backtrack for tens of seconds (found by the
    /// `where_predicate` fuzz target) are refused by the token screen, and the shapes
    /// the screen lets through stay cheap at its limits: nesting at the cap, long
    /// chains, unbalanced openings, nested `IN (` and function calls.
    #[test]
    fn backtracking_shapes_are_refused_or_cheap() {
        let db = db();
        for finding in [
            &include_bytes!("../../../fuzz/findings/where_predicate-slow-4bc08d06")[..],
            &include_bytes!("../../../fuzz/findings/where_predicate-timeout-db1196a7")[..],
        ] {
            let text = std::str::from_utf8(finding).unwrap();
            let err = check_where(text).unwrap_err().to_string();
            assert!(err.contains("no place in a search filter"), "{err}");
            let err = parse_where(&db, Some("docs"), text).unwrap_err();
            assert_eq!(err.kind(), rem::ErrorKind::InvalidInput);
        }
        for refused in [
            "tags[1] = 't'",
            "a.b = 1",
            "views::text = '1'",
            "x -> 'k' = 1",
        ] {
            let err = check_where(refused).unwrap_err().to_string();
            assert!(
                err.contains("no place in a search filter"),
                "{refused}: {err}"
            );
        }
        let nest = |n: usize, inner: &str| format!("{}{inner}{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(
            parse_where(&db, Some("docs"), &nest(MAX_NESTING, "views = 1")).unwrap(),
            Filter::Eq("views".into(), json!(1))
        );
        let err = check_where(&nest(MAX_NESTING + 1, "views = 1")).unwrap_err();
        assert!(err.to_string().contains("nest deeper"), "{err}");
        let long = vec!["views = 1"; 2000].join(" AND ");
        let err = check_where(&long).unwrap_err().to_string();
        assert!(err.contains("AND/OR/NOT"), "{err}");
        let chain = vec!["views = 1"; MAX_CONNECTIVES + 1].join(" AND ");
        assert!(matches!(
            parse_where(&db, Some("docs"), &chain).unwrap(),
            Filter::And(_)
        ));
        let nots = format!("{}views = 1", "NOT ".repeat(40));
        assert!(parse_where(&db, Some("docs"), &nots).is_ok());
        // Shapes with nothing after the openings, which no filter parses: each is
        // refused, and each would take the parser years if it backtracked per level.
        for opening in ["(", "views IN (", "f(", "(SELECT ", "CAST(", "NOT ("] {
            let text = format!("{}views", opening.repeat(MAX_NESTING));
            assert!(check_where(&text).is_err(), "{text}");
            let text = format!("{}views = 1", opening.repeat(MAX_NESTING));
            assert!(check_where(&text).is_err(), "{text}");
        }
    }
}
