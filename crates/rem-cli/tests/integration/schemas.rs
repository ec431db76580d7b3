//! Schema sources (JSON, YAML, Pydantic), templates, aliases, re-registration.

use serde_json::json;

use crate::{path_str, Rem, PERSON_YAML};

#[test]
fn json_yaml_and_template_sources() {
    let rem = Rem::init();
    let json_schema = json!({
        "title": "ArticleChunk", "description": "Articles about programming.",
        "json_schema_extra": {"indexed_fields": ["category"], "key_field": "slug"},
        "properties": {"slug": {"type": "string"}, "category": {"type": "string"}, "body": {"type": "string", "embedding_provider": "default"}}
    });
    let f = rem.write_file("a.json", &json_schema.to_string());
    assert!(rem
        .ok(&["schema", "add", path_str(&f)])
        .contains("'article_chunk'"));
    let shown: serde_json::Value =
        serde_json::from_str(&rem.ok(&["schema", "show", "ARTICLE_CHUNK"])).unwrap();
    assert_eq!(shown["name"], "article_chunk");
    assert_eq!(shown["json_schema_extra"]["key_field"], "slug");
    let list = rem.json(&["schema", "list"]);
    let art = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "article_chunk")
        .unwrap();
    assert_eq!(art["key_field"], "slug");
    assert_eq!(art["embedding_fields"], json!(["body"]));

    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    // Templates: registered directly, or written to a file to edit first.
    rem.ok(&[
        "schema",
        "add",
        "--name",
        "my_docs",
        "--template",
        "resources",
    ]);
    let out = rem.home.path().join("agents.yaml");
    rem.ok(&[
        "schema",
        "add",
        "--name",
        "helpers",
        "--template",
        "agentlets",
        "--output",
        path_str(&out),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("fully_qualified_name: user.helpers"),
        "{text}"
    );
    assert!(
        rem.fails(&["schema", "show", "helpers"])
            .contains("unknown table"),
        "--output must not register"
    );
    rem.ok(&["schema", "add", path_str(&out)]);
    let names: Vec<String> = rem
        .json(&["schema", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "article_chunk",
        "person",
        "my_docs",
        "helpers",
        "resources",
        "files",
        "moments",
        "sessions",
        "messages",
        "schemas",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    // Singular aliases of built-in tables.
    let id = rem.ok(&["insert", "resource", r#"{"name": "r", "content": "c"}"#]);
    assert_eq!(rem.json(&["get", id.trim()])["entity_type"], "resources");
}

#[test]
fn reregistering_with_a_new_index_backfills_it() {
    let rem = Rem::init();
    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    let lines: String = (0..50)
        .map(|i| format!("{{\"name\": \"n{i}\", \"email\": \"e{i}\", \"role\": \"r\"}}\n"))
        .collect();
    assert!(rem
        .run_with_stdin(&["insert", "person", "--batch"], &lines)
        .status
        .success());
    let v2 = PERSON_YAML.replace(
        "indexed_fields: [role, age]",
        "indexed_fields: [role, age, name]\nversion: 2.0.0",
    );
    rem.ok(&["schema", "add", path_str(&rem.write_file("p2.yaml", &v2))]);
    assert_eq!(rem.rows("person"), 50, "re-registration keeps data");
    // verify recomputes the expected entries from the new schema: the name index exists.
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}

#[test]
fn pydantic_models_load_or_fail_clearly() {
    let rem = Rem::init();
    let models = rem.write_file(
        "models.py",
        "from pydantic import BaseModel, ConfigDict, Field\n\
         class Article(BaseModel):\n    \"\"\"A programming article.\"\"\"\n\
         \x20   model_config = ConfigDict(json_schema_extra={'key_field': 'title', 'indexed_fields': ['category']})\n\
         \x20   title: str\n    category: str = Field(description='Category')\n    views: int = 0\n",
    );
    let has_pydantic = std::process::Command::new("python3")
        .args(["-c", "import pydantic"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let source = format!("{}::Article", path_str(&models));
    if has_pydantic {
        assert!(rem.ok(&["schema", "add", &source]).contains("'article'"));
        let err = rem.fails(&[
            "insert",
            "article",
            r#"{"title": "t", "category": "c", "views": "many"}"#,
        ]);
        assert!(err.contains("'views'"), "{err}");
        assert!(rem
            .fails(&["schema", "add", &format!("{}::Nope", path_str(&models))])
            .contains("no class named 'Nope'"));
    }
    // A Python without pydantic (simulated with a python3 that cannot import it).
    let fake = rem.write_file(
        "fakepython",
        "#!/bin/sh\nshift\nscript=\"$1\"\nshift\nexec python3 -c \"import sys; sys.modules['pydantic'] = None; exec(compile(sys.argv.pop(1), 'script', 'exec'))\" \"$script\" \"$@\"\n",
    );
    std::process::Command::new("chmod")
        .args(["+x", path_str(&fake)])
        .status()
        .unwrap();
    let out = rem
        .command()
        .args(["schema", "add", &source])
        .env("P8_PYTHON", &fake)
        .output()
        .unwrap();
    let err = crate::check_failure(&["schema add (no pydantic)"], &out);
    assert!(err.contains("pydantic is not installed"), "{err}");
    let out = rem
        .command()
        .args(["schema", "add", &source])
        .env("P8_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    let err = crate::check_failure(&["schema add (no python)"], &out);
    assert!(
        err.contains("cannot run") && err.contains("install Python 3"),
        "{err}"
    );
}
