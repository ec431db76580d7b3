//! Embedding throughput of the local model (all-MiniLM-L6-v2 by default): texts/s for
//! short (~20 tokens) and long (~200 tokens) texts at batch 32, and inserting 1,000
//! documents end to end, with the share of time spent outside the model (the same
//! texts embedded directly, in the same process, are the reference).

use std::time::Instant;

use anyhow::{Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{Database, EmbeddingOptions, OpenOptions};
use rem_embed::{EmbeddingProvider, LocalBert, LocalEngine};
use serde_json::json;

const WORDS: [&str; 24] = [
    "database",
    "memory",
    "agent",
    "vector",
    "search",
    "index",
    "rocks",
    "storage",
    "query",
    "schema",
    "record",
    "graph",
    "edge",
    "token",
    "model",
    "batch",
    "latency",
    "tenant",
    "replica",
    "snapshot",
    "column",
    "family",
    "embedding",
    "cluster",
];

/// A sentence of `words` words (a word is one or two tokens for this tokenizer).
fn text(rng: &mut StdRng, words: usize) -> String {
    (0..words)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn throughput(model: &LocalBert, texts: &[String], batch: usize) -> Result<f64> {
    let t = Instant::now();
    for chunk in texts.chunks(batch) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        model.embed(&refs)?;
    }
    Ok(texts.len() as f64 / t.elapsed().as_secs_f64())
}

pub(crate) fn run(
    model: &str,
    models_dir: Option<std::path::PathBuf>,
    candle_only: bool,
    docs: usize,
) -> Result<()> {
    let options = EmbeddingOptions {
        default_model: model.to_string(),
        ..EmbeddingOptions::default()
    };
    let models_dir = models_dir.unwrap_or_else(|| options.models_dir.clone());
    let t = Instant::now();
    let location = rem_embed::find_model_dir(model, &models_dir)
        .with_context(|| format!("loading {model} from {}", models_dir.display()))?;
    let engine = if candle_only {
        LocalEngine::Candle
    } else {
        LocalEngine::Auto
    };
    let bert = LocalBert::load_dir_with(model, location.dir(), engine)?;
    println!(
        "embedding benchmark: local:{model} ({} engine) loaded in {:.2} s; {} threads available",
        bert.engine_name(),
        t.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut rng = StdRng::seed_from_u64(3);
    let short: Vec<String> = (0..1024).map(|_| text(&mut rng, 16)).collect();
    let long: Vec<String> = (0..256).map(|_| text(&mut rng, 170)).collect();
    let tokens = |t: &str| bert.token_count(t);
    let avg = |v: &[String]| v.iter().map(|t| tokens(t)).sum::<usize>() as f64 / v.len() as f64;
    // Warm-up (first call allocates).
    throughput(&bert, &short[..64], 32)?;
    println!("\n| texts | avg tokens | batch | texts/s |");
    println!("|---|---|---|---|");
    let mut rates = Vec::new();
    for (name, set) in [("short", &short), ("long", &long)] {
        let tps = throughput(&bert, set, 32)?;
        rates.push(tps);
        println!("| {name} | {:.0} | 32 | {tps:.0} |", avg(set));
    }
    // Mixed lengths show what sorting by length inside a batch saves.
    let mut mixed: Vec<String> = short[..512].to_vec();
    mixed.extend(long[..64].iter().cloned());
    let mut shuffle = StdRng::seed_from_u64(9);
    for i in (1..mixed.len()).rev() {
        mixed.swap(i, shuffle.gen_range(0..=i));
    }
    let tps = throughput(&bert, &mixed, 32)?;
    println!(
        "| mixed (8:1 short:long) | {:.0} | 32 | {tps:.0} |",
        avg(&mixed)
    );
    if bert.engine_name() != "candle-f32" {
        // Reference: the same texts through candle (f32), the engine on other CPUs.
        let candle = LocalBert::load_dir_with(model, location.dir(), LocalEngine::Candle)?;
        throughput(&candle, &short[..64], 32)?;
        for ((name, set), rate) in [("short", &short), ("long", &long)].into_iter().zip(&rates) {
            let tps = throughput(&candle, set, 32)?;
            println!(
                "| {name}, candle f32 (reference) | {:.0} | 32 | {tps:.0} ({:.2}x slower) |",
                avg(set),
                rate / tps
            );
        }
    }

    // End to end: insert `docs` documents with one embedded field, batch 32.
    let bodies: Vec<String> = (0..docs).map(|_| text(&mut rng, 16)).collect();
    let t = Instant::now();
    for chunk in bodies.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        bert.embed(&refs)?;
    }
    let model_only = t.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let db = Database::open(
        dir.path().join("rem"),
        &OpenOptions {
            create: true,
            embedding: EmbeddingOptions {
                models_dir: models_dir.clone(),
                ..options
            },
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "name": "notes", "key_field": "slug", "embedding_fields": ["body"],
        "properties": {"slug": {"type": "string"}, "body": {"type": "string"}}
    }))?;
    let records: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"slug": format!("n-{i}"), "body": b}))
        .collect();
    let t = Instant::now();
    for chunk in records.chunks(250) {
        db.insert_batch("notes", chunk.to_vec())?;
    }
    let end_to_end = t.elapsed().as_secs_f64();
    println!(
        "\ninsert {docs} documents with embedding (batches of 250 records, provider batch 32): {end_to_end:.2} s \
         ({:.0} docs/s); the same texts through the model alone: {model_only:.2} s; \
         time outside the model: {:.1}%",
        docs as f64 / end_to_end,
        100.0 * (end_to_end - model_only).max(0.0) / end_to_end
    );
    Ok(())
}
