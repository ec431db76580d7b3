//! `rem-bench encryption`: one workload against a plain and an encrypted database, side
//! by side in one run — batch insert, get by id, indexed lookup, full-scan SQL and
//! search by vector — and the open time with the password (Argon2id, default cost).

use std::time::Instant;

use anyhow::{ensure, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rem::{
    Database, EntityId, Filter, KdfParams, OpenOptions, Password, ScanOptions, SearchOptions,
};
use rem_sql::Sql;
use serde_json::{json, Value};

const DIMS: usize = 64;
const BATCH: usize = 1000;

struct Figures {
    insert: f64,
    get: f64,
    lookup: f64,
    scan: f64,
    search: f64,
    open_ms: f64,
    disk_mb: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn run_one(
    path: &std::path::Path,
    password: Option<&str>,
    records: &[Value],
    vectors: &[Vec<f32>],
    gets: usize,
) -> Result<Figures> {
    let mut options = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    options.store.password = password.map(Password::new);
    options.store.kdf = KdfParams::default();
    let db = Database::open(path, &options)?;
    ensure!(db.is_encrypted() == password.is_some(), "encryption state");
    db.register_schema(json!({
        "name": "bench", "key_field": "name", "indexed_fields": ["category"],
        "embedding_fields": ["name"], "embedding_provider": format!("{}{DIMS}", rem::EXTERNAL),
        "properties": {
            "name": {"type": "string"}, "category": {"type": "string"},
            "score": {"type": "integer"}, "note": {"type": "string"}
        }
    }))?;
    let n = records.len();
    let t = Instant::now();
    let mut ids: Vec<EntityId> = Vec::with_capacity(n);
    for (r, v) in records.chunks(BATCH).zip(vectors.chunks(BATCH)) {
        ids.extend(db.insert_batch_with_vectors("bench", r.to_vec(), v.to_vec())?);
    }
    let insert = n as f64 / t.elapsed().as_secs_f64();

    let mut rng = StdRng::seed_from_u64(7);
    let t = Instant::now();
    for _ in 0..gets {
        std::hint::black_box(db.get_in("bench", &ids[rng.gen_range(0..n)])?);
    }
    let get = gets as f64 / t.elapsed().as_secs_f64();

    let lookups = gets / 10;
    let t = Instant::now();
    for i in 0..lookups {
        let c = format!("c{}", i % 1000);
        let r = db.scan(
            "bench",
            &Filter::eq("category", c.as_str()),
            &ScanOptions::default(),
        )?;
        ensure!(!r.entities.is_empty(), "empty lookup");
    }
    let lookup = lookups as f64 / t.elapsed().as_secs_f64();

    let mut scans = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let batches = db
            .sql("SELECT COUNT(*) AS n FROM bench WHERE note LIKE '%7%'")?
            .collect_all()?;
        std::hint::black_box(batches);
        scans.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let scan = median(scans);

    let options = SearchOptions {
        top_k: 10,
        ..SearchOptions::default()
    };
    db.search_by_vector("bench", &vectors[0], &options)?;
    let queries = 500.min(n);
    let t = Instant::now();
    for q in vectors.iter().take(queries) {
        let r = db.search_by_vector("bench", q, &options)?;
        ensure!(r.hits.len() == 10, "short result");
    }
    let search = queries as f64 / t.elapsed().as_secs_f64();
    drop(db);

    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let db = Database::open(path, &options_for(password))?;
        std::hint::black_box(db.get_in("bench", &ids[0])?);
        opens.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Figures {
        insert,
        get,
        lookup,
        scan,
        search,
        open_ms: median(opens),
        disk_mb: dir_bytes(path) as f64 / 1e6,
    })
}

fn options_for(password: Option<&str>) -> OpenOptions {
    let mut options = OpenOptions::default();
    options.store.password = password.map(Password::new);
    options
}

pub(crate) fn run(n: usize, gets: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(42);
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("item-{i:07}"),
                "category": format!("c{}", i % 1000),
                "score": rng.gen_range(0..1000),
                "note": format!("note {} about item {i} with some words to fill it", rng.gen_range(0..100000)),
            })
        })
        .collect();
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..DIMS).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect();
    println!(
        "encryption benchmark: {n} records (~{} bytes, {DIMS}-dim vectors), {gets} gets, {} lookups; Argon2id {:?}",
        records[0].to_string().len(),
        gets / 10,
        KdfParams::default()
    );
    let plain = run_one(&dir.path().join("plain"), None, &records, &vectors, gets)?;
    let sealed = run_one(
        &dir.path().join("sealed"),
        Some("bench password"),
        &records,
        &vectors,
        gets,
    )?;
    println!("\n| operation | plain | encrypted | encrypted / plain |");
    println!("|---|---|---|---|");
    for (what, unit, p, s) in [
        ("batch insert", "records/s", plain.insert, sealed.insert),
        ("get by id", "gets/s", plain.get, sealed.get),
        ("indexed lookup", "lookups/s", plain.lookup, sealed.lookup),
        ("full-scan SQL", "rows/s", plain.scan, sealed.scan),
        (
            "search by vector (top 10)",
            "queries/s",
            plain.search,
            sealed.search,
        ),
    ] {
        println!("| {what} | {p:.0} {unit} | {s:.0} {unit} | {:.2} |", s / p);
    }
    println!(
        "| open + first get | {:.1} ms | {:.1} ms | — |",
        plain.open_ms, sealed.open_ms
    );
    println!(
        "| disk | {:.1} MB | {:.1} MB | {:.2} |",
        plain.disk_mb,
        sealed.disk_mb,
        sealed.disk_mb / plain.disk_mb
    );
    Ok(())
}
