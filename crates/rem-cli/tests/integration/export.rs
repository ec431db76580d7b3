//! `rem export`: files read back by an independent reader (pyarrow), types following the
//! JSON Schema, every compression, filters, embeddings, `--all`, and bad input that
//! leaves no file behind.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::Rem;

const ITEMS: &str = r#"{"name": "item", "key_field": "sku",
 "description": "Catalogue items with a description",
 "embedding_fields": ["blurb"],
 "properties": {
   "sku": {"type": "string"}, "qty": {"type": "integer"}, "price": {"type": "number"},
   "active": {"type": "boolean"}, "seen": {"type": "string", "format": "date-time"},
   "tags": {"type": "array", "items": {"type": "string"}},
   "meta": {"type": "object"}, "blurb": {"type": "string"},
   "dims": {"type": "object", "properties": {
     "w": {"type": "number"}, "unit": {"type": "string"},
     "marks": {"type": "array", "items": {"type": "integer"}}}}}}"#;

/// Reads a Parquet file with pyarrow: row count, column types and rows as JSON.
fn pyarrow(path: &Path) -> Value {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
meta = pq.ParquetFile(sys.argv[1]).metadata
codecs = sorted({meta.row_group(i).column(j).compression
                 for i in range(meta.num_row_groups) for j in range(meta.num_columns)})
rows = t.to_pylist()
for r in rows:
    for k, v in list(r.items()):
        if hasattr(v, "isoformat"):
            r[k] = v.isoformat()
print(json.dumps({"rows": t.num_rows, "row_groups": meta.num_row_groups, "codecs": codecs,
                  "types": {f.name: str(f.type) for f in t.schema}, "data": rows}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn setup() -> Rem {
    let rem = Rem::init();
    let schema = rem.write_file("item.json", ITEMS);
    rem.ok(&["schema", "add", schema.to_str().unwrap()]);
    let mut lines = String::new();
    for i in 0..30 {
        let mut record = json!({
            "sku": format!("S-{i:02}"), "qty": i, "price": i as f64 * 1.5,
            "active": i % 2 == 0, "seen": format!("2025-03-{:02}T10:00:00Z", 1 + i % 28),
            "tags": if i % 3 == 0 { json!(["a", "b"]) } else { json!([]) },
            "meta": {"color": "red", "n": i},
            "blurb": format!("item number {i} in the catalogue")
        });
        if i % 5 != 0 {
            record["dims"] = json!({"w": i, "unit": "cm", "marks": [i, 1]});
        }
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    let out = rem.run_with_stdin(&["insert", "item", "--batch"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = rem.json(&["lookup", "S-29"]);
    rem.ok(&["delete", gone[0]["id"].as_str().unwrap()]);
    rem
}

#[test]
fn parquet_types_values_compressions_and_filters() {
    let rem = setup();
    let dir = rem.home.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("items.parquet");
    rem.ok(&["export", "item", "--output", file.to_str().unwrap()]);
    let t = pyarrow(&file);
    assert_eq!(t["rows"], 29, "soft-deleted rows are not exported");
    let types = &t["types"];
    for (col, ty) in [
        ("id", "string"),
        ("created_at", "timestamp[us, tz=UTC]"),
        ("edges", "list<item: string>"),
        ("sku", "string"),
        ("qty", "int64"),
        ("price", "double"),
        ("active", "bool"),
        ("seen", "timestamp[us, tz=UTC]"),
        ("tags", "list<item: string>"),
        ("meta", "string"),
        // Objects whose schema declares their properties are structs.
        (
            "dims",
            "struct<w: double, unit: string, marks: list<item: int64>>",
        ),
    ] {
        assert_eq!(types[col], ty, "{col}: {types}");
    }
    assert!(types.get("embedding").is_none());
    assert!(types.get("properties").is_none());
    let row = t["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sku"] == "S-03")
        .unwrap()
        .clone();
    assert_eq!(row["qty"], 3);
    assert_eq!(row["price"], 4.5);
    assert_eq!(row["active"], false);
    assert_eq!(row["seen"], "2025-03-04T10:00:00+00:00");
    assert_eq!(row["tags"], json!(["a", "b"]));
    assert_eq!(
        serde_json::from_str::<Value>(row["meta"].as_str().unwrap()).unwrap(),
        json!({"color": "red", "n": 3})
    );
    assert_eq!(
        row["dims"],
        json!({"w": 3.0, "unit": "cm", "marks": [3, 1]})
    );
    let absent = t["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sku"] == "S-05")
        .unwrap();
    assert!(absent["dims"].is_null(), "{absent}");
    assert_eq!(t["codecs"], json!(["ZSTD"]));

    for (name, codec) in [
        ("snappy", "SNAPPY"),
        ("gzip", "GZIP"),
        ("brotli", "BROTLI"),
        ("lz4", "LZ4"), // LZ4_RAW, which pyarrow calls LZ4
        ("zstd", "ZSTD"),
        ("none", "UNCOMPRESSED"),
    ] {
        let f = dir.join(format!("c-{name}.parquet"));
        rem.ok(&[
            "export",
            "item",
            "-o",
            f.to_str().unwrap(),
            "--compression",
            name,
        ]);
        let t = pyarrow(&f);
        assert_eq!(t["rows"], 29);
        assert_eq!(t["codecs"], json!([codec]), "{name}");
    }

    // Filters, embeddings and row groups.
    let f = dir.join("some.parquet");
    let out = rem
        .command()
        .env("P8_PARQUET_ROW_GROUP_SIZE", "4")
        .args([
            "export",
            "item",
            "--output",
            f.to_str().unwrap(),
            "--where",
            "qty >= 10 AND active",
            "--include-embeddings",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = pyarrow(&f);
    assert_eq!(t["rows"], 10);
    assert_eq!(t["row_groups"], 3);
    assert_eq!(t["types"]["embedding"], "list<item: float>");
    for r in t["data"].as_array().unwrap() {
        assert!(r["qty"].as_i64().unwrap() >= 10 && r["active"] == true);
        let v = r["embedding"].as_array().unwrap();
        assert_eq!(v.len(), 384);
        let norm: f64 = v.iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-3, "unit vectors: {norm}");
    }
}

#[test]
fn csv_jsonl_all_and_bad_input() {
    let rem = setup();
    let dir = rem.home.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let csv = dir.join("items.csv");
    rem.ok(&["export", "item", "--output", csv.to_str().unwrap()]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut reader = csv_reader(&text);
    assert_eq!(reader.len(), 30, "header and 29 rows");
    let header = reader.remove(0);
    let tags = header.iter().position(|h| h == "tags").unwrap();
    let sku = header.iter().position(|h| h == "sku").unwrap();
    let s3 = reader.iter().find(|r| r[sku] == "S-03").unwrap();
    assert_eq!(s3[tags], r#"["a","b"]"#);

    // The file format from --file-format (the extension says nothing); --format is
    // what the summary is printed as.
    let jsonl = dir.join("items.data");
    let summary = rem.ok(&[
        "export",
        "item",
        "--output",
        jsonl.to_str().unwrap(),
        "--where",
        "qty < 5",
        "--file-format",
        "jsonl",
        "--format",
        "jsonl",
    ]);
    let summary: Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["rows"], 5);
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    let one = lines.iter().find(|l| l["sku"] == "S-01").unwrap();
    assert_eq!(
        one["dims"],
        json!({"w": 1.0, "unit": "cm", "marks": [1, 1]})
    );

    let all = dir.join("all");
    rem.ok(&["export", "--all", "--output", all.to_str().unwrap()]);
    let t = pyarrow(&all.join("item.parquet"));
    assert_eq!(t["rows"], 29);
    assert!(all.join("schemas.parquet").is_file());
    assert!(all.join("resources.parquet").is_file());

    // Bad input: one line, no file (and no temporary file) left behind.
    let target = dir.join("bad.parquet");
    let t = target.to_str().unwrap();
    let missing = rem.home.path().join("no/such/dir/x.parquet");
    for (args, want) in [
        (
            vec!["export", "item", "-o", missing.to_str().unwrap()],
            "does not exist",
        ),
        (
            vec!["export", "item", "-o", t, "--compression", "rar"],
            "unknown compression",
        ),
        (
            vec!["export", "item", "-o", t, "--where", "qty >"],
            "syntax",
        ),
        (
            vec!["export", "item", "-o", t, "--where", "nope = 1"],
            "nope",
        ),
        (vec!["export", "ghost", "-o", t], "ghost"),
        (
            vec![
                "export",
                "item",
                "-o",
                &csv.to_string_lossy(),
                "--compression",
                "gzip",
            ],
            "parquet only",
        ),
    ] {
        let err = rem.fails(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.contains("bad") || n.contains("partial")),
        "{left:?}"
    );
    assert!(!missing.parent().unwrap().exists());
}

/// All records of a CSV text, header included.
fn csv_reader(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}
