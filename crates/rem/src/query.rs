//! Filters over a table and the choice of access path: the engine-level query API
//! that `Database::scan` runs and the SQL layer builds on.

use std::cmp::Ordering;
use std::ops::Bound;

use serde_json::Value;

use crate::entity::parse_ts;
use crate::format::indexes::{encode_scalar, tag_of};
use crate::{Entity, EntityId, FieldType, Schema};

/// A predicate over an entity's fields (system fields included).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// Every entity.
    All,
    /// `field = value` (for array fields: any element equals).
    Eq(String, Value),
    /// `field IN (values)`.
    In(String, Vec<Value>),
    /// `lower <op> field <op> upper`.
    Range {
        /// Field name.
        field: String,
        /// Lower bound.
        lower: Bound<Value>,
        /// Upper bound.
        upper: Bound<Value>,
    },
    /// `field IS NULL` (absent or null).
    IsNull(String),
    /// `field LIKE pattern` (`%`, `_`); `ILIKE` when case-insensitive.
    Like {
        /// Field name.
        field: String,
        /// SQL LIKE pattern.
        pattern: String,
        /// ILIKE.
        case_insensitive: bool,
    },
    /// All must hold.
    And(Vec<Filter>),
    /// Any must hold.
    Or(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
}

impl Filter {
    /// Adds the names of the fields this filter reads to `out`.
    pub fn collect_fields(&self, out: &mut Vec<String>) {
        match self {
            Filter::All => {}
            Filter::Eq(f, _) | Filter::In(f, _) | Filter::IsNull(f) => out.push(f.clone()),
            Filter::Range { field, .. } | Filter::Like { field, .. } => out.push(field.clone()),
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| f.collect_fields(out)),
            Filter::Not(f) => f.collect_fields(out),
        }
    }

    /// `field = value`.
    pub fn eq(field: &str, value: impl Into<Value>) -> Filter {
        Filter::Eq(field.to_string(), value.into())
    }

    /// `lower <= field < upper` style ranges.
    pub fn range(field: &str, lower: Bound<Value>, upper: Bound<Value>) -> Filter {
        Filter::Range {
            field: field.to_string(),
            lower,
            upper,
        }
    }

    /// True when `entity` satisfies the filter.
    pub fn matches(&self, entity: &Entity, schema: &Schema) -> bool {
        match self {
            Filter::All => true,
            Filter::Eq(f, v) => field_values(entity, f)
                .iter()
                .any(|x| compare(schema, f, x, v) == Some(Ordering::Equal)),
            Filter::In(f, vs) => {
                let xs = field_values(entity, f);
                vs.iter().any(|v| {
                    xs.iter()
                        .any(|x| compare(schema, f, x, v) == Some(Ordering::Equal))
                })
            }
            Filter::Range {
                field,
                lower,
                upper,
            } => field_values(entity, field).iter().any(|x| {
                let lo = match lower {
                    Bound::Unbounded => true,
                    Bound::Included(v) => matches!(
                        compare(schema, field, x, v),
                        Some(Ordering::Greater | Ordering::Equal)
                    ),
                    Bound::Excluded(v) => compare(schema, field, x, v) == Some(Ordering::Greater),
                };
                let hi = match upper {
                    Bound::Unbounded => true,
                    Bound::Included(v) => matches!(
                        compare(schema, field, x, v),
                        Some(Ordering::Less | Ordering::Equal)
                    ),
                    Bound::Excluded(v) => compare(schema, field, x, v) == Some(Ordering::Less),
                };
                lo && hi
            }),
            Filter::IsNull(f) => matches!(entity.field(f), None | Some(Value::Null)),
            Filter::Like {
                field,
                pattern,
                case_insensitive,
            } => field_values(entity, field).iter().any(|x| {
                x.as_str()
                    .is_some_and(|s| like_matches(s, pattern, *case_insensitive))
            }),
            Filter::And(fs) => fs.iter().all(|f| f.matches(entity, schema)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(entity, schema)),
            Filter::Not(f) => !f.matches(entity, schema),
        }
    }
}

/// The values a field holds: the elements of an array, else the value itself.
fn field_values(entity: &Entity, field: &str) -> Vec<Value> {
    match entity.field(field) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => vec![],
        Some(v) => vec![v],
    }
}

fn is_timestamp_field(schema: &Schema, field: &str) -> bool {
    matches!(field, "created_at" | "modified_at" | "deleted_at")
        || matches!(schema.field_type(field), Some(FieldType::Timestamp))
        || matches!(schema.field_type(field), Some(FieldType::Array(t)) if **t == FieldType::Timestamp)
}

/// Compares a stored value with a query value: numbers numerically, timestamps as
/// instants (ISO-8601 strings on either side), strings byte-wise. `None` when the
/// kinds are incomparable.
fn compare(schema: &Schema, field: &str, stored: &Value, query: &Value) -> Option<Ordering> {
    if is_timestamp_field(schema, field) {
        if let (Value::String(a), Value::String(b)) = (stored, query) {
            return Some(parse_ts(a)?.cmp(&parse_ts(b)?));
        }
    }
    match (stored, query) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// How a scan reads the table. Shown by `EXPLAIN` in the SQL layer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AccessPath {
    /// Every entity of the table, in id order.
    FullScan,
    /// Point gets by id.
    Ids(Vec<EntityId>),
    /// The global key index, for the table's key field.
    KeyIndex {
        /// Key field.
        field: String,
        /// Key values looked up.
        values: Vec<Value>,
    },
    /// Equality / IN on a secondary index.
    IndexEq {
        /// Indexed field.
        field: String,
        /// Values looked up.
        values: Vec<Value>,
    },
    /// A range scan of a secondary index.
    IndexRange {
        /// Indexed field.
        field: String,
        /// Lower bound.
        lower: Bound<Value>,
        /// Upper bound.
        upper: Bound<Value>,
    },
}

impl std::fmt::Display for AccessPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessPath::FullScan => write!(f, "full scan"),
            AccessPath::Ids(ids) => write!(f, "id lookup ({} ids)", ids.len()),
            AccessPath::KeyIndex { field, values } => {
                write!(f, "key index on {field} ({} values)", values.len())
            }
            AccessPath::IndexEq { field, values } => {
                write!(f, "index on {field} (equality, {} values)", values.len())
            }
            AccessPath::IndexRange { field, .. } => write!(f, "index on {field} (range)"),
        }
    }
}

/// Options of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Stop after this many matching entities.
    pub limit: Option<usize>,
    /// Also return soft-deleted entities.
    pub include_deleted: bool,
    /// Only these properties are needed: the others may be left out of the entities
    /// given (they are skipped while decoding, which makes wide scans cheaper). `None`
    /// decodes every property. Fields the filter reads are always decoded.
    pub properties: Option<Vec<String>>,
    /// `(i, n)`: only entities whose id falls in the i-th of n equal id ranges, so n
    /// scans (e.g. on n threads) together read the table once. `None`: all.
    pub shard: Option<(u32, u32)>,
}

/// The first id byte of shard `i` of `n` (256 for the end of the last shard).
pub(crate) fn shard_start(i: u32, n: u32) -> u32 {
    256 * i.min(n) / n.max(1)
}

/// Picks the cheapest access path for `filter`: ids, then the key index, then an
/// equality index, then a range index (only when `ordered`: the index keys hold the
/// values in order, which an encrypted database's keyed hashes do not); else a full
/// scan. The whole filter is still applied to every entity read, so the path only needs
/// to be a superset.
pub(crate) fn plan(schema: &Schema, filter: &Filter, ordered: bool) -> AccessPath {
    let conjuncts: Vec<&Filter> = match filter {
        Filter::And(fs) => fs.iter().collect(),
        other => vec![other],
    };
    let eq_values = |f: &Filter| -> Option<(String, Vec<Value>)> {
        match f {
            Filter::Eq(field, v) => Some((field.clone(), vec![v.clone()])),
            Filter::In(field, vs) => Some((field.clone(), vs.clone())),
            _ => None,
        }
    };
    // 1. ids
    for c in &conjuncts {
        if let Some((field, values)) = eq_values(c) {
            if field == "id" {
                let ids: Option<Vec<EntityId>> = values
                    .iter()
                    .map(|v| v.as_str().and_then(|s| EntityId::parse(s).ok()))
                    .collect();
                // An unparseable id matches nothing: an empty id list is exact.
                return AccessPath::Ids(ids.unwrap_or_default());
            }
        }
    }
    // 2. the key field, through the global key index
    if let Some(key_field) = &schema.key_field {
        for c in &conjuncts {
            if let Some((field, values)) = eq_values(c) {
                if &field == key_field && values.iter().all(|v| v.is_string() || v.is_number()) {
                    return AccessPath::KeyIndex { field, values };
                }
            }
        }
    }
    // 3. equality on an indexed field
    for c in &conjuncts {
        if let Some((field, values)) = eq_values(c) {
            if schema.is_indexed(&field) && encodable(schema, &field, &values) {
                return AccessPath::IndexEq { field, values };
            }
        }
    }
    // 4. ranges on an indexed field; bounds on the same field are merged
    for c in conjuncts.iter().filter(|_| ordered) {
        if let Filter::Range { field, .. } = c {
            if !schema.is_indexed(field) {
                continue;
            }
            let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
            for other in &conjuncts {
                if let Filter::Range {
                    field: f2,
                    lower: l,
                    upper: u,
                } = other
                {
                    if f2 == field {
                        if !matches!(l, Bound::Unbounded) {
                            lower = l.clone();
                        }
                        if !matches!(u, Bound::Unbounded) {
                            upper = u.clone();
                        }
                    }
                }
            }
            let bounds: Vec<Value> = [&lower, &upper]
                .iter()
                .filter_map(|b| match b {
                    Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
                    Bound::Unbounded => None,
                })
                .collect();
            if encodable(schema, field, &bounds) {
                return AccessPath::IndexRange {
                    field: field.clone(),
                    lower,
                    upper,
                };
            }
        }
    }
    AccessPath::FullScan
}

/// True when every value encodes exactly under the field's index type (otherwise the
/// index could miss rows and a full scan is used instead).
fn encodable(schema: &Schema, field: &str, values: &[Value]) -> bool {
    let Some(ty) = schema.field_type(field) else {
        return false;
    };
    let scalar = match ty {
        FieldType::Array(inner) => inner.as_ref(),
        other => other,
    };
    let Some(tag) = tag_of(scalar) else {
        return false;
    };
    values
        .iter()
        .all(|v| encode_scalar(scalar, v).is_some_and(|enc| enc.first() == Some(&tag)))
}

/// SQL `LIKE` matching: `%` is any run of characters, `_` any one character.
fn like_matches(text: &str, pattern: &str, case_insensitive: bool) -> bool {
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
mod like_tests {
    use super::like_matches;

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
