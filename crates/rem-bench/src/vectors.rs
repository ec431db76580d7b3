//! `rem-bench vectors`: the Rust side of the Python package's overhead figure. It runs
//! what `python/bench/peers.py` runs through `rem_db` — batch insert with the caller's
//! vectors, top-10 search by vector, get by id — on the same vectors (written by that
//! script as raw little-endian f32), through the engine's API, and prints one JSON line.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rem::{Database, EntityId, OpenOptions, SearchOptions};
use serde_json::{json, Value};

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len().is_multiple_of(4),
        "{} is not f32 data",
        path.display()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn run(data: &Path, dims: usize) -> Result<()> {
    let vectors = read_f32(&data.join("vectors.f32"))?;
    let queries = read_f32(&data.join("queries.f32"))?;
    ensure!(
        dims > 0 && vectors.len() % dims == 0,
        "vectors are not {dims}-dimensional"
    );
    let n = vectors.len() / dims;
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("db"),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "title": "items", "type": "object", "key_field": "key",
        "indexed_fields": ["category"], "embedding_fields": ["key"],
        "embedding_provider": format!("{}{dims}", rem::EXTERNAL),
        "properties": {"key": {"type": "string"}, "category": {"type": "string"}}
    }))?;
    let start = Instant::now();
    let mut ids: Vec<EntityId> = Vec::with_capacity(n);
    for s in (0..n).step_by(1000) {
        let e = (s + 1000).min(n);
        let records: Vec<Value> = (s..e)
            .map(|i| json!({"key": format!("k{i}"), "category": format!("c{}", i % 100)}))
            .collect();
        let vs: Vec<Vec<f32>> = (s..e)
            .map(|i| vectors[i * dims..(i + 1) * dims].to_vec())
            .collect();
        ids.extend(db.insert_batch_with_vectors("items", records, vs)?);
    }
    let insert_s = start.elapsed().as_secs_f64();
    let options = SearchOptions {
        top_k: 10,
        ..SearchOptions::default()
    };
    let nq = queries.len() / dims;
    for q in 0..nq.min(5) {
        db.search_by_vector("items", &queries[q * dims..(q + 1) * dims], &options)?;
    }
    let mut search = Vec::with_capacity(nq);
    for q in 0..nq {
        let t = Instant::now();
        let r = db.search_by_vector("items", &queries[q * dims..(q + 1) * dims], &options)?;
        search.push(t.elapsed().as_secs_f64());
        ensure!(r.hits.len() == 10, "short result");
    }
    let mut gets = Vec::with_capacity(500);
    for j in 0..500 {
        let id = ids[(j * 7919) % n];
        let t = Instant::now();
        let e = db.get(&id)?;
        gets.push(t.elapsed().as_secs_f64());
        ensure!(e.is_some(), "missing entity");
    }
    println!(
        "{}",
        json!({
            "n": n,
            "insert_per_s": n as f64 / insert_s,
            "search_p50_ms": p50(search) * 1e3,
            "get_p50_us": p50(gets) * 1e6,
        })
    );
    Ok(())
}
