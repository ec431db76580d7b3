//! Tenant isolation: no read path returns another tenant's data.

use crate::{path_str, Rem, PERSON_YAML};

#[test]
fn tenants_never_see_each_other() {
    let rem = Rem::init();
    let schema = rem.write_file("p.yaml", PERSON_YAML);
    rem.ok(&["schema", "add", path_str(&schema), "--tenant", "acme"]);
    let record = r#"{"name": "Ada", "email": "ada@example.com", "role": "engineer"}"#;
    let acme_id = rem
        .ok(&["insert", "person", record, "--tenant", "acme"])
        .trim()
        .to_string();

    // The default tenant does not even have the table.
    assert!(rem
        .fails(&["insert", "person", record])
        .contains("unknown table"));
    assert!(rem
        .fails(&["schema", "show", "person"])
        .contains("unknown table"));
    rem.ok(&["schema", "add", path_str(&schema)]);
    let default_id = rem.ok(&["insert", "person", record]).trim().to_string();
    assert_ne!(acme_id, default_id, "ids include the tenant");

    // get, lookup, stats, schema list: each sees only its own tenant.
    assert!(rem.fails(&["get", &acme_id]).contains("no entity"));
    assert!(rem
        .fails(&["get", &default_id, "--tenant", "acme"])
        .contains("no entity"));
    assert!(rem.fails(&["delete", &acme_id]).contains("no entity"));
    let found = rem.json(&["lookup", "ada@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], default_id.as_str());
    let found = rem.json(&["lookup", "ada@example.com", "--tenant", "acme"]);
    assert_eq!(found[0]["id"], acme_id.as_str());
    assert!(
        rem.json(&["lookup", &acme_id])
            .as_array()
            .unwrap()
            .is_empty(),
        "lookup by id stays in the tenant"
    );
    rem.ok(&[
        "insert",
        "resources",
        r#"{"name": "acme-only", "content": "x"}"#,
        "--tenant",
        "acme",
    ]);
    assert_eq!(rem.rows("resources"), 0);
    assert!(rem
        .json(&["lookup", "acme-only"])
        .as_array()
        .unwrap()
        .is_empty());
    let out = rem
        .command()
        .args(["stats", "--format", "json"])
        .env("P8_DEFAULT_TENANT", "acme")
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resources = stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "resources")
        .unwrap();
    assert_eq!(resources["rows"], 1);
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
}
