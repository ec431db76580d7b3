//! Correlated subqueries of every common shape, and repeated output names, against
//! SQLite (bundled) on the same rows: integer columns with NULLs, as SQLite's own
//! sqllogictest corpus uses.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::Database;
use rem_sql::Sql;
use serde_json::{json, Map, Value};

use crate::common::query;
use crate::differential::{normalise, sqlite_rows};

/// Rows in a canonical order: SQLite sorts NULLs first and DataFusion last, so the
/// `ORDER BY`s here only make each side deterministic.
fn sorted(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut rows = normalise(rows);
    rows.sort();
    rows
}

const COLS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// `t1(a..e)` with 40 rows (~1 in 8 values NULL) and `t2(x, y)` with 12, in both.
fn both() -> (Database, rusqlite::Connection) {
    let db = Database::in_memory().unwrap();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let props: Map<String, Value> = COLS
        .iter()
        .map(|c| (c.to_string(), json!({"type": "integer"})))
        .collect();
    db.register_schema(json!({"title": "t1", "type": "object", "properties": props}))
        .unwrap();
    db.register_schema(json!({"title": "t2", "type": "object",
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}))
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE t1(a INTEGER, b INTEGER, c INTEGER, d INTEGER, e INTEGER);
         CREATE TABLE t2(x INTEGER, y INTEGER);",
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let value = |rng: &mut StdRng| -> Option<i64> {
        (rng.gen_range(0..8) != 0).then(|| rng.gen_range(0..30))
    };
    let mut records = Vec::new();
    for _ in 0..40 {
        let vals: Vec<Option<i64>> = (0..5).map(|_| value(&mut rng)).collect();
        let mut rec = Map::new();
        for (c, v) in COLS.iter().zip(&vals) {
            if let Some(v) = v {
                rec.insert(c.to_string(), json!(v));
            }
        }
        records.push(Value::Object(rec));
        conn.execute(
            "INSERT INTO t1 VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![vals[0], vals[1], vals[2], vals[3], vals[4]],
        )
        .unwrap();
    }
    db.insert_batch("t1", records).unwrap();
    let mut records = Vec::new();
    for _ in 0..12 {
        let (x, y) = (value(&mut rng), value(&mut rng));
        let mut rec = Map::new();
        if let Some(x) = x {
            rec.insert("x".into(), json!(x));
        }
        if let Some(y) = y {
            rec.insert("y".into(), json!(y));
        }
        records.push(Value::Object(rec));
        conn.execute("INSERT INTO t2 VALUES (?1, ?2)", rusqlite::params![x, y])
            .unwrap();
    }
    db.insert_batch("t2", records).unwrap();
    (db, conn)
}

#[test]
fn correlated_subqueries_agree_with_sqlite() {
    let (db, conn) = both();
    let cases = [
        // Scalar subqueries in SELECT: equality and non-equality correlation.
        "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1 ORDER BY 1, 2",
        "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b = t1.b) FROM t1 ORDER BY 1, 2",
        "SELECT a, (SELECT max(x.c) FROM t1 AS x WHERE x.a > t1.a AND x.d <= t1.d) FROM t1 ORDER BY 1, 2",
        "SELECT a, (SELECT sum(y) FROM t2 WHERE x <> t1.a) FROM t1 ORDER BY 1, 2",
        "SELECT a, (SELECT min(y) FROM t2 WHERE x BETWEEN t1.a AND t1.b) FROM t1 ORDER BY 1, 2",
        "SELECT a, (SELECT count(*) FROM t2 WHERE t2.x < t1.a OR t2.y > t1.e) FROM t1 ORDER BY 1, 2",
        // In WHERE.
        "SELECT a, b FROM t1 WHERE (SELECT count(*) FROM t1 AS x WHERE x.c > t1.c) > 20 ORDER BY 1, 2",
        "SELECT a FROM t1 WHERE b > (SELECT avg(y) FROM t2 WHERE t2.x < t1.a) ORDER BY 1",
        // In CASE.
        "SELECT a, CASE WHEN (SELECT count(*) FROM t2 WHERE x < t1.c) > 5 THEN 'many' ELSE 'few' END FROM t1 ORDER BY 1, 2",
        "SELECT CASE WHEN a < (SELECT avg(x.a) FROM t1 AS x WHERE x.e > t1.e) THEN a ELSE -a END FROM t1 ORDER BY 1",
        // EXISTS / NOT EXISTS with correlation.
        "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.x > t1.a) ORDER BY 1",
        "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.x > t1.a) ORDER BY 1",
        "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.x = t1.a) ORDER BY 1",
        "SELECT a, CASE WHEN EXISTS (SELECT 1 FROM t2 WHERE t2.y < t1.b) THEN 1 ELSE 0 END FROM t1 ORDER BY 1, 2",
        "SELECT a FROM t1 WHERE a > 20 OR EXISTS (SELECT 1 FROM t2 WHERE t2.x = t1.b + 1) ORDER BY 1",
        // IN / NOT IN with correlation (NULLs on both sides).
        "SELECT a FROM t1 WHERE b IN (SELECT y FROM t2 WHERE t2.x < t1.c) ORDER BY 1",
        "SELECT a FROM t1 WHERE b NOT IN (SELECT y FROM t2 WHERE t2.x < t1.c) ORDER BY 1",
        "SELECT a FROM t1 WHERE b IN (SELECT y FROM t2 WHERE t2.x = t1.c) ORDER BY 1",
        "SELECT a, b IN (SELECT y FROM t2 WHERE t2.x >= t1.a) FROM t1 ORDER BY 1, 2",
        "SELECT a, b NOT IN (SELECT x.c FROM t1 AS x WHERE x.d > t1.d) FROM t1 ORDER BY 1, 2",
        // Two levels deep, the inner one reading both outer levels.
        "SELECT a, (SELECT count(*) FROM t2 WHERE t2.x < t1.a AND EXISTS (SELECT 1 FROM t1 AS z WHERE z.b > t2.y AND z.c < t1.c)) FROM t1 ORDER BY 1, 2",
        "SELECT a FROM t1 WHERE (SELECT count(*) FROM t2 WHERE t2.y > (SELECT min(z.d) FROM t1 AS z WHERE z.a > t1.a)) > 2 ORDER BY 1",
        // Uncorrelated, and repeated subqueries (the same output name twice).
        "SELECT (SELECT count(*) FROM t2), (SELECT count(*) FROM t2 WHERE x > 10) FROM t1 WHERE a = (SELECT max(a) FROM t1)",
        "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b), (SELECT count(*) FROM t1 AS x WHERE x.c < t1.c) FROM t1 ORDER BY 1, 2, 3",
    ];
    let mut failures = Vec::new();
    for sql in cases {
        let ours = sorted(query(&db, sql));
        let theirs = sorted(sqlite_rows(&conn, sql));
        assert!(
            !theirs.is_empty(),
            "{sql}: SQLite returned no row; the case proves little"
        );
        if ours != theirs {
            failures.push(format!("{sql}\n  rem:    {ours:?}\n  sqlite: {theirs:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_scalar_subquery_that_may_return_several_rows_is_refused() {
    let (db, _) = both();
    let err = db
        .sql("SELECT a, (SELECT y FROM t2 WHERE t2.x < t1.a) FROM t1")
        .and_then(|s| s.collect_all())
        .unwrap_err()
        .to_string();
    // DataFusion's analyzer refuses it before it runs; our rule would say the same of
    // an uncorrelated one.
    assert!(err.contains("at most one row"), "{err}");
}

#[test]
fn repeated_output_names_keep_their_display_names() {
    let (db, conn) = both();
    for sql in [
        "SELECT a, a FROM t1 ORDER BY 1",
        "SELECT count(*), count(*) FROM t1",
        "SELECT a + 1, a + 1, b FROM t1 WHERE a IS NOT NULL ORDER BY a",
        "SELECT a AS v, b AS v FROM t1 ORDER BY a, b",
        "SELECT a, a FROM t1 UNION ALL SELECT x, y FROM t2 ORDER BY 1, 2",
    ] {
        assert_eq!(
            sorted(query(&db, sql)),
            sorted(sqlite_rows(&conn, sql)),
            "{sql}"
        );
    }
    let names = |sql: &str| -> Vec<String> {
        let stream = db.sql(sql).unwrap();
        stream
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    assert_eq!(
        names("SELECT a, a, count(*) AS n, count(*) AS n FROM t1 GROUP BY a"),
        ["a", "a", "n", "n"]
    );
    // A query without repeats keeps DataFusion's names (nothing renamed).
    assert_eq!(names("SELECT a, b + 1 FROM t1"), ["a", "t1.b + Int64(1)"]);
}
