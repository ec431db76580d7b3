//! Encryption at rest through the `rem` binary: passwords, the same answers as a plain
//! database, no plaintext of user values on disk, password changes that survive kills,
//! exports that need `--plaintext`, and `rem key-gen`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::{path_str, Rem};

/// OWASP's 19 MiB × 2 configuration: every command derives the key, so tests keep it
/// at the minimum the product accepts.
fn fast_kdf(rem: &Rem) {
    rem.set_env("P8_ARGON2_MEMORY_KIB", "19456");
    rem.set_env("P8_ARGON2_ITERATIONS", "2");
}

fn encrypted(password: &str) -> Rem {
    let rem = Rem::new();
    fast_kdf(&rem);
    let out = rem.ok(&["init", "--password", password]);
    assert!(out.contains("encrypted"), "{out}");
    rem.set_env("P8_PASSWORD", password);
    rem
}

const NOTE_YAML: &str = r#"
title: Note
description: Notes an agent keeps.
key_field: handle
indexed_fields: [topic, rank]
properties:
  handle: {type: string}
  topic: {type: string}
  rank: {type: integer}
  body: {type: string}
required: [handle]
"#;

/// One workload; returns every answer, keyed by what was asked.
fn workload(rem: &Rem) -> BTreeMap<String, Value> {
    let schema = rem.write_file("note.yaml", NOTE_YAML);
    rem.ok(&["schema", "add", path_str(&schema)]);
    let input: String = (0..40)
        .map(|i| {
            format!(
                "{{\"handle\": \"n{i}\", \"topic\": \"t{}\", \"rank\": {i}, \"body\": \"body of note {i}\"}}\n",
                i % 4
            )
        })
        .collect();
    let out = rem.run_with_stdin(&["insert", "note", "--batch"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = "{\"name\": \"rocks\", \"content\": \"RocksDB is an embeddable persistent key-value store.\", \"uri\": \"mem://rocks\"}\n\
                {\"name\": \"pasta\", \"content\": \"Boil the pasta for ten minutes and add the sauce.\", \"uri\": \"mem://pasta\"}\n";
    let out = rem.run_with_stdin(&["insert", "resources", "--batch"], docs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rem.ok(&[
        "edge",
        "add",
        "n1",
        "n2",
        "--type",
        "follows",
        "--props",
        "{\"why\": \"x\"}",
    ]);
    rem.ok(&["edge", "add", "n2", "n3", "--type", "follows"]);
    let doomed = rem.json(&["lookup", "n5"]);
    rem.ok(&["delete", doomed[0]["id"].as_str().unwrap()]);

    let strip = |mut v: Value| {
        // Times of writing differ between the two runs; everything else must not.
        fn walk(v: &mut Value) {
            match v {
                Value::Object(m) => {
                    for k in ["created_at", "modified_at", "deleted_at", "_score", "score"] {
                        m.remove(k);
                    }
                    m.values_mut().for_each(walk);
                }
                Value::Array(a) => a.iter_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut v);
        v
    };
    let mut answers = BTreeMap::new();
    let mut ask = |name: &str, args: &[&str]| {
        answers.insert(name.to_string(), strip(rem.json(args)));
    };
    ask("lookup", &["lookup", "n7"]);
    ask(
        "indexed",
        &[
            "query",
            "SELECT handle, rank FROM note WHERE topic = 't1' ORDER BY rank",
        ],
    );
    ask(
        "range",
        &[
            "query",
            "SELECT handle FROM note WHERE rank >= 30 AND rank < 35 ORDER BY handle",
        ],
    );
    ask(
        "unindexed",
        &[
            "query",
            "SELECT handle FROM note WHERE body LIKE '%note 1%' ORDER BY handle",
        ],
    );
    ask(
        "count",
        &[
            "query",
            "SELECT topic, COUNT(*) AS n FROM note GROUP BY topic ORDER BY topic",
        ],
    );
    ask(
        "deleted",
        &[
            "query",
            "SELECT handle FROM note WHERE deleted_at IS NOT NULL",
        ],
    );
    ask("traverse", &["traverse", "n1", "--depth", "3"]);
    ask("edges", &["edges", "n1"]);
    ask(
        "search",
        &[
            "search",
            "which database stores keys and values?",
            "--schema",
            "resources",
            "--top-k",
            "1",
        ],
    );
    ask(
        "search_where",
        &[
            "search",
            "cooking",
            "--schema",
            "resources",
            "--top-k",
            "1",
            "--where",
            "name = 'pasta'",
        ],
    );
    let id = rem.json(&["lookup", "n9"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ask("get", &["get", &id]);
    answers
}

#[test]
fn an_encrypted_database_answers_every_query_as_a_plain_one_does() {
    let plain = Rem::init();
    let sealed = encrypted("correct horse battery staple");
    let a = workload(&plain);
    let b = workload(&sealed);
    for (name, answer) in &a {
        assert_eq!(Some(answer), b.get(name), "{name} differs");
    }
    assert_eq!(a["search"][0]["name"], "rocks", "{}", a["search"]);
    assert!(sealed.ok(&["verify"]).starts_with("ok:"));
    // The encrypted database saves its vector index sealed, and loads it again.
    let index = sealed
        .db_path()
        .join("vectors")
        .join("default~resources~embedding.usearch");
    assert_eq!(std::fs::read(&index).expect("a saved index")[0], 0x01);
    let again = sealed.json(&[
        "search",
        "which database stores keys and values?",
        "--schema",
        "resources",
        "--top-k",
        "1",
    ]);
    assert_eq!(again[0]["name"], "rocks", "{again}");
}

/// Name, size and modification time of every file under `dir`.
fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    for path in all_files(dir) {
        let meta = std::fs::metadata(&path).unwrap();
        out.insert(path, (meta.len(), meta.modified().unwrap()));
    }
    out
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_missing_or_wrong_password_is_one_clear_error_and_changes_no_file() {
    let rem = encrypted("s3cret");
    rem.ok(&[
        "insert",
        "resources",
        "{\"name\": \"a\", \"uri\": \"mem://a\", \"content\": \"c\"}",
    ]);
    let before = snapshot_files(&rem.db_path());
    let wrong = rem.fails(&["stats", "--password", "not it"]);
    assert!(wrong.contains("wrong password"), "{wrong}");
    let out = rem
        .command()
        .env_remove("P8_PASSWORD")
        .args(["stats"])
        .output()
        .unwrap();
    let missing = super::check_failure(&["stats"], &out);
    assert!(missing.contains("is encrypted"), "{missing}");
    let read_only = rem.fails(&["query", "SELECT 1", "--password", "nope"]);
    assert!(read_only.contains("wrong password"), "{read_only}");
    assert_eq!(
        before,
        snapshot_files(&rem.db_path()),
        "a refused open changed files"
    );
    // The right password still opens it; the header is the owner's only.
    assert_eq!(rem.rows("resources"), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(rem.db_path().join("ENCRYPTION"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "header mode {mode:o}");
    }
    // A password for a plain database, and weak parameters, are refused too.
    let plain = Rem::init();
    let err = plain.fails(&["stats", "--password", "x"]);
    assert!(err.contains("not encrypted"), "{err}");
    let weak = Rem::new();
    weak.set_env("P8_ARGON2_MEMORY_KIB", "1024");
    let err = weak.fails(&["init", "--password", "x"]);
    assert!(err.contains("OWASP"), "{err}");
    assert!(
        !weak.db_path().exists(),
        "a refused init left {:?}",
        weak.db_path()
    );
    let err = Rem::new().fails(&["init", "--encrypt"]);
    assert!(err.contains("no terminal"), "{err}");
}

#[test]
fn passwd_rewraps_the_key_and_a_kill_at_either_step_leaves_one_password_working() {
    let rem = encrypted("old");
    rem.ok(&[
        "insert",
        "resources",
        "{\"name\": \"kept\", \"uri\": \"mem://kept\", \"content\": \"c\"}",
    ]);
    let out = rem.ok(&["passwd", "--new-password", "new"]);
    assert!(out.contains("changed the password"), "{out}");
    assert!(rem
        .fails(&["stats", "--password", "old"])
        .contains("wrong password"));
    assert_eq!(
        rem.json(&["lookup", "mem://kept", "--password", "new"])[0]["name"],
        "kept"
    );
    // A kill after the new header is durable but before it replaces the old one: the
    // old password opens; a kill after the rename: the new one does.
    for (point, opens, refused) in [("staged", "new", "newer"), ("swapped", "newer", "new")] {
        let out = rem
            .command()
            .env("P8_PASSWORD", "new")
            .env("P8_KILL_POINT", format!("passwd:{point}"))
            .args(["passwd", "--new-password", "newer"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "passwd was not killed at {point}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("kill point"), "{err}");
        assert_eq!(
            rem.json(&["lookup", "mem://kept", "--password", opens])[0]["name"],
            "kept",
            "after a kill at {point}"
        );
        assert!(rem
            .fails(&["stats", "--password", refused])
            .contains("wrong password"));
        if point == "staged" {
            // The staged header left behind is harmless; a later passwd replaces it.
            assert!(rem.db_path().join("ENCRYPTION.new").exists());
        }
    }
    assert!(rem
        .ok(&["verify", "--password", "newer"])
        .starts_with("ok:"));
    let plain = Rem::init();
    let err = plain.fails(&["passwd", "--new-password", "x"]);
    assert!(err.contains("not encrypted"), "{err}");
}

/// The forms a canary may take in a file.
fn forms(canary: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let bytes = canary.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![bytes.to_vec(), hex.into_bytes()];
    // Base64 of the canary at each alignment, without the characters that depend on
    // the neighbouring bytes.
    for pad in 0..3 {
        let mut shifted = vec![0u8; pad];
        shifted.extend_from_slice(bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(&shifted);
        let skip = if pad == 0 { 0 } else { 4 };
        out.push(text.as_bytes()[skip..text.len() - 4].to_vec());
    }
    out
}

/// Which canaries appear, in any form, in any file under `dirs`.
fn found(dirs: &[PathBuf], canaries: &[&str]) -> Vec<String> {
    let files: Vec<(PathBuf, Vec<u8>)> = dirs
        .iter()
        .flat_map(|d| all_files(d))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    let mut hits = Vec::new();
    for c in canaries {
        for form in forms(c) {
            for (path, bytes) in &files {
                if bytes.windows(form.len()).any(|w| w == form.as_slice()) {
                    hits.push(format!("{c} in {}", path.display()));
                }
            }
        }
    }
    hits.sort();
    hits.dedup();
    hits
}

/// Plants canaries in property values, a key value, an indexed value, an edge type, a
/// bare-key edge target, edge properties, embedded text and an ingested chunk; leaves
/// the last only in the write-ahead log by killing the writer.
fn plant(rem: &Rem) -> Vec<&'static str> {
    let schema = rem.write_file("note.yaml", NOTE_YAML);
    rem.ok(&["schema", "add", path_str(&schema)]);
    rem.ok(&[
        "insert",
        "note",
        "{\"handle\": \"h1\", \"body\": \"CANARY-BODY-7f3a91\"}",
    ]);
    rem.ok(&[
        "insert",
        "note",
        "{\"handle\": \"h2\", \"body\": \"plain\"}",
    ]);
    rem.ok(&[
        "edge",
        "add",
        "h1",
        "h2",
        "--type",
        "cites",
        "--props",
        "{\"note\": \"CANARY-EDGE-5c2d\"}",
    ]);
    rem.ok(&[
        "insert",
        "note",
        "{\"handle\": \"CANARY-KEY-1b2c\", \"topic\": \"CANARY-IDX-3d4e\", \"body\": \"x\", \"edges\": [\"CANARY-DST-7a8b\"]}",
    ]);
    rem.ok(&["edge", "add", "h2", "h1", "--type", "CANARY-TYPE-5f6a"]);
    let doc = "{\"name\": \"doc\", \"uri\": \"mem://doc\", \"content\": \"CANARY-TEXT-91be starts this embedded text about storage.\"}";
    rem.ok(&["insert", "resources", doc]);
    rem.ok(&["search", "storage", "--schema", "resources", "--top-k", "1"]);
    let file = rem.write_file(
        "chunked.md",
        "# Title\n\nCANARY-CHUNK-44aa is inside an ingested document.\n",
    );
    rem.ok(&["ingest", path_str(&file)]);
    // The last write dies after its commit, before any flush: it lives in the WAL only.
    let out = rem
        .command()
        .env("P8_KILL_POINT", "insert:committed")
        .args([
            "insert",
            "note",
            "{\"handle\": \"h3\", \"body\": \"CANARY-WAL-e0e0\"}",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the writer was not killed");
    vec![
        "CANARY-BODY-7f3a91",
        "CANARY-KEY-1b2c",
        "CANARY-IDX-3d4e",
        "CANARY-DST-7a8b",
        "CANARY-TYPE-5f6a",
        "CANARY-EDGE-5c2d",
        "CANARY-TEXT-91be",
        "CANARY-CHUNK-44aa",
        "CANARY-WAL-e0e0",
    ]
}

#[test]
fn no_user_value_is_readable_in_the_files_of_an_encrypted_database() {
    // The scanner finds every canary in a plain database (without block compression,
    // which could split a canary into back-references)...
    let plain = Rem::new();
    plain.set_env("P8_ROCKSDB_COMPRESSION", "none");
    plain.ok(&["init"]);
    let canaries = plant(&plain);
    let hits = found(&[plain.db_path()], &canaries);
    for c in &canaries {
        assert!(
            hits.iter().any(|h| h.starts_with(c)),
            "scanner missed {c} in the plain database: {hits:?}"
        );
    }
    // ... and none in an encrypted one, WAL, tables and temporary files alike.
    let sealed = encrypted("pw");
    let canaries = plant(&sealed);
    // The killed writer's record was acknowledged to nobody, but it is in the log:
    // the next open replays it.
    assert_eq!(sealed.json(&["lookup", "h3"])[0]["body"], "CANARY-WAL-e0e0");
    // Keys hold keyed hashes, and every lookup through them still answers.
    let by_key = sealed.json(&["lookup", "CANARY-KEY-1b2c"]);
    assert_eq!(by_key[0]["topic"], "CANARY-IDX-3d4e", "{by_key}");
    let by_index = sealed.json(&[
        "query",
        "SELECT handle FROM note WHERE topic = 'CANARY-IDX-3d4e'",
    ]);
    assert_eq!(by_index[0]["handle"], "CANARY-KEY-1b2c", "{by_index}");
    let edges = sealed.json(&["edges", "h2"]).to_string();
    assert!(edges.contains("CANARY-TYPE-5f6a"), "{edges}");
    let edges = sealed.json(&["edges", "CANARY-KEY-1b2c"]).to_string();
    assert!(edges.contains("CANARY-DST-7a8b"), "{edges}");
    let hits = found(&[sealed.db_path()], &canaries);
    assert!(hits.is_empty(), "plaintext on disk: {hits:?}");
    // Flushed and compacted (reopened, written, closed): still nothing.
    sealed.ok(&["insert", "note", "{\"handle\": \"h4\", \"body\": \"more\"}"]);
    let hits = found(&[sealed.db_path()], &canaries);
    assert!(hits.is_empty(), "plaintext on disk after a flush: {hits:?}");
}

#[test]
fn exports_of_an_encrypted_database_need_plaintext() {
    let rem = encrypted("pw");
    rem.ok(&[
        "insert",
        "resources",
        "{\"name\": \"a\", \"uri\": \"mem://a\", \"content\": \"c\"}",
    ]);
    let out = rem.home.path().join("r.jsonl");
    let err = rem.fails(&["export", "resources", "--output", path_str(&out)]);
    assert!(err.contains("--plaintext"), "{err}");
    assert!(!out.exists());
    rem.ok(&[
        "export",
        "resources",
        "--output",
        path_str(&out),
        "--plaintext",
    ]);
    assert!(std::fs::read_to_string(&out).unwrap().contains("mem://a"));
}

#[test]
fn key_gen_writes_a_sealed_private_key_that_matches_its_public_key() {
    let rem = Rem::new();
    fast_kdf(&rem);
    let out = rem.ok(&["key-gen", "--password", "kp"]);
    assert!(out.contains("public key:"), "{out}");
    let dir = rem.home.path().join("keys");
    let public = std::fs::read_to_string(dir.join("public_key")).unwrap();
    let sealed_path = dir.join("private_key_encrypted");
    let sealed = std::fs::read_to_string(&sealed_path).unwrap();
    let seed = rem::open_with_password(
        &sealed,
        &rem::Password::new("kp"),
        "percolate-rocks ed25519 private key 1",
        &sealed_path,
    )
    .unwrap();
    let seed: [u8; 32] = seed.as_slice().try_into().unwrap();
    let derived: String = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(public.trim(), derived);
    assert!(out.contains(&derived));
    assert!(rem::open_with_password(
        &sealed,
        &rem::Password::new("other"),
        "percolate-rocks ed25519 private key 1",
        &sealed_path
    )
    .is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sealed_path), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }
    let err = rem.fails(&["key-gen", "--password", "kp"]);
    assert!(err.contains("--force"), "{err}");
    rem.ok(&["key-gen", "--password", "kp2", "--force"]);
    assert_ne!(
        std::fs::read_to_string(dir.join("public_key")).unwrap(),
        public
    );
}

/// Runs `rem args` under a pseudo-terminal (util-linux `script`), typing `typed`.
fn on_terminal(rem: &Rem, args: &str, typed: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_rem"));
    let mut c = Command::new("script");
    for (k, _) in std::env::vars() {
        if k.starts_with("P8_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .args(["-qec", &command, "/dev/null"])
        .env("P8_HOME", rem.home.path())
        .env("P8_MODELS_DIR", super::models_dir())
        .env("P8_ARGON2_MEMORY_KIB", "19456")
        .env("P8_ARGON2_ITERATIONS", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(typed.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn on_a_terminal_rem_prompts_for_the_password() {
    let rem = Rem::new();
    let out = on_terminal(&rem, "init --encrypt", "typed pw\ntyped pw\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("password for the new database"), "{text}");
    assert!(text.contains("encrypted"), "{text}");
    let out = on_terminal(&rem, "stats --format json", "typed pw\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("password for"), "{text}");
    assert!(text.contains("last_seq"), "{text}");
    let out = on_terminal(&rem, "stats", "not it\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong password"));
    // Two different entries create nothing.
    let other = Rem::new();
    let out = on_terminal(&other, "init --encrypt", "one\ntwo\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("differ"));
    assert!(!other.db_path().exists());
}
