//! DataFusion filter expressions → engine [`Filter`]s, which pick the access path (id
//! get, key index, secondary index) and pre-filter rows inside the scan.
//!
//! A converted filter is always a *superset* of what DataFusion would keep, so rows are
//! never lost. It is *exact* (DataFusion need not re-check it) only for comparisons
//! whose semantics match DataFusion's exactly: `=`, `IN`, `<`, `<=`, `>`, `>=`,
//! `BETWEEN` between a string, integer, float, boolean or timestamp column and a literal
//! of the same kind, and conjunctions of those. Everything else converted (`LIKE`, `OR`,
//! `NOT`, `!=`, `IS NULL`, `ANY`) is inexact: it narrows the scan and DataFusion
//! evaluates the original expression on what comes back.

use std::ops::Bound;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};
use rem::{FieldType, Filter};
use serde_json::Value;

use crate::convert::{Column, Source};

/// A converted filter and whether it is exact.
pub(crate) struct Converted {
    pub(crate) filter: Filter,
    pub(crate) exact: bool,
}

/// Converts `expr` over the columns `cols`; `None` when no part of it can be used.
pub(crate) fn convert(expr: &Expr, cols: &[Column]) -> Option<Converted> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                let (l, r) = (convert(left, cols), convert(right, cols));
                match (l, r) {
                    (Some(l), Some(r)) => Some(Converted {
                        exact: l.exact && r.exact,
                        filter: merge_ranges(l.filter, r.filter),
                    }),
                    // Dropping a conjunct widens the filter: still a superset.
                    (Some(one), None) | (None, Some(one)) => Some(Converted {
                        filter: one.filter,
                        exact: false,
                    }),
                    (None, None) => None,
                }
            }
            Operator::Or => {
                let (l, r) = (convert(left, cols)?, convert(right, cols)?);
                // DataFusion plans a short `IN` list as ORed equalities: fold them back
                // into one `In`, which the planner serves from an index.
                if let (Some((lf, mut lv)), Some((rf, rv))) =
                    (eq_values(&l.filter), eq_values(&r.filter))
                {
                    if lf == rf {
                        lv.extend(rv);
                        return Some(Converted {
                            filter: Filter::In(lf.to_string(), lv),
                            exact: l.exact && r.exact,
                        });
                    }
                }
                Some(Converted {
                    filter: Filter::Or(vec![l.filter, r.filter]),
                    exact: false,
                })
            }
            _ => comparison(left, *op, right, cols),
        },
        Expr::Not(inner) => {
            // Negating a superset would give a subset: only exact filters negate.
            let inner = convert(inner, cols)?;
            inner.exact.then(|| Converted {
                filter: Filter::Not(Box::new(inner.filter)),
                exact: false,
            })
        }
        other => leaf(other, cols),
    }
}

/// One comparison of a column with literals (not `AND`, `OR` or `NOT`), converted; the
/// search-filter planner in [`crate::predicate`] shares these.
pub(crate) fn leaf(expr: &Expr, cols: &[Column]) -> Option<Converted> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if !matches!(op, Operator::And | Operator::Or) =>
        {
            comparison(left, *op, right, cols)
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let (name, source) = column(expr, cols)?;
            let (lo, lo_kind) = literal(low)?;
            let (hi, hi_kind) = literal(high)?;
            Some(Converted {
                exact: exact_kinds(source, lo_kind) && exact_kinds(source, hi_kind),
                filter: Filter::range(name, Bound::Included(lo), Bound::Included(hi)),
            })
        }
        Expr::InList(list) if !list.negated => {
            let (name, source) = column(&list.expr, cols)?;
            let mut values = Vec::with_capacity(list.list.len());
            let mut exact = true;
            for item in &list.list {
                let (v, kind) = literal(item)?;
                exact &= exact_kinds(source, kind);
                values.push(v);
            }
            Some(Converted {
                filter: Filter::In(name.to_string(), values),
                exact,
            })
        }
        Expr::IsNull(inner) => {
            let (name, _) = column(inner, cols)?;
            Some(Converted {
                filter: Filter::IsNull(name.to_string()),
                exact: false,
            })
        }
        Expr::IsNotNull(inner) => {
            let (name, _) = column(inner, cols)?;
            Some(Converted {
                filter: Filter::Not(Box::new(Filter::IsNull(name.to_string()))),
                exact: false,
            })
        }
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char: None,
            case_insensitive,
        }) => {
            let (name, _) = column(expr, cols)?;
            let (Value::String(p), _) = literal(pattern)? else {
                return None;
            };
            Some(Converted {
                filter: Filter::Like {
                    field: name.to_string(),
                    pattern: p,
                    case_insensitive: *case_insensitive,
                },
                exact: false,
            })
        }
        // `'x' = ANY(list)` is planned as `array_has(list, 'x')`.
        Expr::ScalarFunction(f) if f.name() == "array_has" && f.args.len() == 2 => {
            let (name, source) = column(&f.args[0], cols)?;
            if !matches!(
                source,
                Source::Property(FieldType::Array(_)) | Source::Edges
            ) {
                return None;
            }
            let (v, _) = literal(&f.args[1])?;
            Some(Converted {
                filter: Filter::Eq(name.to_string(), v),
                exact: false,
            })
        }
        _ => None,
    }
}

/// `a >= x AND a < y` arrives as two ranges; one range with both bounds lets the planner
/// scan only that slice of the index.
fn merge_ranges(l: Filter, r: Filter) -> Filter {
    match (l, r) {
        (
            Filter::Range {
                field: f1,
                lower: l1,
                upper: Bound::Unbounded,
            },
            Filter::Range {
                field: f2,
                lower: Bound::Unbounded,
                upper: u2,
            },
        )
        | (
            Filter::Range {
                field: f2,
                lower: Bound::Unbounded,
                upper: u2,
            },
            Filter::Range {
                field: f1,
                lower: l1,
                upper: Bound::Unbounded,
            },
        ) if f1 == f2 => Filter::Range {
            field: f1,
            lower: l1,
            upper: u2,
        },
        (l, r) => Filter::And(vec![l, r]),
    }
}

/// The field and values of an `Eq` or `In` filter.
fn eq_values(f: &Filter) -> Option<(&str, Vec<Value>)> {
    match f {
        Filter::Eq(field, v) => Some((field.as_str(), vec![v.clone()])),
        Filter::In(field, vs) => Some((field.as_str(), vs.clone())),
        _ => None,
    }
}

fn comparison(left: &Expr, op: Operator, right: &Expr, cols: &[Column]) -> Option<Converted> {
    // Put the column on the left.
    let (col_side, lit_side, op) = match (column(left, cols), column(right, cols)) {
        (Some(_), None) => (left, right, op),
        (None, Some(_)) => (right, left, op.swap()?),
        _ => return None,
    };
    let (name, source) = column(col_side, cols)?;
    let (value, kind) = literal(lit_side)?;
    let exact = exact_kinds(source, kind);
    let name = name.to_string();
    let filter = match op {
        Operator::Eq => Filter::Eq(name, value),
        Operator::NotEq => {
            return Some(Converted {
                filter: Filter::Not(Box::new(Filter::Eq(name, value))),
                exact: false,
            })
        }
        Operator::Lt => Filter::range(&name, Bound::Unbounded, Bound::Excluded(value)),
        Operator::LtEq => Filter::range(&name, Bound::Unbounded, Bound::Included(value)),
        Operator::Gt => Filter::range(&name, Bound::Excluded(value), Bound::Unbounded),
        Operator::GtEq => Filter::range(&name, Bound::Included(value), Bound::Unbounded),
        _ => return None,
    };
    Some(Converted { filter, exact })
}

/// The kind of a literal, for deciding exactness.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    Timestamp,
}

/// True when comparing a column of `source` with a literal of `kind` means the same to
/// the engine as to DataFusion.
fn exact_kinds(source: &Source, kind: Kind) -> bool {
    match source {
        Source::Id | Source::EntityType => kind == Kind::Text,
        Source::Property(FieldType::String) => kind == Kind::Text,
        Source::Property(FieldType::Integer) => kind == Kind::Integer,
        Source::Property(FieldType::Number) => matches!(kind, Kind::Integer | Kind::Float),
        Source::Property(FieldType::Boolean) => kind == Kind::Boolean,
        // A timestamp literal (DataFusion folds `'2024-01-01'` compared with a timestamp
        // column into one) is compared as an instant by both.
        Source::CreatedAt
        | Source::ModifiedAt
        | Source::DeletedAt
        | Source::Property(FieldType::Timestamp) => kind == Kind::Timestamp,
        _ => false,
    }
}

/// The column an expression reads (through casts), if it is one of `cols` that the
/// engine can filter on.
fn column<'a>(expr: &Expr, cols: &'a [Column]) -> Option<(&'a str, &'a Source)> {
    let name = match expr {
        Expr::Column(c) => &c.name,
        _ => return None,
    };
    let col = cols.iter().find(|c| &c.name == name)?;
    match col.source {
        Source::Properties | Source::Score => None,
        Source::Property(FieldType::Object | FieldType::Any) => None,
        _ => Some((col.name.as_str(), &col.source)),
    }
}

/// A literal (possibly cast, e.g. a string compared with a timestamp column) as JSON.
fn literal(expr: &Expr) -> Option<(Value, Kind)> {
    match expr {
        Expr::Literal(v, _) => scalar(v),
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        _ => None,
    }
}

fn scalar(v: &ScalarValue) -> Option<(Value, Kind)> {
    use ScalarValue as S;
    let micros = |v: Option<i64>, per_second: i64| {
        let v = v?;
        let t = match per_second {
            1 => chrono::DateTime::from_timestamp(v, 0),
            1_000 => chrono::DateTime::from_timestamp_millis(v),
            1_000_000 => chrono::DateTime::from_timestamp_micros(v),
            _ => Some(chrono::DateTime::from_timestamp_nanos(v)),
        }?;
        Some((Value::String(rem::format_ts(&t)), Kind::Timestamp))
    };
    match v {
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
            Some((Value::String(s.clone()), Kind::Text))
        }
        S::Boolean(Some(b)) => Some((Value::Bool(*b), Kind::Boolean)),
        S::Int8(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::Int16(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::Int32(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::Int64(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::UInt8(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::UInt16(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::UInt32(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::UInt64(Some(x)) => Some(((*x).into(), Kind::Integer)),
        S::Float32(Some(x)) => Some((
            serde_json::Number::from_f64(f64::from(*x))?.into(),
            Kind::Float,
        )),
        S::Float64(Some(x)) => Some((serde_json::Number::from_f64(*x)?.into(), Kind::Float)),
        S::TimestampSecond(v, _) => micros(*v, 1),
        S::TimestampMillisecond(v, _) => micros(*v, 1_000),
        S::TimestampMicrosecond(v, _) => micros(*v, 1_000_000),
        S::TimestampNanosecond(v, _) => micros(*v, 1_000_000_000),
        _ => None,
    }
}

/// True when `expr` mentions the column `name` anywhere.
pub(crate) fn mentions(expr: &Expr, name: &str) -> bool {
    expr.column_refs().iter().any(|c| c.name == name)
}
