//! Integration tests: drive the real `rem` binary against databases in temp dirs.
//! One test binary, so RocksDB links once.

// Test helpers may panic: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod basics;
mod crash;
mod encryption;
mod errors;
mod export;
mod graph;
mod ingest;
mod query;
mod replication;
mod schemas;
mod search;
mod service;
mod tenants;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A sandboxed `rem`: its own `P8_HOME` and database path, no inherited `P8_*`.
pub(crate) struct Rem {
    pub(crate) home: tempfile::TempDir,
    /// Variables every later command gets ([`Rem::set_env`]).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Rem {
    pub(crate) fn new() -> Rem {
        Rem {
            home: tempfile::tempdir().expect("temp dir"),
            env: Default::default(),
        }
    }

    /// A sandbox with `rem init` already run.
    pub(crate) fn init() -> Rem {
        let rem = Rem::new();
        rem.ok(&["init"]);
        rem
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.home.path().join("db")
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rem"));
        for (k, _) in std::env::vars() {
            if k.starts_with("P8_") {
                c.env_remove(k);
            }
        }
        c.env("P8_HOME", self.home.path());
        // The local embedding model installed by the test setup (scripts/install-model.sh).
        c.env("P8_MODELS_DIR", models_dir());
        c.envs(self.env.borrow().iter().map(|(k, v)| (k, v)));
        c
    }

    /// Sets `key` for every later command of this sandbox.
    pub(crate) fn set_env(&self, key: &str, value: &str) {
        self.env.borrow_mut().push((key.into(), value.into()));
    }

    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rem");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait rem")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rem {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs expecting failure; asserts one clean error line; returns it.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        check_failure(args, &out)
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    /// Number of live rows per table, from `rem stats`.
    pub(crate) fn rows(&self, table: &str) -> u64 {
        let stats = self.json(&["stats"]);
        stats["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|r| r["table"] == table))
            .and_then(|r| r["rows"].as_u64())
            .unwrap_or(0)
    }

    /// The change-log position: unchanged means nothing was written.
    pub(crate) fn last_seq(&self) -> u64 {
        self.json(&["stats"])["last_seq"]
            .as_u64()
            .expect("last_seq")
    }

    pub(crate) fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

/// Where the test setup installed the local model: `P8_MODELS_DIR`, else `~/.p8/models`.
pub(crate) fn models_dir() -> PathBuf {
    match std::env::var_os("P8_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("P8_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".p8")
                });
            home.join("models")
        }
    }
}

pub(crate) fn check_failure(args: &[&str], out: &Output) -> String {
    assert!(!out.status.success(), "rem {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for bad in ["panicked", "RUST_BACKTRACE", "Error {", "Os {", "kind:"] {
        assert!(!err.contains(bad), "debug output leaked: {err}");
    }
    lines[0].to_string()
}

pub(crate) const PERSON_YAML: &str = r#"
title: Person
description: A person the agent knows about.
key_field: email
indexed_fields: [role, age]
properties:
  name: {type: string}
  email: {type: string}
  role: {type: string}
  age: {type: integer, minimum: 0}
  joined: {type: string, format: date-time}
required: [name, email]
"#;

pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
