//! A generated `items` table (and a small `shops` table to join), the same rows for
//! every test, and helpers to run SQL and render results as strings.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::Database;
use rem_sql::arrow::array::Array;
use rem_sql::arrow::record_batch::RecordBatch;
use rem_sql::arrow::util::display::{ArrayFormatter, FormatOptions};
use rem_sql::Sql;
use serde_json::{json, Value};

pub(crate) const CATEGORIES: [&str; 5] = ["books", "games", "music", "tools", "toys"];
pub(crate) const SHOPS: [&str; 4] = ["north", "south", "east", "west"];

/// One generated item, as inserted (also loaded into SQLite by the differential test).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) name: String,
    pub(crate) category: String,
    pub(crate) price: Option<f64>,
    pub(crate) qty: i64,
    pub(crate) active: bool,
    pub(crate) shop: String,
    pub(crate) tags: Vec<String>,
    pub(crate) sold_at: String,
    pub(crate) deleted: bool,
}

pub(crate) fn items(n: usize) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| {
            let tags: Vec<String> = ["red", "blue", "green", "sale"]
                .iter()
                .filter(|_| rng.gen_bool(0.4))
                .map(|t| t.to_string())
                .collect();
            Item {
                name: format!("item-{i:04}"),
                category: CATEGORIES[rng.gen_range(0..CATEGORIES.len())].to_string(),
                // Two decimals, so sums are exact enough to compare as text.
                price: (!rng.gen_bool(0.1)).then(|| f64::from(rng.gen_range(100..10_000)) / 4.0),
                qty: rng.gen_range(0..50),
                active: rng.gen_bool(0.7),
                shop: SHOPS[rng.gen_range(0..SHOPS.len())].to_string(),
                tags,
                sold_at: format!(
                    "2024-{:02}-{:02}T{:02}:00:00Z",
                    rng.gen_range(1..13),
                    rng.gen_range(1..29),
                    rng.gen_range(0..24)
                ),
                deleted: i % 17 == 5,
            }
        })
        .collect()
}

pub(crate) fn item_json(it: &Item) -> Value {
    let mut v = json!({
        "name": it.name, "category": it.category, "qty": it.qty, "active": it.active,
        "shop": it.shop, "tags": it.tags, "sold_at": it.sold_at,
        "meta": {"origin": if it.qty % 2 == 0 { "even" } else { "odd" }, "rank": it.qty % 7},
    });
    if let Some(p) = it.price {
        v["price"] = json!(p);
    }
    if it.qty % 10 == 3 {
        v["note"] = json!("not in the schema");
    }
    v
}

fn schemas(db: &Database) {
    db.register_schema(json!({
        "name": "items", "key_field": "name",
        "indexed_fields": ["category", "qty", "sold_at", "tags"],
        "description": "Things for sale.",
        "properties": {
            "name": {"type": "string"},
            "category": {"type": "string"},
            "price": {"type": "number"},
            "qty": {"type": "integer"},
            "active": {"type": "boolean"},
            "shop": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "sold_at": {"type": "string", "format": "date-time"},
            "meta": {"type": "object"}
        }
    }))
    .unwrap();
    db.register_schema(json!({
        "name": "shops", "key_field": "code",
        "description": "Shops.",
        "properties": {"code": {"type": "string"}, "city": {"type": "string"}, "size": {"type": "integer"}}
    }))
    .unwrap();
}

/// A database with `items` (n rows, every 17th soft-deleted) and `shops`.
pub(crate) fn db_with_items(n: usize) -> (Database, Vec<Item>) {
    let db = Database::in_memory().unwrap();
    schemas(&db);
    let data = items(n);
    let ids = db
        .insert_batch("items", data.iter().map(item_json).collect())
        .unwrap();
    for (id, it) in ids.iter().zip(&data) {
        if it.deleted {
            db.delete(id).unwrap();
        }
    }
    shops(&db);
    (db, data)
}

/// The small hand-written data set the `.slt` files are written against: seven items
/// (one soft-deleted) and three shops.
pub(crate) fn db_small() -> Database {
    let db = Database::in_memory().unwrap();
    schemas(&db);
    let rows = [
        json!({"name": "apple", "category": "fruit", "price": 1.5, "qty": 10, "active": true, "shop": "north", "tags": ["red", "sale"], "sold_at": "2024-01-10T08:00:00Z", "meta": {"origin": "IT", "rank": 2}, "edges": ["banana", "shops:north"]}),
        json!({"name": "banana", "category": "fruit", "price": 0.25, "qty": 30, "active": true, "shop": "south", "tags": ["yellow"], "sold_at": "2024-02-01T12:30:00Z", "meta": {"origin": "EC", "rank": 1}}),
        json!({"name": "cherry", "category": "fruit", "price": 4.0, "qty": 0, "active": false, "shop": "north", "tags": ["red"], "sold_at": "2024-03-15T00:00:00Z", "edges": ["banana"]}),
        json!({"name": "drill", "category": "tools", "price": 89.99, "qty": 2, "active": true, "shop": "east", "tags": [], "sold_at": "2023-12-24T18:00:00Z", "note": "outside the schema"}),
        json!({"name": "Eraser", "category": "office", "qty": 100, "active": true, "shop": "west", "tags": ["sale"], "sold_at": "2024-01-10T09:00:00+01:00"}),
        json!({"name": "file", "category": "tools", "price": 12.0, "qty": 5, "active": false, "shop": "east", "tags": ["blue", "sale"]}),
        json!({"name": "gone", "category": "fruit", "price": 9.0, "qty": 1, "active": true, "shop": "south", "tags": ["red"], "sold_at": "2024-01-01T00:00:00Z", "edges": ["banana"]}),
    ];
    let ids = db.insert_batch("items", rows.to_vec()).unwrap();
    db.delete(&ids[6]).unwrap();
    shops(&db);
    db
}

fn shops(db: &Database) {
    // "west" has no shop row: LEFT JOIN keeps its items with NULLs.
    for (code, city, size) in [
        ("north", "Oslo", 3),
        ("south", "Rome", 5),
        ("east", "Kyiv", 2),
    ] {
        db.insert("shops", json!({"code": code, "city": city, "size": size}))
            .unwrap();
    }
}

/// Runs `sql` and returns all batches.
pub(crate) fn run(db: &Database, sql: &str) -> Vec<RecordBatch> {
    db.sql(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect_all()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row as strings (NULL for nulls; floats with up to 6 decimals).
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        if c.is_null(r) {
                            return "NULL".to_string();
                        }
                        let s = f.value(r).to_string();
                        match s.parse::<f64>() {
                            Ok(x) if s.contains('.') => format_float(x),
                            _ => s,
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

pub(crate) fn format_float(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Rows of `sql` as strings.
pub(crate) fn query(db: &Database, sql: &str) -> Vec<Vec<String>> {
    rows(&run(db, sql))
}

/// The EXPLAIN text of `sql`.
pub(crate) fn explain(db: &Database, sql: &str) -> String {
    query(db, &format!("EXPLAIN {sql}"))
        .into_iter()
        .map(|r| r.join(" | "))
        .collect::<Vec<_>>()
        .join("\n")
}
