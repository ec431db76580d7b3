//! `rem search`: the local default model end to end, an OpenAI-compatible provider on
//! loopback, filters, bad input, and an index that stays right through SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use rem_testkit::{start, Behaviour};

use crate::{check_failure, Rem};

const DOCS: &str = r#"{"name": "docs", "key_field": "slug", "indexed_fields": ["category"],
 "description": "Technical documents to search by meaning.",
 "embedding_fields": ["body"], "embedding_provider": "default",
 "properties": {"slug": {"type": "string"}, "category": {"type": "string"}, "body": {"type": "string"}}}"#;

#[test]
fn default_local_model_answers_semantic_queries() {
    // No flags, no variables: the default local model (installed by the setup) is used.
    let rem = Rem::init();
    let lines = [
        (
            "rust",
            "Rust is a systems programming language focused on memory safety.",
        ),
        (
            "pasta",
            "Boil the pasta in salted water for nine minutes, then drain.",
        ),
        (
            "rocks",
            "RocksDB is an embeddable persistent key-value store for fast storage.",
        ),
        ("tennis", "She won the tennis match in three sets."),
    ];
    let input: String = lines
        .iter()
        .map(|(n, c)| {
            format!("{{\"name\": \"{n}\", \"content\": \"{c}\", \"uri\": \"mem://{n}\"}}\n")
        })
        .collect();
    let out = rem.run_with_stdin(&["insert", "resources", "--batch"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = rem.json(&[
        "search",
        "which database stores keys and values?",
        "--schema",
        "resources",
        "--top-k",
        "2",
    ]);
    assert_eq!(hits[0]["name"], "rocks", "{hits}");
    assert!(hits[0]["score"].as_f64().unwrap() > hits[1]["score"].as_f64().unwrap());
    let hits = rem.json(&[
        "search",
        "cooking dinner",
        "--schema",
        "resource",
        "--top-k",
        "1",
    ]);
    assert_eq!(hits[0]["name"], "pasta");
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

pub(crate) fn mock_rem() -> (Rem, rem_testkit::MockServer) {
    let server = start(Behaviour {
        dims: 16,
        ..Default::default()
    });
    let rem = Rem::new();
    std::fs::write(
        rem.home.path().join("config.toml"),
        format!(
            "[embeddings]\ndefault_model = \"openai:mock\"\nopenai_base_url = \"{}\"\n",
            server.base_url
        ),
    )
    .unwrap();
    rem.ok(&["init"]);
    let f = rem.write_file("docs.json", DOCS);
    rem.ok(&["schema", "add", f.to_str().unwrap()]);
    (rem, server)
}

#[test]
fn search_with_filters_scores_and_detection() {
    let (rem, _server) = mock_rem();
    let input: String = (0..200)
        .map(|i| {
            format!(
                "{{\"slug\": \"d{i}\", \"category\": \"c{}\", \"body\": \"body {i}\"}}\n",
                i % 4
            )
        })
        .collect();
    assert!(rem
        .run_with_stdin(&["insert", "docs", "--batch"], &input)
        .status
        .success());
    let hits = rem.json(&["search", "body 17", "--schema", "docs"]);
    assert_eq!(hits.as_array().unwrap().len(), 10);
    assert_eq!(hits[0]["slug"], "d17");
    let hits = rem.json(&[
        "search",
        "body 17",
        "--schema",
        "docs",
        "--where",
        "category = 'c2'",
        "--top-k",
        "3",
    ]);
    assert_eq!(hits.as_array().unwrap().len(), 3);
    assert!(hits
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["category"] == "c2"));
    let hits = rem.json(&[
        "search",
        "body 17",
        "--schema",
        "docs",
        "--min-score",
        "0.999",
    ]);
    assert_eq!(hits.as_array().unwrap().len(), 1);
    // Without --schema the chosen table is reported on stderr.
    let out = rem
        .command()
        .args(["search", "body 17", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("searched table '"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn search_bad_input_is_clear() {
    let (rem, _server) = mock_rem();
    assert!(rem
        .fails(&["search", "x", "--schema", "files"])
        .contains("no embedded fields"));
    assert!(rem
        .fails(&["search", "x", "--schema", "nope"])
        .contains("unknown table"));
    let err = rem.fails(&[
        "search",
        "x",
        "--schema",
        "docs",
        "--where",
        "category = = 'a'",
    ]);
    assert!(err.contains("invalid predicate"), "{err}");
    assert!(rem
        .fails(&["search", "x", "--schema", "docs", "--alt"])
        .contains("P8_ALT_EMBEDDING"));
    // A provider that refuses the key: one clear sentence, nothing written.
    let locked = start(Behaviour {
        dims: 16,
        api_key: Some("right".into()),
        ..Default::default()
    });
    let before = rem.last_seq();
    let out = rem
        .command()
        .args(["insert", "docs", r#"{"slug": "k", "body": "b"}"#])
        .env("P8_OPENAI_BASE_URL", &locked.base_url)
        .env("P8_OPENAI_API_KEY", "wrong")
        .output()
        .unwrap();
    let err = check_failure(&["insert (bad key)"], &out);
    assert!(err.contains("refused the API key"), "{err}");
    assert_eq!(rem.last_seq(), before);
}

/// A writer killed mid-stream: every acknowledged record is found by search afterwards
/// (the saved index is behind the log and catches up on load).
#[test]
fn index_is_never_stale_after_sigkill() {
    let (rem, _server) = mock_rem();
    rem.ok(&[
        "insert",
        "docs",
        r#"{"slug": "first", "body": "first body"}"#,
    ]);
    rem.json(&["search", "first body", "--schema", "docs"]); // builds and saves the index
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let mut child = rem
            .command()
            .args(["insert", "docs", "--batch", "--batch-size", "3", "--ids"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0..100_000 {
                let line = format!(
                    "{{\"slug\": \"r{round}-{i}\", \"body\": \"round {round} item {i}\"}}\n"
                );
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout).lines().map_while(Result::ok).count()
        });
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        feeder.join().unwrap();
        let acked = reader.join().unwrap();
        acknowledged.push((round, acked));
    }
    assert!(
        acknowledged.iter().any(|(_, n)| *n > 0),
        "nothing was acknowledged"
    );
    for (round, n) in acknowledged {
        for i in [0, n / 2, n.saturating_sub(1)] {
            if n == 0 {
                break;
            }
            let hits = rem.json(&[
                "search",
                &format!("round {round} item {i}"),
                "--schema",
                "docs",
                "--top-k",
                "1",
            ]);
            assert_eq!(
                hits[0]["slug"],
                format!("r{round}-{i}"),
                "acknowledged record missing from search"
            );
        }
    }
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

/// `rem search --where P` and `rem query "… WHERE P"` speak one predicate language:
/// both accept the same predicates and keep the same rows, and both refuse the same bad
/// ones. The one documented difference: a search filter compares fields with literals,
/// so arithmetic, column-to-column comparisons and subqueries are SQL-only (refused by
/// search with a reason).
#[test]
fn where_predicates_mean_the_same_in_search_and_sql() {
    let (rem, _server) = mock_rem();
    let schema = r#"{"name": "items", "key_field": "slug", "indexed_fields": ["category", "views"],
     "embedding_fields": ["body"], "embedding_provider": "default",
     "properties": {"slug": {"type": "string"}, "category": {"type": "string"},
      "views": {"type": "integer"}, "ratio": {"type": "number"}, "flag": {"type": "boolean"},
      "tags": {"type": "array", "items": {"type": "string"}},
      "seen": {"type": "string", "format": "date-time"},
      "note": {"type": "string"}, "body": {"type": "string"}}}"#;
    let f = rem.write_file("items.json", schema);
    rem.ok(&["schema", "add", f.to_str().unwrap()]);
    let input: String = (0..40)
        .map(|i| {
            // Every fifth record has no note (NULL in SQL, missing to the engine).
            let note = if i % 5 == 0 {
                String::new()
            } else {
                format!("\"note\": \"Note {i}\", ")
            };
            format!(
                "{{\"slug\": \"s{i}\", \"category\": \"c{}\", \"views\": {}, \"ratio\": {}, \
                 \"flag\": {}, \"tags\": [\"t{}\", \"all\"], \"seen\": \"2025-01-{:02}T00:00:00Z\", \
                 {note}\"body\": \"body {i}\"}}\n",
                i % 4,
                i * 10,
                f64::from(i) / 8.0,
                i % 2 == 0,
                i % 3,
                i % 28 + 1
            )
        })
        .collect();
    let out = rem.run_with_stdin(&["insert", "items", "--batch"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let slugs = |rows: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["slug"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let search = |p: &str| {
        rem.run(&[
            "search", "body", "--schema", "items", "--where", p, "--top-k", "1000", "--format",
            "json",
        ])
    };
    let sql = |p: &str| {
        rem.run(&[
            "query",
            &format!("SELECT slug FROM items WHERE {p}"),
            "--format",
            "json",
        ])
    };
    let accepted = [
        "category = 'c1'",
        "category != 'c1'",
        "category <> 'c1' AND views > 100",
        "views >= 100 AND views < 250",
        "300 > views",
        "ratio <= 1.5",
        "views BETWEEN 50 AND 120",
        "views NOT BETWEEN 50 AND 350",
        "category IN ('c0', 'c3')",
        "category NOT IN ('c0', 'c3')",
        "note IS NULL",
        "note IS NOT NULL AND flag = true",
        "note LIKE 'Note 1%'",
        "note ILIKE 'note _'",
        "note NOT LIKE 'Note 1%'",
        "'t2' = ANY(tags)",
        "seen >= '2025-01-20T00:00:00Z'",
        "seen BETWEEN '2025-01-05T00:00:00Z' AND '2025-01-07T00:00:00Z'",
        "NOT (category = 'c2' OR views < 100)",
        "(category = 'c2' OR category = 'c3') AND NOT flag = false",
        "id IS NOT NULL",
    ];
    for p in accepted {
        let (s, q) = (search(p), sql(p));
        assert!(
            s.status.success(),
            "search --where {p}: {}",
            String::from_utf8_lossy(&s.stderr)
        );
        assert!(
            q.status.success(),
            "query WHERE {p}: {}",
            String::from_utf8_lossy(&q.stderr)
        );
        let parse = |o: &std::process::Output| -> serde_json::Value {
            serde_json::from_slice(&o.stdout).unwrap()
        };
        let (got, want) = (slugs(&parse(&s)), slugs(&parse(&q)));
        assert!(!want.is_empty(), "{p} selects nothing");
        assert_eq!(got, want, "rows differ for {p}");
    }
    let refused = [
        "category = = 'c1'",
        "category = 'c1' extra",
        "nosuch = 1",
        "views = 'many'",
    ];
    for p in refused {
        let (s, q) = (search(p), sql(p));
        assert!(!q.status.success(), "query WHERE {p} was accepted");
        let err = String::from_utf8_lossy(&s.stderr);
        assert!(
            err.contains("invalid predicate"),
            "search --where {p}: {err}"
        );
        assert_eq!(s.status.code(), Some(1), "{p}: {err}");
    }
    for p in ["views + 10 > 100", "views = ratio", "views IN (SELECT 10)"] {
        assert!(sql(p).status.success(), "query WHERE {p}");
        let err = String::from_utf8_lossy(&search(p).stderr).to_string();
        assert!(
            err.contains("cannot be a search filter") || err.contains("subqueries are not"),
            "{p}: {err}"
        );
    }
}
