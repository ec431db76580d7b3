//! `embedding.cosine(...)`, `SEARCH` and `LOOKUP`, with the OpenAI-compatible provider
//! served on 127.0.0.1 (deterministic vectors: a text is most similar to itself).

use rem::{Database, EmbeddingOptions, SearchOptions};
use rem_sql::Sql;
use rem_testkit::{start, Behaviour, MockServer};
use serde_json::json;

use crate::common::{explain, query};

fn docs_db(server: &MockServer) -> Database {
    let db = Database::in_memory_with(EmbeddingOptions {
        default_model: "openai:mock-embed".into(),
        openai_base_url: server.base_url.clone(),
        hnsw_ef_search: 200,
        ..EmbeddingOptions::default()
    })
    .unwrap();
    db.register_schema(json!({
        "name": "docs", "key_field": "slug", "indexed_fields": ["category"],
        "description": "Documents.", "embedding_fields": ["body"],
        "properties": {"slug": {"type": "string"}, "category": {"type": "string"},
                       "body": {"type": "string"}, "words": {"type": "integer"}}
    }))
    .unwrap();
    let docs: Vec<_> = (0..300)
        .map(|i| {
            let category = ["a", "b", "c"][i % 3];
            json!({"slug": format!("doc-{i}"), "category": category,
                   "body": format!("body text number {i}"), "words": i % 40})
        })
        .collect();
    db.insert_batch("docs", docs).unwrap();
    db
}

fn server() -> MockServer {
    start(Behaviour {
        dims: 32,
        ..Default::default()
    })
}

#[test]
fn order_by_cosine_runs_the_vector_index_and_matches_search() {
    let server = server();
    let db = docs_db(&server);
    let sql = "SELECT slug, _score FROM docs ORDER BY embedding.cosine('body text number 17') DESC LIMIT 5";
    let rows = query(&db, sql);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0][0], "doc-17");
    assert!(rows[0][1].parse::<f64>().unwrap() > 0.999, "{rows:?}");
    let plan = explain(&db, sql);
    assert!(
        plan.contains("RemVectorSearch: table=docs, column=embedding, access=vector index, k=5"),
        "{plan}"
    );
    assert!(!plan.contains("RemScan"), "{plan}");

    // The same query through Database::search gives the same ids in the same order.
    let found = db
        .search(
            Some("docs"),
            "body text number 17",
            &SearchOptions {
                top_k: 5,
                ..Default::default()
            },
        )
        .unwrap();
    let slugs: Vec<String> = found
        .hits
        .iter()
        .map(|h| h.entity.properties["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), slugs);
}

#[test]
fn where_clause_filters_inside_the_vector_search() {
    let server = server();
    let db = docs_db(&server);
    let sql = "SELECT slug, category FROM docs WHERE category = 'b' AND words < 20 \
               ORDER BY embedding.cosine('body text number 17') DESC LIMIT 10";
    let rows = query(&db, sql);
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r[1] == "b"), "{rows:?}");
    let plan = explain(&db, sql);
    assert!(plan.contains("k=10") && plan.contains("filter="), "{plan}");
    let found = db
        .search(
            Some("docs"),
            "body text number 17",
            &SearchOptions {
                top_k: 10,
                filter: rem_sql::parse_where(&db, Some("docs"), "category = 'b' AND words < 20")
                    .unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
    let slugs: Vec<String> = found
        .hits
        .iter()
        .map(|h| h.entity.properties["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), slugs);

    // A condition the engine cannot apply (a function of a column) makes the search rank
    // every row, so the answer is still the true top-k of the rows that pass.
    let sql = "SELECT slug FROM docs WHERE length(slug) = 6 ORDER BY embedding.cosine('body text number 17') DESC LIMIT 3";
    let plan = explain(&db, sql);
    assert!(plan.contains("k=all"), "{plan}");
    let rows = query(&db, sql);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r[0].len() == 6), "{rows:?}");
}

#[test]
fn score_threshold_and_search_and_lookup_statements() {
    let server = server();
    let db = docs_db(&server);
    let rows = query(
        &db,
        "SELECT slug FROM docs WHERE embedding.cosine('body text number 42') > 0.999",
    );
    assert_eq!(rows, vec![vec!["doc-42".to_string()]]);

    let rows = query(
        &db,
        "SEARCH docs 'body text number 7' WHERE category = 'b' LIMIT 4",
    );
    assert_eq!(rows.len(), 4);
    let header = db
        .sql("SEARCH docs 'body text number 7' LIMIT 2")
        .unwrap()
        .schema();
    let slug = header.index_of("slug").unwrap();
    let cat = header.index_of("category").unwrap();
    assert!(header.index_of("_score").is_ok());
    assert!(rows.iter().all(|r| r[cat] == "b"), "{rows:?}");
    // doc-7 is category b (7 % 3 == 1): it ranks first.
    assert_eq!(rows[0][slug], "doc-7");
    // Default LIMIT is 10.
    assert_eq!(query(&db, "SEARCH docs 'body text number 7'").len(), 10);

    let rows = query(&db, "LOOKUP 'doc-9'");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "docs");
    assert!(rows[0][6].contains("body text number 9"), "{rows:?}");
    assert!(query(&db, "LOOKUP 'no-such-key'").is_empty());
}
