//! SQL benchmark: queries through `Database::sql` (our table providers over RocksDB)
//! against the same queries in DataFusion over an in-memory Arrow table (`MemTable`)
//! holding the same rows, in the same process; and `ORDER BY embedding.cosine(...)`
//! against `Database::search` for the same query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{Database, EmbeddingOptions, OpenOptions, SearchOptions};
use rem_sql::datafusion::datasource::MemTable;
use rem_sql::datafusion::prelude::{SessionConfig, SessionContext};
use rem_sql::Sql;
use serde_json::json;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// Runs `f` `reps` times; returns (p50 ms, p99 ms, rows of the last run).
fn time(reps: usize, mut f: impl FnMut() -> Result<usize>) -> Result<(f64, f64, usize)> {
    let mut lat = Vec::with_capacity(reps);
    let mut rows = 0;
    for _ in 0..reps {
        let t = Instant::now();
        rows = f()?;
        lat.push(t.elapsed());
    }
    Ok((pct(&mut lat, 0.5), pct(&mut lat, 0.99), rows))
}

fn rem_rows(db: &Database, sql: &str) -> Result<usize> {
    let mut rows = 0;
    for b in db.sql(sql)? {
        rows += b?.num_rows();
    }
    Ok(rows)
}

/// A database holding the `items` table of `n` rows (~250 bytes each; indexed
/// `category`, `code` (10 rows per value) and `ts`); also used by the export benchmark.
pub(crate) fn load_items(n: usize) -> Result<(tempfile::TempDir, Database, Duration)> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("rem"),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "name": "items", "key_field": "name", "indexed_fields": ["category", "code", "ts"],
        "properties": {
            "name": {"type": "string"}, "category": {"type": "string"},
            "code": {"type": "string"}, "score": {"type": "integer"},
            "price": {"type": "number"}, "ts": {"type": "string", "format": "date-time"},
            "note": {"type": "string"}
        }
    }))?;
    let mut rng = StdRng::seed_from_u64(42);
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let records = chunk
            .iter()
            .map(|&i| {
                json!({
                    "name": format!("item-{i:08}"),
                    "category": format!("cat-{:03}", i % 100),
                    "code": format!("code-{:07}", i / 10),
                    "score": rng.gen_range(0..1_000_000),
                    "price": f64::from(rng.gen_range(0..100_000)) / 100.0,
                    // One record per minute from 2024-01-01.
                    "ts": (chrono::DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default()
                        + chrono::Duration::minutes(i as i64)).to_rfc3339(),
                    "note": "lorem ipsum dolor sit amet, consectetur adipiscing elit",
                })
            })
            .collect();
        db.insert_batch("items", records)?;
    }
    Ok((dir, db, t.elapsed()))
}

pub(crate) fn run(n: usize, docs: usize, reps: usize) -> Result<()> {
    let (_dir, db, load) = load_items(n)?;
    println!(
        "SQL benchmark: {n} rows loaded in {:.1} s; {reps} runs per query, single client",
        load.as_secs_f64()
    );

    // The reference: the same rows, read once through our provider, in a MemTable.
    let batches: Vec<_> = db
        .sql("SELECT * FROM items")?
        .collect::<rem_sql::Result<Vec<_>>>()?;
    let schema = batches[0].schema();
    let mem = MemTable::try_new(schema, vec![batches])?;
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    ctx.register_table("items", Arc::new(mem))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let mem_rows = |sql: &str| -> Result<usize> {
        rt.block_on(async {
            let batches = ctx.sql(sql).await?.collect().await?;
            Ok(batches.iter().map(|b| b.num_rows()).sum())
        })
    };

    let queries = [
        ("indexed equality (10 rows)", "SELECT * FROM items WHERE code = 'code-0004321'"),
        ("key lookup (1 row)", "SELECT * FROM items WHERE name = 'item-00043210'"),
        (
            "range on indexed timestamp (1% of rows)",
            "SELECT COUNT(*), AVG(price) FROM items WHERE ts >= '2024-01-20T00:00:00Z' AND ts < '2024-01-20T16:40:00Z'",
        ),
        (
            "full-scan GROUP BY aggregate",
            "SELECT category, COUNT(*), AVG(price), MAX(score) FROM items GROUP BY category",
        ),
        ("full-scan filter on unindexed field", "SELECT COUNT(*) FROM items WHERE score < 10000"),
    ];
    println!("\n| query | rows | rem p50 ms | rem p99 ms | MemTable p50 ms | rem / MemTable |");
    println!("|---|---|---|---|---|---|");
    for (what, sql) in queries {
        let heavy = sql.contains("GROUP BY") || sql.contains("score <");
        let r = if heavy { reps.min(20) } else { reps };
        let (p50, p99, rows) = time(r, || rem_rows(&db, sql)).with_context(|| sql.to_string())?;
        let (m50, _, mrows) = time(r, || mem_rows(sql))?;
        anyhow::ensure!(
            rows == mrows,
            "{sql}: {rows} rows vs {mrows} in the MemTable"
        );
        println!(
            "| {what} | {rows} | {p50:.3} | {p99:.3} | {m50:.3} | {:.2} |",
            p50 / m50
        );
    }
    for (_, sql) in &queries {
        let mut out = Vec::new();
        rem_sql::write_batches(
            db.sql(&format!("EXPLAIN {sql}"))?,
            rem_sql::OutputFormat::Jsonl,
            &mut out,
        )?;
        let text = String::from_utf8_lossy(&out);
        if let Some(at) = text.find("RemScan: ") {
            let scan = &text[at..];
            println!(
                "  {}",
                &scan[..scan.find(", columns").unwrap_or(scan.len())]
            );
        }
    }

    semantic(docs, reps)
}

/// `ORDER BY embedding.cosine(...) LIMIT 10` vs `Database::search`, on `docs` documents
/// embedded by the OpenAI-compatible provider served on 127.0.0.1 (rem-testkit).
fn semantic(docs: usize, reps: usize) -> Result<()> {
    let server = rem_testkit::start(rem_testkit::Behaviour {
        dims: 384,
        ..Default::default()
    });
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("rem"),
        &OpenOptions {
            create: true,
            embedding: EmbeddingOptions {
                default_model: "openai:bench-embed".into(),
                openai_base_url: server.base_url.clone(),
                batch_size: 256,
                ..EmbeddingOptions::default()
            },
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "name": "docs", "key_field": "slug", "indexed_fields": ["category"],
        "embedding_fields": ["body"],
        "properties": {"slug": {"type": "string"}, "category": {"type": "string"}, "body": {"type": "string"}}
    }))?;
    for chunk in (0..docs).collect::<Vec<_>>().chunks(2000) {
        db.insert_batch(
            "docs",
            chunk
                .iter()
                .map(|i| json!({"slug": format!("doc-{i}"), "category": format!("c{}", i % 10), "body": format!("document body number {i}")}))
                .collect(),
        )?;
    }
    println!("\n{docs} documents with 384-dim vectors (mock provider on 127.0.0.1)");
    println!("\n| query | rows | p50 ms | p99 ms | vs Database::search |");
    println!("|---|---|---|---|---|");
    let mut i = 0usize;
    let (s50, s99, srows) = time(reps, || {
        i += 1;
        let q = format!("document body number {}", i % docs);
        Ok(db
            .search(
                Some("docs"),
                &q,
                &SearchOptions {
                    top_k: 10,
                    ..Default::default()
                },
            )?
            .hits
            .len())
    })?;
    println!("| Database::search top 10 | {srows} | {s50:.3} | {s99:.3} | 1.00 |");
    let (c50, c99, crows) = time(reps, || rem_rows(&db, "SELECT 1"))?;
    println!(
        "| SQL SELECT 1 (fixed cost of any query) | {crows} | {c50:.3} | {c99:.3} | {:.2} |",
        c50 / s50
    );
    let mut i = 0usize;
    let (q50, q99, qrows) = time(reps, || {
        i += 1;
        rem_rows(
            &db,
            &format!(
                "SELECT slug, _score FROM docs ORDER BY embedding.cosine('document body number {}') DESC LIMIT 10",
                i % docs
            ),
        )
    })?;
    println!(
        "| SQL ORDER BY embedding.cosine(...) DESC LIMIT 10 | {qrows} | {q50:.3} | {q99:.3} | {:.2} |",
        q50 / s50
    );
    let mut i = 0usize;
    let (f50, f99, frows) = time(reps, || {
        i += 1;
        rem_rows(
            &db,
            &format!(
                "SEARCH docs 'document body number {}' WHERE category = 'c3' LIMIT 10",
                i % docs
            ),
        )
    })?;
    println!(
        "| SQL SEARCH ... WHERE category = 'c3' LIMIT 10 | {frows} | {f50:.3} | {f99:.3} | {:.2} |",
        f50 / s50
    );
    Ok(())
}
