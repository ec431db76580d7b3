//! Index pushdown, limit and projection pushdown as shown by EXPLAIN, and streaming.

use rem_sql::Sql;

use crate::common::{db_with_items, explain, query};

#[test]
fn explain_names_the_index_used() {
    let (db, _) = db_with_items(300);
    let cases = [
        (
            "SELECT qty FROM items WHERE name = 'item-0007'",
            "access=key index on name",
        ),
        (
            "SELECT name FROM items WHERE category = 'books'",
            "access=index on category (equality, 1 values)",
        ),
        (
            "SELECT name FROM items WHERE category IN ('books', 'toys')",
            "access=index on category (equality, 2 values)",
        ),
        (
            "SELECT name FROM items WHERE qty BETWEEN 3 AND 5",
            "access=index on qty (range)",
        ),
        (
            "SELECT name FROM items WHERE qty > 40 AND shop = 'east'",
            "access=index on qty (range)",
        ),
        (
            "SELECT name FROM items WHERE sold_at >= '2024-11-01T00:00:00Z'",
            "access=index on sold_at (range)",
        ),
        (
            "SELECT name FROM items WHERE 'red' = ANY(tags)",
            "access=index on tags (equality, 1 values)",
        ),
        (
            "SELECT name FROM items WHERE shop = 'east'",
            "access=full scan",
        ),
    ];
    for (sql, expected) in cases {
        let plan = explain(&db, sql);
        assert!(
            plan.contains(expected),
            "{sql}\nexpected '{expected}' in:\n{plan}"
        );
    }
    // An id filter is a point get.
    let id = &query(&db, "SELECT id FROM items WHERE name = 'item-0011'")[0][0];
    let plan = explain(&db, &format!("SELECT name FROM items WHERE id = '{id}'"));
    assert!(plan.contains("access=id lookup (1 ids)"), "{plan}");
    assert_eq!(
        query(&db, &format!("SELECT name FROM items WHERE id = '{id}'")),
        vec![vec!["item-0011".to_string()]]
    );
}

#[test]
fn limit_and_projection_reach_the_scan() {
    let (db, _) = db_with_items(300);
    let plan = explain(
        &db,
        "SELECT name FROM items WHERE category = 'books' LIMIT 3",
    );
    assert!(plan.contains("limit=3"), "{plan}");
    assert!(plan.contains("columns=[name]"), "{plan}");
    assert_eq!(
        query(
            &db,
            "SELECT name FROM items WHERE category = 'books' LIMIT 3"
        )
        .len(),
        3
    );
    // A filter DataFusion must re-check (LIKE) keeps the limit out of the scan.
    let plan = explain(
        &db,
        "SELECT name FROM items WHERE name LIKE 'item-01%' LIMIT 3",
    );
    assert!(!plan.contains("limit=3"), "{plan}");
    assert_eq!(
        query(
            &db,
            "SELECT name FROM items WHERE name LIKE 'item-01%' LIMIT 3"
        )
        .len(),
        3
    );
}

#[test]
fn soft_deleted_rows_are_hidden_unless_asked_for() {
    let (db, items) = db_with_items(100);
    let deleted = items.iter().filter(|i| i.deleted).count();
    let live = items.len() - deleted;
    assert_eq!(
        query(&db, "SELECT COUNT(*) FROM items")[0][0],
        live.to_string()
    );
    assert_eq!(
        query(
            &db,
            "SELECT COUNT(*) FROM items WHERE deleted_at IS NOT NULL"
        )[0][0],
        deleted.to_string()
    );
    let all = db
        .sql_with(
            "SELECT COUNT(*) FROM items",
            &rem_sql::SqlOptions::include_deleted(true),
        )
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(crate::common::rows(&all)[0][0], items.len().to_string());
}

#[test]
fn results_stream_in_batches() {
    let (db, _) = db_with_items(10_000);
    let stream = db.sql("SELECT name, qty FROM items").unwrap();
    let mut batches = 0;
    let mut rows = 0;
    for b in stream {
        let b = b.unwrap();
        batches += 1;
        rows += b.num_rows();
    }
    let live = query(&db, "SELECT COUNT(*) FROM items")[0][0]
        .parse::<usize>()
        .unwrap();
    assert_eq!(rows, live);
    assert!(batches >= 2, "{rows} rows came in {batches} batch(es)");
    // Stopping early is fine: the producer notices and stops.
    let mut stream = db.sql("SELECT * FROM items").unwrap();
    assert!(stream.next().unwrap().unwrap().num_rows() > 0);
    drop(stream);
}

#[test]
fn schema_types_and_json_columns() {
    let (db, _) = db_with_items(50);
    let stream = db.sql("SELECT * FROM items LIMIT 1").unwrap();
    let schema = stream.schema();
    let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().to_string();
    assert_eq!(ty("qty"), "Int64");
    assert_eq!(ty("price"), "Float64");
    assert_eq!(ty("active"), "Boolean");
    assert!(
        ty("sold_at").starts_with("Timestamp(µs"),
        "{}",
        ty("sold_at")
    );
    assert!(ty("tags").starts_with("List("), "{}", ty("tags"));
    assert_eq!(ty("meta"), "Utf8");
    assert_eq!(ty("properties"), "Utf8");
    drop(stream);
    // JSON access functions over object columns and over the properties column, which
    // also holds fields outside the schema.
    let rows = query(
        &db,
        "SELECT json_get_str(meta, 'origin'), json_get_str(properties, 'note') FROM items WHERE name = 'item-0003'",
    );
    assert_eq!(rows.len(), 1);
    assert!(["even", "odd"].contains(&rows[0][0].as_str()), "{rows:?}");
}
