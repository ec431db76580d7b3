//! Bad SQL gets one clear sentence and changes nothing.

use rem_sql::Sql;

use crate::common::{db_with_items, query};

fn error(db: &rem::Database, sql: &str) -> String {
    let e = any_error(db, sql);
    assert!(
        matches!(e, rem_sql::Error::Syntax(_) | rem_sql::Error::Query(_)),
        "{sql}: {e:?}"
    );
    assert_eq!(e.kind(), rem::ErrorKind::InvalidInput, "{sql}");
    e.to_string()
}

fn any_error(db: &rem::Database, sql: &str) -> rem_sql::Error {
    match db.sql(sql).and_then(|s| s.collect_all()) {
        Ok(_) => panic!("{sql} should fail"),
        Err(e) => e,
    }
}

#[test]
fn errors_are_clear_sentences() {
    let (db, _) = db_with_items(20);
    let before = query(&db, "SELECT COUNT(*) FROM items");

    let e = error(&db, "SELEC name FROM items");
    assert!(e.starts_with("SQL syntax error"), "{e}");
    assert_eq!(any_error(&db, "SELEC name FROM items").code(), "sql_syntax");
    assert_eq!(any_error(&db, "SELECT nope FROM items").code(), "sql");
    let e = error(&db, "SELECT name FROM items WHERE qty = = 1");
    assert!(e.contains("found: = at Line: 1, Column: 36"), "{e}");
    let e = error(&db, "SELECT name FROM items WHERE");
    assert!(e.ends_with("at the end of the query"), "{e}");

    let e = error(&db, "SELECT * FROM nope");
    assert!(e.contains("nope") && e.contains("not found"), "{e}");
    let e = error(&db, "SELECT nope FROM items");
    assert!(e.contains("nope"), "{e}");
    let e = error(&db, "SELECT name + 1 FROM items");
    assert!(
        e.to_lowercase().contains("type") || e.contains("Utf8"),
        "{e}"
    );

    let e = error(&db, "INSERT INTO items (name) VALUES ('x')");
    assert!(e.contains("only queries"), "{e}");
    let e = error(&db, "DROP TABLE items");
    assert!(
        e.contains("only queries") || e.contains("not supported"),
        "{e}"
    );
    let e = error(&db, "SELECT 1; SELECT 2");
    assert!(e.contains("one statement"), "{e}");
    // An engine error raised inside a scan is reported as itself, not as a SQL error.
    let e = any_error(
        &db,
        "SELECT * FROM items ORDER BY embedding.cosine('x') DESC LIMIT 3",
    );
    assert!(
        matches!(e, rem_sql::Error::Engine(rem::Error::InvalidInput(_))),
        "{e:?}"
    );
    assert_eq!(e.code(), "invalid_input");
    assert!(e.to_string().contains("no embedded fields"), "{e}");
    let e = error(&db, "SEARCH items");
    assert!(e.contains("SEARCH needs"), "{e}");

    assert_eq!(query(&db, "SELECT COUNT(*) FROM items"), before);
}
