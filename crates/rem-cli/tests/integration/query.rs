//! `rem query`: SQL through the real binary, each output format, the local model behind
//! `embedding.cosine`, and one-line errors that change nothing.

use crate::{check_failure, Rem};

const PEOPLE: &str = r#"{"name": "person", "key_field": "email", "indexed_fields": ["role"],
 "properties": {"email": {"type": "string"}, "role": {"type": "string"}, "age": {"type": "integer"}}}"#;

#[test]
fn sql_formats_semantic_order_and_errors() {
    let rem = Rem::init();
    let schema = rem.write_file("person.json", PEOPLE);
    rem.ok(&["schema", "add", schema.to_str().unwrap()]);
    rem.run_with_stdin(
        &["insert", "person", "--batch"],
        "{\"email\": \"ada@x\", \"role\": \"eng\", \"age\": 36}\n\
         {\"email\": \"bob@x\", \"role\": \"eng\", \"age\": 41}\n\
         {\"email\": \"cy@x\", \"role\": \"ops\", \"age\": 29}\n",
    );

    let sql =
        "SELECT role, COUNT(*) AS n, MAX(age) AS oldest FROM person GROUP BY role ORDER BY role";
    let json = rem.json(&["query", sql]);
    assert_eq!(
        json,
        serde_json::json!([{"role": "eng", "n": 2, "oldest": 41}, {"role": "ops", "n": 1, "oldest": 29}])
    );
    let csv = rem.ok(&["query", sql, "--format", "csv"]);
    assert_eq!(csv.trim(), "role,n,oldest\neng,2,41\nops,1,29");
    let jsonl = rem.ok(&["query", sql, "--format", "jsonl"]);
    assert_eq!(jsonl.lines().count(), 2);
    let table = rem.ok(&["query", sql, "--format", "table"]);
    assert!(table.contains("| eng  | 2 | 41     |"), "{table}");

    let plan = rem.ok(&[
        "query",
        "EXPLAIN SELECT age FROM person WHERE role = 'ops'",
        "--format",
        "csv",
    ]);
    assert!(
        plan.contains("access=index on role (equality, 1 values)"),
        "{plan}"
    );

    // The default local model ranks by meaning through SQL.
    let input = "{\"uri\": \"mem://pasta\", \"name\": \"pasta\", \"content\": \"Boil the pasta in salted water, then drain.\"}\n\
                 {\"uri\": \"mem://rocks\", \"name\": \"rocks\", \"content\": \"RocksDB is an embeddable persistent key-value store.\"}\n";
    rem.run_with_stdin(&["insert", "resources", "--batch"], input);
    let top = rem.json(&[
        "query",
        "SELECT name, _score FROM resources ORDER BY embedding.cosine('database storage engine') DESC LIMIT 1",
    ]);
    assert_eq!(top[0]["name"], "rocks", "{top}");
    let found = rem.json(&["query", "SEARCH resources 'cooking dinner' LIMIT 1"]);
    assert_eq!(found[0]["name"], "pasta", "{found}");

    let seq = rem.last_seq();
    for (args, needle) in [
        (vec!["query", "SELEC 1"], "SQL syntax error"),
        (
            vec!["query", "SELECT * FROM nope"],
            "table 'nope' not found",
        ),
        (
            vec!["query", "INSERT INTO person (email) VALUES ('z')"],
            "only queries",
        ),
    ] {
        let out = rem.run(&args);
        let msg = check_failure(&args, &out);
        assert!(msg.contains(needle), "{args:?}: {msg}");
    }
    assert_eq!(rem.last_seq(), seq);
}
