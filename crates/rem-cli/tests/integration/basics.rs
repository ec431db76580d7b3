//! The README flow: init, add a schema, insert, get, lookup, upsert, delete, verify.

use serde_json::json;

use crate::{path_str, Rem, PERSON_YAML};

#[test]
fn init_schema_insert_get_lookup() {
    let rem = Rem::init();
    let schema = rem.write_file("person.yaml", PERSON_YAML);
    assert!(rem
        .ok(&["schema", "add", path_str(&schema)])
        .contains("registered schema 'person'"));

    let id = rem.ok(&[
        "insert",
        "person",
        r#"{"name": "Ada", "email": "ada@example.com", "role": "engineer", "age": 36}"#,
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 36, "prints the id: {id}");

    let got = rem.json(&["get", id]);
    assert_eq!(got["name"], "Ada");
    assert_eq!(got["entity_type"], "person");
    assert_eq!(got["id"], id);
    assert!(got["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got["deleted_at"], json!(null));

    // A resource whose name collides with the key: lookup finds both tables.
    rem.ok(&[
        "insert",
        "resources",
        r#"{"name": "ada@example.com", "content": "notes", "key": "ada@example.com"}"#,
    ]);
    let found = rem.json(&["lookup", "ada@example.com"]);
    let tables: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_type"].as_str().unwrap())
        .collect();
    assert_eq!(tables.len(), 2, "{found}");
    assert!(tables.contains(&"person") && tables.contains(&"resources"));

    // Upsert with the same key: same id, created_at kept, modified_at bumped.
    let id2 = rem.ok(&[
        "insert",
        "person",
        r#"{"name": "Ada L.", "email": "ada@example.com", "role": "lead"}"#,
    ]);
    assert_eq!(id2.trim(), id);
    let after = rem.json(&["get", id]);
    assert_eq!(after["name"], "Ada L.");
    assert_eq!(after["created_at"], got["created_at"]);
    assert!(after["modified_at"].as_str() > got["modified_at"].as_str());
    assert_eq!(rem.rows("person"), 1);

    // Soft delete hides it from get and lookup, but --include-deleted shows it.
    assert!(rem.ok(&["delete", id]).contains("deleted"));
    assert!(rem.fails(&["get", id]).contains("no entity with id"));
    let deleted = rem.json(&["get", id, "--include-deleted"]);
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(
        rem.json(&["lookup", "ada@example.com"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

#[test]
fn batch_insert_and_upsert_file() {
    let rem = Rem::init();
    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    let lines: String = (0..2500)
        .map(|i| {
            format!(
                "{{\"name\": \"n{i}\", \"email\": \"u{i}@x\", \"role\": \"r{}\", \"age\": {}}}\n",
                i % 7,
                i % 90
            )
        })
        .collect();
    let out = rem.run_with_stdin(
        &["insert", "person", "--batch", "--batch-size", "1000"],
        &lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 2500 records"));
    assert_eq!(rem.rows("person"), 2500);

    // --ids prints one id per record; upserting the same keys keeps the row count.
    let half: String = lines.lines().take(1250).map(|l| format!("{l}\n")).collect();
    let file = rem.write_file("more.jsonl", &half);
    let out = rem.ok(&["upsert", path_str(&file), "--schema", "person", "--ids"]);
    assert_eq!(out.lines().count(), 1250);
    assert_eq!(rem.rows("person"), 2500);
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

#[test]
fn output_formats() {
    let rem = Rem::init();
    rem.ok(&[
        "insert",
        "resources",
        r#"{"name": "a", "content": "x, \"quoted\"", "uri": "file:///a.md", "ordinal": 0}"#,
    ]);
    rem.ok(&[
        "insert",
        "resources",
        r#"{"name": "b", "content": "y", "uri": "file:///a.md", "ordinal": 1}"#,
    ]);
    // The bare uri finds every chunk of the document; uri#ordinal finds one.
    let jsonl = rem.ok(&["lookup", "file:///a.md", "--format", "jsonl"]);
    assert_eq!(jsonl.lines().count(), 2);
    for line in jsonl.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(rem.json(&["lookup", "file:///a.md#1"])[0]["name"], "b");
    let csv = rem.ok(&["lookup", "file:///a.md#0", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let content = headers.iter().position(|h| h == "content").unwrap();
    assert_eq!(&row[content], "x, \"quoted\"");
    let table = rem.ok(&["schema", "list", "--format", "table"]);
    assert!(
        table.contains("resources") && table.contains("moments"),
        "{table}"
    );
    let templates = rem.json(&["schema", "templates"]);
    assert_eq!(templates.as_array().unwrap().len(), 4);
}

#[test]
fn stats_and_config_show() {
    let rem = Rem::init();
    std::fs::write(
        rem.home.path().join("config.toml"),
        "[database]\nrocksdb_max_open_files = 321\n",
    )
    .unwrap();
    let cfg = rem.json(&["config", "show"]);
    let find = |k: &str| {
        cfg.as_array()
            .unwrap()
            .iter()
            .find(|e| e["setting"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(find("P8_ROCKSDB_MAX_OPEN_FILES")["value"], "321");
    assert_eq!(find("P8_ROCKSDB_MAX_OPEN_FILES")["source"], "config file");
    assert_eq!(find("P8_HOME")["source"], "environment");
    let entry = |args: &[&str], env: (&str, &str), setting: &str| -> (String, String) {
        let out = rem.command().args(args).env(env.0, env.1).output().unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let e = cfg
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["setting"] == setting)
            .unwrap()
            .clone();
        (
            e["value"].as_str().unwrap().into(),
            e["source"].as_str().unwrap().into(),
        )
    };
    let show = ["config", "show", "--format", "json"];
    assert_eq!(
        entry(
            &show,
            ("P8_ROCKSDB_MAX_OPEN_FILES", "77"),
            "P8_ROCKSDB_MAX_OPEN_FILES"
        ),
        ("77".into(), "environment".into())
    );
    assert_eq!(
        entry(
            &["config", "show", "--tenant", "acme", "--format", "json"],
            ("P8_X", ""),
            "P8_DEFAULT_TENANT"
        ),
        ("acme".into(), "flag".into())
    );

    rem.ok(&[
        "insert",
        "moments",
        r#"{"name": "Sprint 42", "start_time": "2025-10-01T00:00:00Z", "moment_type": "period"}"#,
    ]);
    let stats = rem.json(&["stats"]);
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0);
    assert_eq!(rem.rows("moments"), 1);
    assert_eq!(rem.rows("schemas"), 6);
}

#[test]
fn path_flag_and_env_select_the_database() {
    let rem = Rem::new();
    let other = rem.home.path().join("elsewhere");
    rem.ok(&["init", "--path", path_str(&other)]);
    assert!(other.join("CURRENT").exists());
    assert!(!rem.db_path().exists());
    let id = rem.ok(&[
        "insert",
        "resources",
        r#"{"name": "n", "content": "c"}"#,
        "--path",
        path_str(&other),
    ]);
    let out = rem
        .command()
        .args(["get", id.trim(), "--format", "json"])
        .env("P8_DB_PATH", &other)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn every_command_has_help_with_examples() {
    let rem = Rem::new();
    let commands: [&[&str]; 15] = [
        &[],
        &["init"],
        &["schema"],
        &["schema", "add"],
        &["schema", "list"],
        &["schema", "show"],
        &["schema", "templates"],
        &["insert"],
        &["upsert"],
        &["get"],
        &["delete"],
        &["lookup"],
        &["verify"],
        &["stats"],
        &["config", "show"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let help = rem.ok(&args);
        assert!(
            help.contains("Example"),
            "`rem {}` has no examples:\n{help}",
            c.join(" ")
        );
    }
}

/// `[logging]` in config.toml decides what reaches stderr and how, and a bad setting in
/// it is one clear error naming the setting.
#[test]
fn config_toml_logging_and_bad_settings() {
    let rem = Rem::new();
    // No model: `rem init` warns that schema descriptions were not embedded.
    let no_models = rem.home.path().join("no-models");
    std::fs::create_dir_all(&no_models).unwrap();
    rem.set_env("P8_MODELS_DIR", no_models.to_str().unwrap());
    rem.set_env("HF_HUB_OFFLINE", "1");
    rem.write_file("config.toml", "[logging]\nformat = \"json\"\n");
    let out = rem.run(&["init"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning: serde_json::Value = stderr
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON log line in {stderr}"));
    assert_eq!(warning["level"], "WARN", "{stderr}");

    let rem = Rem::new();
    rem.set_env("P8_MODELS_DIR", no_models.to_str().unwrap());
    rem.set_env("HF_HUB_OFFLINE", "1");
    rem.write_file("config.toml", "[logging]\nlevel = \"error\"\n");
    let out = rem.run(&["init"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    rem.write_file("config.toml", "[replication]\nport = 70000\n");
    let err = rem.fails(&["stats"]);
    assert!(
        err.contains("replication.port") && err.contains("port number"),
        "{err}"
    );
    rem.write_file("config.toml", "[database]\nbatch_sise = 10\n");
    let out = rem.run(&["config", "show"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'database.batch_sise'"));
}
