//! Runs files in SQLite's sqllogictest format against REM tables.
//!
//! Each file gets a fresh database. `CREATE TABLE` becomes a registered schema (SQLite's
//! type affinity picks each column's JSON type: `INT` → integer, `CHAR`/`CLOB`/`TEXT` →
//! string, `REAL`/`FLOA`/`DOUB` → number), `INSERT ... VALUES` and `INSERT ... SELECT`
//! become atomic batches of records (a NULL is an absent field), `CREATE INDEX` is
//! accepted and does nothing (indexes change no answer). Every query runs through
//! [`rem_sql::Sql::sql_with`] with [`SqlOptions::fields_only`], so `SELECT *` means the
//! declared columns, as over a SQLite table.
//!
//! Values print as SQLite's own runner prints them, by the column type the test
//! declares: `I` as a 64-bit integer (a real truncated toward zero), `R` with three
//! decimals, `T` as text (`(empty)` for an empty string), NULL as `NULL`. So an answer
//! that differs from SQLite's only in its type (DataFusion's `avg` of integers is a
//! float, SQLite's sum of integers an integer) compares by value.
//!
//! A query counts as *passed* (same values, or the same hash of them), *wrong* (it ran
//! and gave other values), *unsupported* (it ended in an error; the error is kept) or
//! *skipped* (`onlyif` another engine, `skipif` none of ours). Statements that fail are
//! counted apart, with their errors.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use md5::{Digest, Md5};
use rem::{Database, OpenOptions};
use rem_sql::arrow::array::{Array, ArrayRef, AsArray};
use rem_sql::arrow::compute::cast;
use rem_sql::arrow::datatypes::{DataType, Float64Type, Int64Type};
use rem_sql::arrow::record_batch::RecordBatch;
use rem_sql::arrow::util::display::{ArrayFormatter, FormatOptions};
use rem_sql::datafusion::sql::sqlparser::ast::{
    ColumnDef, Expr, SetExpr, Statement, TableObject, Value as SqlValue,
};
use rem_sql::datafusion::sql::sqlparser::dialect::GenericDialect;
use rem_sql::datafusion::sql::sqlparser::parser::Parser;
use rem_sql::{Sql, SqlOptions};
use serde_json::{Map, Value};
use sqllogictest::{Condition, DefaultColumnType, QueryExpect, Record, SortMode, StatementExpect};

/// The engine labels this runner answers to in `onlyif` / `skipif`: none. A query
/// written only for one engine (`onlyif sqlite`) is skipped; one that skips some other
/// engine runs.
const LABELS: [&str; 0] = [];

/// Queries whose answer differs from SQLite's only because DataFusion gives an
/// expression another type (the issue keeps DataFusion's types): the SQL, and why.
/// Counted as type differences, not wrong answers; each was checked by hand.
pub const TYPE_DIFFERENCES: &[(&str, &str)] = &[(
    "SELECT ALL ( NULLIF ( + 53, + + COUNT ( * ) * + AVG ( DISTINCT + + 80 ) ) ) / + - 71 * + NULLIF ( - 78, - 27 )",
    "NULLIF(53, 80.0) is a float in DataFusion (the common type of its arguments), so / divides as floats (58); SQLite keeps the integer 53 and divides as integers (0)",
)];

/// What one file gave.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The file.
    pub file: String,
    /// Queries with the expected answer.
    pub passed: usize,
    /// Queries that ran and gave another answer.
    pub wrong: usize,
    /// Queries whose answer differs only by type (listed in [`TYPE_DIFFERENCES`]).
    pub type_differences: usize,
    /// Queries that ended in an error.
    pub unsupported: usize,
    /// Queries for another engine.
    pub skipped: usize,
    /// Statements (`CREATE`, `INSERT`, ...) that failed where the file expects success.
    pub statements_failed: usize,
    /// Error messages of unsupported queries and failed statements, by count.
    pub errors: BTreeMap<String, usize>,
    /// The wrong queries: line, SQL, expected and actual.
    pub wrong_queries: Vec<String>,
}

impl Report {
    /// Queries that ran or failed (skipped ones aside).
    pub fn queries(&self) -> usize {
        self.passed + self.wrong + self.type_differences + self.unsupported
    }

    /// Adds another file's counts to this one.
    pub fn add(&mut self, other: &Report) {
        self.passed += other.passed;
        self.wrong += other.wrong;
        self.type_differences += other.type_differences;
        self.unsupported += other.unsupported;
        self.skipped += other.skipped;
        self.statements_failed += other.statements_failed;
        for (e, n) in &other.errors {
            *self.errors.entry(e.clone()).or_default() += n;
        }
        self.wrong_queries
            .extend(other.wrong_queries.iter().cloned());
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Affinity {
    Integer,
    Real,
    Text,
}

/// A database holding one file's tables.
struct Corpus {
    db: Database,
    _dir: tempfile::TempDir,
    /// Declared columns of each table, in order.
    tables: BTreeMap<String, Vec<(String, Affinity)>>,
}

/// Runs one file; an error only when the file cannot be read or parsed, or no database
/// can be opened.
pub fn run_file(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let text = resolve_halts(&text);
    let records = sqllogictest::parse::<DefaultColumnType>(&text)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("db"),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?;
    let mut corpus = Corpus {
        db,
        _dir: dir,
        tables: BTreeMap::new(),
    };
    let mut report = Report {
        file: path.display().to_string(),
        ..Report::default()
    };
    for record in records {
        corpus.run(record, &mut report);
    }
    Ok(report)
}

fn skipped(conditions: &[Condition]) -> bool {
    conditions.iter().any(|c| match c {
        Condition::OnlyIf { label } => !LABELS.contains(&label.as_str()),
        Condition::SkipIf { label } => LABELS.contains(&label.as_str()),
    })
}

/// `onlyif X` / `skipif X` before a `halt` applies to the halt (sqllogictest-rs would
/// carry the condition to the next record instead): a halt that applies cuts the file
/// there, one that does not is dropped. Comments after a condition's label go.
fn resolve_halts(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let words: Vec<&str> = lines[i].split_whitespace().collect();
        let next_is_halt = lines.get(i + 1).is_some_and(|l| l.trim() == "halt");
        match words.as_slice() {
            [kind @ ("onlyif" | "skipif"), label, ..] if next_is_halt => {
                let ours = LABELS.contains(label);
                let applies = if *kind == "onlyif" { ours } else { !ours };
                if applies {
                    break;
                }
                i += 2;
                continue;
            }
            ["halt"] => break,
            // sqllogictest-rs refuses a comment after the label (`onlyif sqlite # why`).
            [kind @ ("onlyif" | "skipif"), label, ..] => kept.push(format!("{kind} {label}")),
            _ => kept.push(lines[i].to_string()),
        }
        i += 1;
    }
    kept.join("\n") + "\n"
}

/// The first line of an error, with numbers and quoted names kept (they name the
/// construct).
fn short(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    let first = s.lines().next().unwrap_or_default();
    first.chars().take(160).collect()
}

impl Corpus {
    fn run(&mut self, record: Record<DefaultColumnType>, report: &mut Report) {
        match record {
            Record::Statement {
                conditions,
                sql,
                expected,
                ..
            } => {
                if skipped(&conditions) {
                    return;
                }
                let outcome = self.statement(&sql);
                match (outcome, expected) {
                    (Ok(()), StatementExpect::Error(_)) => {
                        report.statements_failed += 1;
                        *report
                            .errors
                            .entry("statement expected to fail succeeded".into())
                            .or_default() += 1;
                    }
                    (Err(e), StatementExpect::Ok | StatementExpect::Count(_)) => {
                        report.statements_failed += 1;
                        *report
                            .errors
                            .entry(format!("statement: {}", short(&e)))
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
            Record::Query {
                conditions,
                sql,
                expected,
                loc,
                ..
            } => {
                if skipped(&conditions) {
                    report.skipped += 1;
                    return;
                }
                match expected {
                    QueryExpect::Results {
                        types,
                        sort_mode,
                        results,
                        ..
                    } => match self.query(&sql, &types) {
                        Err(e) => {
                            report.unsupported += 1;
                            *report.errors.entry(short(&e)).or_default() += 1;
                        }
                        Ok(rows) => {
                            let (got, expected) = self.compare(rows, sort_mode, &results);
                            if got == expected {
                                report.passed += 1;
                            } else if TYPE_DIFFERENCES.iter().any(|(q, _)| sql.trim() == *q) {
                                report.type_differences += 1;
                            } else {
                                report.wrong += 1;
                                report.wrong_queries.push(format!(
                                    "{loc}: {sql}\n  expected: {}\n  got:      {}",
                                    expected.join(" "),
                                    got.join(" ")
                                ));
                            }
                        }
                    },
                    // A query the file expects to fail: failing is the right answer.
                    QueryExpect::Error(_) => match self.query(&sql, &[]) {
                        Err(_) => report.passed += 1,
                        Ok(_) => {
                            report.wrong += 1;
                            report
                                .wrong_queries
                                .push(format!("{loc}: {sql}\n  expected an error, got rows"));
                        }
                    },
                }
            }
            _ => {}
        }
    }

    /// Our values and the expected lines, in the form the file wrote them (values one
    /// per line, or "N values hashing to H").
    fn compare(
        &self,
        mut rows: Vec<Vec<String>>,
        sort_mode: Option<SortMode>,
        results: &[String],
    ) -> (Vec<String>, Vec<String>) {
        let mut values: Vec<String> = match sort_mode {
            Some(SortMode::RowSort) => {
                rows.sort();
                rows.into_iter().flatten().collect()
            }
            Some(SortMode::ValueSort) => {
                let mut v: Vec<String> = rows.into_iter().flatten().collect();
                v.sort();
                v
            }
            _ => rows.into_iter().flatten().collect(),
        };
        let expected: Vec<String> = results.iter().map(|l| l.trim().to_string()).collect();
        // The file hashes results of more than `hash-threshold` values; comparing
        // values where it lists them is the same comparison.
        let hashed = expected.len() == 1 && expected[0].contains(" values hashing to ");
        if hashed {
            let mut md5 = Md5::new();
            for v in &values {
                md5.update(v.as_bytes());
                md5.update(b"\n");
            }
            values = vec![format!(
                "{} values hashing to {:x}",
                values.len(),
                md5.finalize()
            )];
        }
        (values, expected)
    }

    fn statement(&mut self, sql: &str) -> Result<()> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| anyhow!("{e}"))?;
        for s in statements {
            match s {
                Statement::CreateTable(t) => self.create_table(&t.name.to_string(), &t.columns)?,
                Statement::CreateIndex(_) => {}
                Statement::Insert(insert) => {
                    let table = match &insert.table {
                        TableObject::TableName(n) => n.to_string(),
                        other => bail!("INSERT into {other} is not supported"),
                    };
                    let columns: Vec<String> =
                        insert.columns.iter().map(|c| c.to_string()).collect();
                    let source = insert
                        .source
                        .as_ref()
                        .ok_or_else(|| anyhow!("INSERT without VALUES or SELECT"))?;
                    self.insert(&table, &columns, source)?;
                }
                // Anything else (DROP, UPDATE, DELETE, CREATE VIEW, triggers...) goes to
                // the SQL engine, which answers queries only: its error is the count.
                other => {
                    self.query(&other.to_string(), &[])?;
                }
            }
        }
        Ok(())
    }

    fn create_table(&mut self, name: &str, columns: &[ColumnDef]) -> Result<()> {
        let mut properties = Map::new();
        let mut cols = Vec::new();
        for c in columns {
            let ty = c.data_type.to_string().to_uppercase();
            // SQLite's affinity rules (NUMERIC affinity taken as real).
            let affinity = if ty.contains("INT") {
                Affinity::Integer
            } else if ["CHAR", "CLOB", "TEXT", "BLOB"]
                .iter()
                .any(|t| ty.contains(t))
                || ty.is_empty()
            {
                // Blobs are kept as their text.
                Affinity::Text
            } else {
                Affinity::Real
            };
            let json_type = match affinity {
                Affinity::Integer => "integer",
                Affinity::Real => "number",
                Affinity::Text => "string",
            };
            properties.insert(
                c.name.value.clone(),
                serde_json::json!({ "type": json_type }),
            );
            cols.push((c.name.value.clone(), affinity));
        }
        self.db.register_schema(serde_json::json!({
            "title": name, "type": "object", "properties": properties
        }))?;
        self.tables.insert(name.to_string(), cols);
        Ok(())
    }

    fn insert(
        &mut self,
        table: &str,
        columns: &[String],
        source: &rem_sql::datafusion::sql::sqlparser::ast::Query,
    ) -> Result<()> {
        let declared = self
            .tables
            .get(table)
            .ok_or_else(|| anyhow!("no table {table}"))?
            .clone();
        let targets: Vec<(String, Affinity)> = if columns.is_empty() {
            declared.clone()
        } else {
            columns
                .iter()
                .map(|c| {
                    declared
                        .iter()
                        .find(|(n, _)| n == c)
                        .cloned()
                        .ok_or_else(|| anyhow!("table {table} has no column {c}"))
                })
                .collect::<Result<_>>()?
        };
        let rows: Vec<Vec<Value>> = match source.body.as_ref() {
            SetExpr::Values(values) => values
                .rows
                .iter()
                .map(|row| row.iter().map(literal).collect::<Result<Vec<_>>>())
                .collect::<Result<_>>()?,
            _ => self.query_values(&source.to_string())?,
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            if row.len() != targets.len() {
                bail!("{} values for {} columns", row.len(), targets.len());
            }
            let mut record = Map::new();
            for ((name, affinity), v) in targets.iter().zip(row) {
                if let Some(v) = coerce(v, *affinity) {
                    record.insert(name.clone(), v);
                }
            }
            records.push(Value::Object(record));
        }
        self.db.insert_batch(table, records)?;
        Ok(())
    }

    fn batches(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let stream = self.db.sql_with(sql, &SqlOptions::fields_only())?;
        Ok(stream.collect_all()?)
    }

    /// Runs a query; its values printed by declared type.
    fn query(&self, sql: &str, types: &[DefaultColumnType]) -> Result<Vec<Vec<String>>> {
        let batches = self.batches(sql)?;
        let mut out = Vec::new();
        for b in &batches {
            let cols: Vec<Vec<String>> = b
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| print(c, types.get(i).unwrap_or(&DefaultColumnType::Any)))
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                out.push(cols.iter().map(|c| c[r].clone()).collect());
            }
        }
        Ok(out)
    }

    /// Runs a query; its values as JSON (for `INSERT ... SELECT`).
    fn query_values(&self, sql: &str) -> Result<Vec<Vec<Value>>> {
        let batches = self.batches(sql)?;
        let mut out = Vec::new();
        for b in &batches {
            let cols: Vec<Vec<Value>> =
                b.columns().iter().map(json_values).collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                out.push(cols.iter().map(|c| c[r].clone()).collect());
            }
        }
        Ok(out)
    }
}

/// A literal of a VALUES row.
fn literal(e: &Expr) -> Result<Value> {
    match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Null => Ok(Value::Null),
            SqlValue::Number(n, _) => number(n),
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                Ok(Value::String(s.clone()))
            }
            SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
            other => bail!("unsupported literal {other}"),
        },
        Expr::UnaryOp { op, expr } => {
            let inner = literal(expr)?;
            match (op.to_string().as_str(), inner) {
                ("-", Value::Number(n)) => number(&format!("-{n}")),
                ("+", v @ Value::Number(_)) => Ok(v),
                (op, v) => bail!("unsupported literal {op}{v}"),
            }
        }
        other => bail!("unsupported expression in VALUES: {other}"),
    }
}

fn number(text: &str) -> Result<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    let f: f64 = text.parse().map_err(|_| anyhow!("not a number: {text}"))?;
    Ok(serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null))
}

/// A value stored under a column's affinity, as SQLite would (an integral real in an
/// integer column becomes an integer; a number in a text column, its text).
fn coerce(v: Value, affinity: Affinity) -> Option<Value> {
    match (v, affinity) {
        (Value::Null, _) => None,
        (Value::Number(n), Affinity::Integer) => match n.as_i64() {
            Some(i) => Some(Value::from(i)),
            None => {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 9.0e18 {
                    Some(Value::from(f as i64))
                } else {
                    Some(Value::Number(n))
                }
            }
        },
        (Value::Number(n), Affinity::Real) => Some(Value::from(n.as_f64().unwrap_or_default())),
        (Value::Number(n), Affinity::Text) => Some(Value::String(n.to_string())),
        (v, _) => Some(v),
    }
}

/// A column's values as SQLite's runner prints them for the declared type.
fn print(col: &ArrayRef, ty: &DefaultColumnType) -> Result<Vec<String>> {
    let n = col.len();
    let numeric = col.data_type().is_numeric() || matches!(col.data_type(), DataType::Boolean);
    let out = match ty {
        DefaultColumnType::Integer if numeric => {
            if col.data_type().is_floating()
                || matches!(
                    col.data_type(),
                    DataType::Decimal128(..) | DataType::Decimal256(..)
                )
            {
                let f = cast(col, &DataType::Float64)?;
                let f = f.as_primitive::<Float64Type>();
                (0..n)
                    .map(|i| {
                        if f.is_null(i) {
                            "NULL".into()
                        } else {
                            (f.value(i).trunc() as i64).to_string()
                        }
                    })
                    .collect()
            } else {
                let v = cast(col, &DataType::Int64)?;
                let v = v.as_primitive::<Int64Type>();
                (0..n)
                    .map(|i| {
                        if v.is_null(i) {
                            "NULL".into()
                        } else {
                            v.value(i).to_string()
                        }
                    })
                    .collect()
            }
        }
        DefaultColumnType::FloatingPoint if numeric => {
            let f = cast(col, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    if f.is_null(i) {
                        "NULL".into()
                    } else {
                        format!("{:.3}", f.value(i))
                    }
                })
                .collect()
        }
        _ => {
            let options = FormatOptions::default();
            let f = ArrayFormatter::try_new(col.as_ref(), &options)?;
            (0..n)
                .map(|i| {
                    if col.is_null(i) {
                        return "NULL".to_string();
                    }
                    let s = f.value(i).to_string();
                    match ty {
                        // Text in a numeric column: SQLite reads its leading number.
                        DefaultColumnType::Integer => leading_number(&s).trunc().to_string(),
                        DefaultColumnType::FloatingPoint => format!("{:.3}", leading_number(&s)),
                        _ if s.is_empty() => "(empty)".to_string(),
                        _ => s
                            .chars()
                            .map(|c| if (' '..='~').contains(&c) { c } else { '@' })
                            .collect(),
                    }
                })
                .collect()
        }
    };
    Ok(out)
}

fn leading_number(s: &str) -> f64 {
    let t = s.trim_start();
    let end = t
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))
        })
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    t[..end].parse().unwrap_or(0.0)
}

/// A column's values as JSON.
fn json_values(col: &ArrayRef) -> Result<Vec<Value>> {
    let n = col.len();
    let dt = col.data_type();
    if dt.is_integer() {
        let v = cast(col, &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        return Ok((0..n)
            .map(|i| {
                if v.is_null(i) {
                    Value::Null
                } else {
                    Value::from(v.value(i))
                }
            })
            .collect());
    }
    if dt.is_numeric() {
        let v = cast(col, &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        return Ok((0..n)
            .map(|i| {
                if v.is_null(i) {
                    Value::Null
                } else {
                    Value::from(v.value(i))
                }
            })
            .collect());
    }
    let options = FormatOptions::default();
    let f = ArrayFormatter::try_new(col.as_ref(), &options)?;
    Ok((0..n)
        .map(|i| {
            if col.is_null(i) {
                Value::Null
            } else {
                Value::String(f.value(i).to_string())
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A file in the corpus's format, with answers worked out by hand (and the MD5s by
    /// `printf '1\n2\n3\n' | md5sum`): every counter moves for the reason it names.
    #[test]
    fn a_file_is_loaded_run_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.test");
        std::fs::write(
            &path,
            "hash-threshold 8

statement ok
CREATE TABLE t1(a INTEGER, b VARCHAR(10), c REAL)

statement ok
INSERT INTO t1(b,a,c) VALUES('x',2,1.5)

statement ok
INSERT INTO t1 VALUES(1,'',NULL), (3,'z',-2)

statement ok
CREATE INDEX i1 ON t1(a)

query ITR rowsort
SELECT a, b, c FROM t1
----
1
(empty)
NULL
2
x
1.500
3
z
-2.000

query I rowsort
SELECT * FROM (SELECT a FROM t1) AS s
----
3 values hashing to c0710d6b4f15dfa88f600b0e6b624077

query I valuesort
SELECT avg(a) FROM t1 WHERE a < 3 UNION ALL SELECT 1
----
1
1

query II nosort
SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.a < t1.a) FROM t1 ORDER BY a
----
1
0
2
1
3
2

query I nosort
SELECT a FROM t1 WHERE a = 1
----
5

query I nosort
SELECT nosuchcolumn FROM t1
----
1

onlyif mysql # another engine's syntax
query I nosort
SELECT 1 DIV 2
----
0

statement ok
UPDATE t1 SET a = 5

onlyif mssql
halt

query I nosort
SELECT count(*) FROM t1
----
3

skipif sqlite
halt

query I nosort
SELECT 1
----
1
",
        )
        .unwrap();
        let r = run_file(&path).unwrap();
        assert_eq!(
            (
                r.passed,
                r.wrong,
                r.unsupported,
                r.skipped,
                r.statements_failed
            ),
            (5, 1, 1, 1, 1),
            "{r:#?}"
        );
        assert!(
            r.wrong_queries[0].contains("WHERE a = 1"),
            "{:?}",
            r.wrong_queries
        );
        assert!(
            r.errors.keys().any(|e| e.contains("nosuchcolumn")),
            "{:?}",
            r.errors
        );
        assert!(
            r.errors.keys().any(|e| e.starts_with("statement:")),
            "{:?}",
            r.errors
        );
    }
}
