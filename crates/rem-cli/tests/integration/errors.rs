//! Bad input gets one clear sentence, a non-zero exit, and changes nothing.

use crate::{check_failure, path_str, Rem, PERSON_YAML};

fn with_person() -> Rem {
    let rem = Rem::init();
    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    rem
}

#[test]
fn missing_database_says_how_to_create_one() {
    let rem = Rem::new();
    for args in [
        &["get", "550e8400-e29b-41d4-a716-446655440000"][..],
        &["insert", "resources", "{}"],
        &["stats"],
        &["schema", "list"],
    ] {
        let err = rem.fails(args);
        assert!(
            err.contains("no database at") && err.contains("rem init"),
            "{err}"
        );
    }
    assert!(
        !rem.db_path().exists(),
        "a failed command must not create the database"
    );
}

#[test]
fn malformed_json_is_refused() {
    let rem = with_person();
    let before = rem.last_seq();
    let err = rem.fails(&["insert", "person", r#"{"name": "x", "email": }"#]);
    assert!(
        err.contains("invalid JSON") && err.contains("column"),
        "{err}"
    );
    let err = rem.fails(&["insert", "person", "[1, 2]"]);
    assert!(err.contains("JSON object"), "{err}");
    assert_eq!(rem.last_seq(), before);
}

#[test]
fn schema_violation_names_field_and_rule() {
    let rem = with_person();
    let before = rem.last_seq();
    let err = rem.fails(&[
        "insert",
        "person",
        r#"{"name": "x", "email": "e", "age": "old"}"#,
    ]);
    assert!(err.contains("'age'") && err.contains("integer"), "{err}");
    let err = rem.fails(&[
        "insert",
        "person",
        r#"{"name": "x", "email": "e", "age": -1}"#,
    ]);
    assert!(err.contains("'age'") && err.contains("minimum"), "{err}");
    let err = rem.fails(&["insert", "person", r#"{"name": "x"}"#]);
    assert!(err.contains("email") && err.contains("required"), "{err}");
    let err = rem.fails(&[
        "insert",
        "person",
        r#"{"name": "x", "email": "e", "joined": "last tuesday"}"#,
    ]);
    assert!(
        err.contains("'joined'") && err.contains("date-time"),
        "{err}"
    );
    assert_eq!(rem.last_seq(), before);
    assert_eq!(rem.rows("person"), 0);
}

#[test]
fn unknown_table_and_unknown_id() {
    let rem = with_person();
    let before = rem.last_seq();
    let err = rem.fails(&["insert", "nosuch", r#"{"name": "x"}"#]);
    assert!(err.contains("unknown table 'nosuch'"), "{err}");
    let out = rem.run_with_stdin(&["insert", "nosuch", "--batch"], "{\"name\": \"x\"}\n");
    assert!(check_failure(&["insert --batch"], &out).contains("unknown table"));
    assert!(rem
        .fails(&["get", "550e8400-e29b-41d4-a716-446655440000"])
        .contains("no entity with id"));
    assert!(rem
        .fails(&["delete", "550e8400-e29b-41d4-a716-446655440000"])
        .contains("no entity with id"));
    assert!(rem.fails(&["get", "not-a-uuid"]).contains("not a valid id"));
    assert!(rem
        .fails(&["schema", "show", "nosuch"])
        .contains("unknown table"));
    assert_eq!(rem.last_seq(), before);
}

#[test]
fn invalid_schema_files_are_refused() {
    let rem = Rem::init();
    let before = rem.last_seq();
    let cases = [
        (
            "bad.json",
            "{\"name\": \"t\", \"properties\": ",
            "invalid JSON",
        ),
        ("bad.yaml", "name: t\nproperties: [unclosed\n", "YAML"),
        (
            "noname.json",
            "{\"properties\": {\"a\": {\"type\": \"string\"}}}",
            "no name",
        ),
        (
            "badidx.json",
            "{\"name\": \"t\", \"indexed_fields\": [\"zz\"], \"properties\": {}}",
            "'zz'",
        ),
        (
            "badtype.json",
            "{\"name\": \"t\", \"properties\": {\"a\": {\"type\": \"strang\"}}}",
            "invalid schema",
        ),
    ];
    for (file, text, needle) in cases {
        let err = rem.fails(&["schema", "add", path_str(&rem.write_file(file, text))]);
        assert!(err.contains(needle), "{file}: {err}");
    }
    let err = rem.fails(&["schema", "add", "/nonexistent/schema.json"]);
    assert!(
        err.contains("cannot read") && err.contains("/nonexistent/schema.json"),
        "{err}"
    );
    let err = rem.fails(&["schema", "add", "--name", "x", "--template", "nope"]);
    assert!(err.contains("unknown template"), "{err}");
    assert_eq!(rem.last_seq(), before);
    assert_eq!(rem.rows("schemas"), 6);
}

#[test]
fn a_bad_line_rejects_its_whole_batch() {
    let rem = with_person();
    let good = |i: usize| format!("{{\"name\": \"n{i}\", \"email\": \"e{i}\"}}\n");
    // Batches of 10: lines 1-10 commit; line 14 is malformed, so lines 11-20 do not.
    let mut input: String = (1..=13).map(good).collect();
    input.push_str("{\"name\": \"broken\n");
    input.extend((15..=25).map(good));
    let out = rem.run_with_stdin(
        &["insert", "person", "--batch", "--batch-size", "10"],
        &input,
    );
    let err = check_failure(&["insert --batch"], &out);
    assert!(
        err.contains("line 14") && err.contains("invalid JSON"),
        "{err}"
    );
    assert!(err.contains("10 records in earlier batches"), "{err}");
    assert_eq!(rem.rows("person"), 10);

    // A schema violation in the middle of one batch: nothing of that batch is written.
    let mut input: String = (100..103).map(good).collect();
    input.push_str("{\"name\": \"no email\"}\n");
    input.push_str(&good(104));
    let out = rem.run_with_stdin(&["insert", "person", "--batch"], &input);
    let err = check_failure(&["insert --batch"], &out);
    assert!(err.contains("line 4") && err.contains("email"), "{err}");
    assert_eq!(rem.rows("person"), 10);
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

#[test]
fn locked_database_is_reported_in_one_sentence() {
    use std::io::{BufRead, Write};
    let rem = with_person();
    // A writer that has acknowledged one record holds the database open while it
    // waits for more input on stdin.
    let mut holder = rem
        .command()
        .args(["insert", "person", "--batch", "--batch-size", "1", "--ids"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    stdin
        .write_all(b"{\"name\": \"h\", \"email\": \"holder@x\"}\n")
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(
        first.trim().len(),
        36,
        "holder acknowledged its record: {first}"
    );

    let before_rows = 1;
    let err = rem.fails(&["insert", "person", r#"{"name": "x", "email": "y"}"#]);
    assert!(
        err.contains("the database at") && err.contains("locked by another process"),
        "{err}"
    );
    assert!(rem
        .fails(&["delete", first.trim()])
        .contains("locked by another process"));
    assert!(rem
        .fails(&["schema", "add", "--name", "t2", "--template", "entities"])
        .contains("locked"));
    // Readers do not take the lock: they still get service.
    assert!(rem.ok(&["schema", "list"]).contains("person"));
    assert_eq!(rem.json(&["get", first.trim()])["email"], "holder@x");
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    assert_eq!(
        rem.rows("person"),
        before_rows,
        "the refused writes changed nothing"
    );
    assert!(rem
        .fails(&["schema", "show", "t2"])
        .contains("unknown table"));
}

#[test]
fn bad_flags_and_config_are_clear() {
    let rem = Rem::init();
    let out = rem
        .command()
        .args(["stats"])
        .env("P8_ROCKSDB_COMPRESSION", "rar")
        .output()
        .unwrap();
    let err = check_failure(&["stats"], &out);
    assert!(err.contains("P8_ROCKSDB_COMPRESSION"), "{err}");
    let err = rem.fails(&["stats", "--tenant", "bad tenant!"]);
    assert!(err.contains("not a valid tenant name"), "{err}");
    let out = rem.run_with_stdin(&["insert", "resources", "--batch", "--batch-size", "0"], "");
    assert!(check_failure(&["--batch-size 0"], &out).contains("at least 1"));
}
