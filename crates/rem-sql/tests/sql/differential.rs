//! The same generated rows loaded into SQLite (bundled) and REM; a few dozen queries must
//! give the same answers. Where the dialects differ (arrays, ILIKE) the SQLite side is
//! written differently but asks the same question.

use rusqlite::types::ValueRef;

use crate::common::{db_with_items, format_float, query};

fn sqlite_with(items: &[crate::common::Item]) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "PRAGMA case_sensitive_like = ON;
         CREATE TABLE all_items (name TEXT PRIMARY KEY, category TEXT, price REAL, qty INTEGER,
                                 active BOOLEAN, shop TEXT, sold_at TEXT, deleted INTEGER);
         CREATE VIEW items AS SELECT * FROM all_items WHERE deleted = 0;
         CREATE TABLE item_tags (name TEXT, tag TEXT);
         CREATE TABLE shops (code TEXT, city TEXT, size INTEGER);
         INSERT INTO shops VALUES ('north', 'Oslo', 3), ('south', 'Rome', 5), ('east', 'Kyiv', 2);",
    )
    .unwrap();
    for it in items {
        conn.execute(
            "INSERT INTO all_items VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                it.name,
                it.category,
                it.price,
                it.qty,
                it.active,
                it.shop,
                it.sold_at,
                it.deleted
            ],
        )
        .unwrap();
        for t in &it.tags {
            conn.execute("INSERT INTO item_tags VALUES (?1, ?2)", [&it.name, t])
                .unwrap();
        }
    }
    conn
}

pub(crate) fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        out.push(
            (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(x) => x.to_string(),
                    ValueRef::Real(x) => format_float(x),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(_) => "<blob>".to_string(),
                })
                .collect(),
        );
    }
    out
}

/// Booleans print as true/false in DataFusion and 1/0 in SQLite.
pub(crate) fn normalise(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v.as_str() {
                    "true" => "1".to_string(),
                    "false" => "0".to_string(),
                    _ => v,
                })
                .collect()
        })
        .collect()
}

#[test]
fn rem_and_sqlite_agree() {
    let (db, items) = db_with_items(600);
    let conn = sqlite_with(&items);
    let same = |sql: &str| (sql.to_string(), sql.to_string());
    let cases: Vec<(String, String)> = vec![
        same("SELECT COUNT(*) FROM items"),
        same("SELECT name, qty FROM items WHERE category = 'books' ORDER BY name"),
        same("SELECT name FROM items WHERE qty = 7 ORDER BY name"),
        same("SELECT qty, price FROM items WHERE name = 'item-0042'"),
        same("SELECT name FROM items WHERE qty IN (1, 2, 3) ORDER BY name"),
        same("SELECT name FROM items WHERE qty BETWEEN 10 AND 12 ORDER BY name"),
        same("SELECT name FROM items WHERE qty > 45 AND category <> 'toys' ORDER BY name"),
        same("SELECT name FROM items WHERE qty != 5 AND qty < 2 ORDER BY name"),
        same("SELECT name FROM items WHERE price IS NULL ORDER BY name"),
        same("SELECT name, price FROM items WHERE price IS NOT NULL AND price < 40 ORDER BY name"),
        same("SELECT name FROM items WHERE name LIKE 'item-00%' ORDER BY name"),
        (
            "SELECT COUNT(*) FROM items WHERE name ILIKE 'ITEM-01%'".into(),
            "SELECT COUNT(*) FROM items WHERE lower(name) LIKE 'item-01%'".into(),
        ),
        same("SELECT COUNT(*) FROM items WHERE NOT (category = 'books' OR qty < 10)"),
        same("SELECT COUNT(*) FROM items WHERE category = 'games' OR shop = 'east'"),
        same("SELECT category, COUNT(*), SUM(qty), MIN(price), MAX(price) FROM items GROUP BY category ORDER BY category"),
        same("SELECT category, AVG(price), AVG(qty) FROM items GROUP BY category ORDER BY category"),
        same("SELECT shop, COUNT(*) AS n FROM items GROUP BY shop HAVING COUNT(*) > 100 ORDER BY shop"),
        same("SELECT shop, category, COUNT(*) FROM items GROUP BY shop, category ORDER BY shop, category"),
        same("SELECT COUNT(DISTINCT category), COUNT(price), SUM(price) FROM items"),
        same("SELECT MAX(qty) - MIN(qty) FROM items WHERE category = 'music'"),
        same("SELECT name FROM items ORDER BY qty DESC, name LIMIT 5"),
        same("SELECT name FROM items ORDER BY name LIMIT 5 OFFSET 10"),
        same("SELECT name FROM items WHERE category = 'toys' ORDER BY price DESC NULLS LAST, name LIMIT 7"),
        same("SELECT i.name, s.city FROM items i JOIN shops s ON i.shop = s.code WHERE i.qty = 3 ORDER BY i.name"),
        same("SELECT i.name, s.city FROM items i LEFT JOIN shops s ON i.shop = s.code WHERE i.qty = 4 ORDER BY i.name"),
        same("SELECT s.city, COUNT(*) FROM items i JOIN shops s ON i.shop = s.code GROUP BY s.city ORDER BY s.city"),
        same("SELECT COUNT(*) FROM items WHERE qty > (SELECT AVG(qty) FROM items)"),
        same("SELECT name FROM items WHERE shop IN (SELECT code FROM shops WHERE size > 2) AND qty < 3 ORDER BY name"),
        same("SELECT COUNT(*) FROM items i WHERE EXISTS (SELECT 1 FROM shops s WHERE s.code = i.shop AND s.size = 5)"),
        same("SELECT COUNT(*) FROM items WHERE sold_at >= '2024-06-01T00:00:00Z'"),
        same("SELECT COUNT(*) FROM items WHERE sold_at BETWEEN '2024-03-01T00:00:00Z' AND '2024-03-31T23:59:59Z'"),
        same("SELECT COUNT(*) FROM items WHERE sold_at < '2024-02-01T00:00:00Z' AND category = 'books'"),
        same("SELECT COUNT(*) FROM items WHERE active"),
        same("SELECT category, COUNT(*) FROM items WHERE active = false GROUP BY category ORDER BY category"),
        (
            "SELECT COUNT(*) FROM items WHERE 'red' = ANY(tags)".into(),
            "SELECT COUNT(*) FROM items WHERE EXISTS (SELECT 1 FROM item_tags t WHERE t.name = items.name AND t.tag = 'red')".into(),
        ),
        (
            "SELECT name FROM items WHERE 'sale' = ANY(tags) AND qty < 4 ORDER BY name".into(),
            "SELECT name FROM items WHERE EXISTS (SELECT 1 FROM item_tags t WHERE t.name = items.name AND t.tag = 'sale') AND qty < 4 ORDER BY name".into(),
        ),
        (
            "SELECT COUNT(*) FROM items WHERE deleted_at IS NOT NULL".into(),
            "SELECT COUNT(*) FROM all_items WHERE deleted = 1".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (rem_sql, sqlite_sql) in &cases {
        let ours = normalise(query(&db, rem_sql));
        let theirs = normalise(sqlite_rows(&conn, sqlite_sql));
        if ours != theirs {
            failures.push(format!(
                "{rem_sql}\n  rem:    {ours:?}\n  sqlite: {theirs:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Sanity: the data set exercises the interesting cases.
    assert!(items.iter().any(|i| i.deleted) && items.iter().any(|i| i.price.is_none()));
}
