//! `rem edge add|rm`, `rem edges`, `rem traverse`, `rem path` and SQL `TRAVERSE` through
//! the real binary; bad input is one line and writes nothing.

use serde_json::Value;

use crate::Rem;

const PEOPLE: &str = r#"{"name": "person", "key_field": "handle",
 "properties": {"handle": {"type": "string"}}}"#;

fn handles(rem: &Rem, rows: &Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap();
            let e = rem.json(&["get", id]);
            (
                e["handle"].as_str().unwrap().to_string(),
                r["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn edges_traverse_and_path() {
    let rem = Rem::init();
    let schema = rem.write_file("person.json", PEOPLE);
    rem.ok(&["schema", "add", schema.to_str().unwrap()]);
    rem.run_with_stdin(
        &["insert", "person", "--batch"],
        "{\"handle\": \"ada\"}\n{\"handle\": \"bob\"}\n{\"handle\": \"cy\"}\n\
         {\"handle\": \"dee\", \"edges\": [\"person:ada\"]}\n",
    );
    let added = rem.json(&[
        "edge",
        "add",
        "ada",
        "person:bob",
        "--type",
        "knows",
        "--props",
        "{\"since\": 2020}",
        "--weight",
        "0.5",
    ]);
    assert_eq!(added["edge_type"], "knows");
    assert_eq!(added["properties"]["since"], 2020);
    assert_eq!(added["weight"], 0.5);
    rem.ok(&["edge", "add", "bob", "cy", "--type", "knows"]);
    rem.ok(&["edge", "add", "cy", "ada", "--type", "knows"]);

    let out = rem.json(&["traverse", "ada", "--depth", "3"]);
    assert_eq!(
        handles(&rem, &out),
        vec![("ada".into(), 0), ("bob".into(), 1), ("cy".into(), 2)]
    );
    let cy = out
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["depth"] == 2)
        .unwrap();
    assert_eq!(cy["path"].as_array().unwrap().len(), 3);
    assert_eq!(cy["via"], "knows");
    let inward = rem.json(&["traverse", "ada", "--depth", "1", "--direction", "in"]);
    assert_eq!(
        handles(&rem, &inward),
        vec![("ada".into(), 0), ("cy".into(), 1), ("dee".into(), 1)]
    );
    let dfs = rem.json(&[
        "traverse",
        "ada",
        "--depth",
        "5",
        "--direction",
        "both",
        "--dfs",
    ]);
    assert_eq!(dfs.as_array().unwrap().len(), 4);
    let only_refs = rem.json(&["edges", "dee", "--type", "references"]);
    assert_eq!(only_refs.as_array().unwrap().len(), 1);

    let path = rem.json(&["path", "dee", "cy"]);
    assert_eq!(path.as_array().unwrap().len(), 4);
    let err = rem.fails(&["path", "cy", "dee"]);
    assert!(err.contains("no path"), "{err}");

    let sql = rem.json(&["query", "TRAVERSE 'ada' DEPTH 2 TYPE knows"]);
    assert_eq!(
        handles(&rem, &sql),
        vec![("ada".into(), 0), ("bob".into(), 1), ("cy".into(), 2)]
    );
    let counted = rem.json(&[
        "query",
        "SELECT edge_type, COUNT(*) AS n FROM edges GROUP BY edge_type ORDER BY edge_type",
    ]);
    assert_eq!(
        counted,
        serde_json::json!([{"edge_type": "knows", "n": 3}, {"edge_type": "references", "n": 1}])
    );

    // Removing an edge cuts the walk; removing it again is an error.
    rem.ok(&["edge", "rm", "bob", "cy", "--type", "knows"]);
    let out = rem.json(&["traverse", "ada", "--depth", "3"]);
    assert_eq!(
        handles(&rem, &out),
        vec![("ada".into(), 0), ("bob".into(), 1)]
    );
    rem.fails(&["edge", "rm", "bob", "cy", "--type", "knows"]);
    rem.ok(&["verify"]);
}

#[test]
fn bad_graph_input_is_one_line_and_writes_nothing() {
    let rem = Rem::init();
    let schema = rem.write_file("person.json", PEOPLE);
    rem.ok(&["schema", "add", schema.to_str().unwrap()]);
    rem.ok(&["insert", "person", "{\"handle\": \"ada\"}"]);
    let before = rem.json(&["query", "SELECT COUNT(*) AS n FROM edges"]);
    for (args, want) in [
        (
            vec!["edge", "add", "ada", "ghost", "--type", "knows"],
            "ghost",
        ),
        (
            vec![
                "edge", "add", "ada", "ada", "--type", "knows", "--props", "{bad",
            ],
            "--props",
        ),
        (
            vec![
                "edge", "add", "ada", "ada", "--type", "knows", "--props", "[1]",
            ],
            "object",
        ),
        (vec!["traverse", "ada", "--depth", "99"], "depth"),
        (vec!["traverse", "ada", "--direction", "up"], "direction"),
        (vec!["traverse", "ghost"], "ghost"),
        (vec!["query", "TRAVERSE 'ada' DEPTH 0"], "depth"),
        (vec!["query", "TRAVERSE"], "TRAVERSE"),
    ] {
        let err = rem.fails(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(
        rem.json(&["query", "SELECT COUNT(*) AS n FROM edges"]),
        before
    );
}
