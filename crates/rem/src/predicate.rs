//! `--where` predicates: SQL boolean expressions parsed by `sqlparser` and turned into
//! engine [`Filter`]s (so indexed predicates use indexes).
//!
//! Supported: `= != <> < <= > >=`, `IN (...)`, `NOT IN`, `BETWEEN`, `IS [NOT] NULL`,
//! `LIKE`/`ILIKE` (`%` and `_`), `'x' = ANY(list_field)`, `AND`, `OR`, `NOT`,
//! parentheses. Literals: numbers, 'strings' (ISO-8601 strings compare as times on
//! date-time fields), TRUE/FALSE.

use std::ops::Bound;

use serde_json::Value;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value as SqlValue};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::{Error, Filter, Result};

impl Filter {
    /// Parses a SQL predicate such as `category = 'tutorial' AND views >= 10`.
    pub fn parse(predicate: &str) -> Result<Filter> {
        let bad =
            |msg: String| Error::InvalidInput(format!("invalid predicate '{predicate}': {msg}"));
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(predicate)
            .map_err(|e| bad(e.to_string()))?;
        let expr = parser.parse_expr().map_err(|e| bad(e.to_string()))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(bad(format!(
                "unexpected '{}' at {}",
                next.token, next.span.start
            )));
        }
        to_filter(&expr).map_err(bad)
    }
}

fn to_filter(expr: &Expr) -> std::result::Result<Filter, String> {
    Ok(match expr {
        Expr::Nested(inner) => to_filter(inner)?,
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Filter::Not(Box::new(to_filter(expr)?)),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut parts = Vec::new();
            for side in [left, right] {
                match to_filter(side)? {
                    Filter::And(inner) => parts.extend(inner),
                    other => parts.push(other),
                }
            }
            Filter::And(parts)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => Filter::Or(vec![to_filter(left)?, to_filter(right)?]),
        Expr::BinaryOp { left, op, right } => comparison(left, op, right)?,
        Expr::IsNull(e) => Filter::IsNull(field(e)?),
        Expr::IsNotNull(e) => Filter::Not(Box::new(Filter::IsNull(field(e)?))),
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let values = list
                .iter()
                .map(literal)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let f = Filter::In(field(expr)?, values);
            if *negated {
                Filter::Not(Box::new(f))
            } else {
                f
            }
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let f = Filter::Range {
                field: field(expr)?,
                lower: Bound::Included(literal(low)?),
                upper: Bound::Included(literal(high)?),
            };
            if *negated {
                Filter::Not(Box::new(f))
            } else {
                f
            }
        }
        Expr::Like {
            negated,
            expr,
            pattern,
            ..
        } => like(expr, pattern, *negated, false)?,
        Expr::ILike {
            negated,
            expr,
            pattern,
            ..
        } => like(expr, pattern, *negated, true)?,
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => Filter::Eq(field(right)?, literal(left)?),
        other => return Err(format!("'{other}' is not a supported condition")),
    })
}

fn like(
    expr: &Expr,
    pattern: &Expr,
    negated: bool,
    case_insensitive: bool,
) -> std::result::Result<Filter, String> {
    let Value::String(pattern) = literal(pattern)? else {
        return Err("LIKE needs a string pattern".into());
    };
    let f = Filter::Like {
        field: field(expr)?,
        pattern,
        case_insensitive,
    };
    Ok(if negated { Filter::Not(Box::new(f)) } else { f })
}

fn comparison(
    left: &Expr,
    op: &BinaryOperator,
    right: &Expr,
) -> std::result::Result<Filter, String> {
    // `5 < x` is `x > 5`.
    let (f, v, op) = match (field(left), field(right)) {
        (Ok(f), _) if literal(right).is_ok() => (f, literal(right)?, op.clone()),
        (_, Ok(f)) if literal(left).is_ok() => (
            f,
            literal(left)?,
            match op {
                BinaryOperator::Lt => BinaryOperator::Gt,
                BinaryOperator::LtEq => BinaryOperator::GtEq,
                BinaryOperator::Gt => BinaryOperator::Lt,
                BinaryOperator::GtEq => BinaryOperator::LtEq,
                other => other.clone(),
            },
        ),
        _ => {
            return Err(format!(
                "compare a field with a literal, not '{left} {op} {right}'"
            ))
        }
    };
    Ok(match op {
        BinaryOperator::Eq => Filter::Eq(f, v),
        BinaryOperator::NotEq => Filter::Not(Box::new(Filter::Eq(f, v))),
        BinaryOperator::Lt => Filter::Range {
            field: f,
            lower: Bound::Unbounded,
            upper: Bound::Excluded(v),
        },
        BinaryOperator::LtEq => Filter::Range {
            field: f,
            lower: Bound::Unbounded,
            upper: Bound::Included(v),
        },
        BinaryOperator::Gt => Filter::Range {
            field: f,
            lower: Bound::Excluded(v),
            upper: Bound::Unbounded,
        },
        BinaryOperator::GtEq => Filter::Range {
            field: f,
            lower: Bound::Included(v),
            upper: Bound::Unbounded,
        },
        other => return Err(format!("operator {other} is not supported")),
    })
}

/// A column reference: `field`, `"field"` or `table.field` (the table part is ignored).
fn field(expr: &Expr) -> std::result::Result<String, String> {
    match expr {
        Expr::Identifier(id) => Ok(id.value.clone()),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.clone())
            .ok_or_else(|| "empty name".into()),
        Expr::Nested(inner) => field(inner),
        other => Err(format!("'{other}' is not a field name")),
    }
}

fn literal(expr: &Expr) -> std::result::Result<Value, String> {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .map_err(|_| format!("'{n}' is not a number")),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Ok(Value::String(s.clone()))
            }
            SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
            SqlValue::Null => Ok(Value::Null),
            other => Err(format!("'{other}' is not a supported literal")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Value::Number(n) => Ok(n
                .as_i64()
                .map(|i| Value::from(-i))
                .unwrap_or_else(|| Value::from(-n.as_f64().unwrap_or(0.0)))),
            _ => Err("only numbers can be negated".into()),
        },
        Expr::Nested(inner) => literal(inner),
        other => Err(format!("'{other}' is not a literal")),
    }
}

/// SQL LIKE matching: `%` any run, `_` any one character.
pub(crate) fn like_matches(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let fold = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let t: Vec<char> = fold(text).chars().collect();
    let p: Vec<char> = fold(pattern).chars().collect();
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut ti, mut pi, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_common_predicates() {
        assert_eq!(
            Filter::parse("category = 'tutorial'").unwrap(),
            Filter::Eq("category".into(), json!("tutorial"))
        );
        assert_eq!(
            Filter::parse("views >= 10 AND 3 > level").unwrap(),
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
            Filter::parse("x IN (1, 2.5, -3)").unwrap(),
            Filter::In("x".into(), vec![json!(1), json!(2.5), json!(-3)])
        );
        assert_eq!(
            Filter::parse("'rust' = ANY(tags)").unwrap(),
            Filter::Eq("tags".into(), json!("rust"))
        );
        assert!(matches!(
            Filter::parse("a != 1 OR b IS NOT NULL").unwrap(),
            Filter::Or(_)
        ));
        assert!(matches!(
            Filter::parse("name ILIKE 'ad%'").unwrap(),
            Filter::Like {
                case_insensitive: true,
                ..
            }
        ));
        assert!(matches!(
            Filter::parse("t BETWEEN '2025-01-01' AND '2025-02-01'").unwrap(),
            Filter::Range { .. }
        ));
    }

    #[test]
    fn rejects_what_it_cannot_do_with_a_position() {
        let err = Filter::parse("a = = 1").unwrap_err().to_string();
        assert!(err.contains("invalid predicate"), "{err}");
        let err = Filter::parse("a = 1 b").unwrap_err().to_string();
        assert!(err.contains("unexpected"), "{err}");
        assert!(Filter::parse("a = b").is_err());
        assert!(Filter::parse("a + 1").is_err());
    }

    #[test]
    fn like() {
        assert!(like_matches("Database", "Data%", false));
        assert!(like_matches("Database", "%base", false));
        assert!(like_matches("Database", "D_t%e", false));
        assert!(!like_matches("Database", "data%", false));
        assert!(like_matches("Database", "data%", true));
        assert!(!like_matches("Data", "Data_", false));
        assert!(like_matches("", "%", false));
    }
}
