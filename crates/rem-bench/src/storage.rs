//! Storage benchmark: the engine against raw RocksDB writing and reading the same bytes.
//!
//! The raw reference stores each record's JSON under its 16-byte id plus two index keys
//! per record (the same number of indexed fields), with the same RocksDB options the
//! engine uses (LZ4, bloom filters, 128 MB block cache), so the ratio is what the engine
//! adds: validation, id derivation, the key index, the id map, the change log, encoding.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{Database, EntityId, Filter, OpenOptions, ScanOptions};
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options, WriteBatch, DB};
use serde_json::{json, Value};

const BATCH: usize = 1000;

fn record(i: usize, rng: &mut StdRng) -> Value {
    // ~200 bytes of JSON with two indexed fields: `category` (100 values) and
    // `code` (one value per 10 records, so an equality lookup returns 10 rows).
    json!({
        "name": format!("item-{i:08}"),
        "category": format!("cat-{:03}", i % 100),
        "code": format!("code-{:07}", i / 10),
        "score": rng.gen_range(0..1_000_000),
        "note": "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore",
    })
}

fn raw_db(path: &std::path::Path) -> Result<DB> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(128 << 20));
    table.set_bloom_filter(10.0, false);
    table.set_format_version(5);
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_write_buffer_size(64 << 20);
    Ok(DB::open(&opts, path)?)
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn pct(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(i).copied().unwrap_or_default()
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Line {
    what: &'static str,
    engine: f64,
    raw: f64,
    unit: &'static str,
    extra: String,
}

pub(crate) fn run(n: usize, single: usize, gets: usize, lookups: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(42);
    let records: Vec<Value> = (0..n).map(|i| record(i, &mut rng)).collect();
    let avg_bytes = records.iter().map(|r| r.to_string().len()).sum::<usize>() / n.max(1);
    println!("storage benchmark: {n} records of ~{avg_bytes} bytes, 2 indexed fields, batches of {BATCH}");

    let db = Database::open(
        dir.path().join("rem"),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?;
    db.register_schema(json!({
        "name": "bench", "key_field": "name", "indexed_fields": ["category", "code"],
        "properties": {
            "name": {"type": "string"}, "category": {"type": "string"}, "code": {"type": "string"},
            "score": {"type": "integer"}, "note": {"type": "string"}
        },
        "required": ["name"]
    }))?;
    let raw = raw_db(&dir.path().join("raw"))?;
    let mut lines = Vec::new();

    // 1. Batch insert.
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for chunk in records.chunks(BATCH) {
        ids.extend(db.insert_batch("bench", chunk.to_vec())?);
    }
    let engine_rate = n as f64 / t.elapsed().as_secs_f64();
    let encoded: Vec<(EntityId, Vec<u8>, String, String)> = records
        .iter()
        .zip(&ids)
        .map(|(r, id)| {
            (
                *id,
                r.to_string().into_bytes(),
                r["category"].as_str().unwrap_or("").to_string(),
                r["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let t = Instant::now();
    for chunk in encoded.chunks(BATCH) {
        let mut b = WriteBatch::default();
        for (id, bytes, cat, code) in chunk {
            b.put(id.as_bytes(), bytes);
            b.put([b"i1", cat.as_bytes(), id.as_bytes()].concat(), b"");
            b.put([b"i2", code.as_bytes(), id.as_bytes()].concat(), b"");
        }
        raw.write(b)?;
    }
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();
    lines.push(Line {
        what: "batch insert",
        engine: engine_rate,
        raw: raw_rate,
        unit: "records/s",
        extra: String::new(),
    });

    // 2. Single inserts, one commit each (new keys).
    let singles: Vec<Value> = (n..n + single).map(|i| record(i, &mut rng)).collect();
    let mut lat = Latencies(Vec::with_capacity(single));
    let t = Instant::now();
    for r in &singles {
        let s = Instant::now();
        db.insert("bench", r.clone())?;
        lat.0.push(s.elapsed());
    }
    let engine_rate = single as f64 / t.elapsed().as_secs_f64();
    let (p50, p99) = (lat.pct(0.5), lat.pct(0.99));
    let mut raw_lat = Latencies(Vec::with_capacity(single));
    let t = Instant::now();
    for (i, r) in singles.iter().enumerate() {
        let s = Instant::now();
        let key = EntityId::from_key("raw", "bench", &i.to_string());
        let mut b = WriteBatch::default();
        b.put(key.as_bytes(), r.to_string().as_bytes());
        b.put(
            [
                b"i1",
                r["category"].as_str().unwrap_or("").as_bytes(),
                key.as_bytes(),
            ]
            .concat(),
            b"",
        );
        b.put(
            [
                b"i2",
                r["code"].as_str().unwrap_or("").as_bytes(),
                key.as_bytes(),
            ]
            .concat(),
            b"",
        );
        raw.write(b)?;
        raw_lat.0.push(s.elapsed());
    }
    let raw_rate = single as f64 / t.elapsed().as_secs_f64();
    lines.push(Line {
        what: "single insert",
        engine: engine_rate,
        raw: raw_rate,
        unit: "records/s",
        extra: format!(
            "engine p50 {:.1} µs p99 {:.1} µs; raw p50 {:.1} µs",
            us(p50),
            us(p99),
            us(raw_lat.pct(0.5))
        ),
    });

    // 3. Get by id, random order, single thread.
    let picks: Vec<usize> = (0..gets).map(|_| rng.gen_range(0..n)).collect();
    for (label, with_table) in [
        ("get by id (table known)", true),
        ("get by id (bare id)", false),
    ] {
        let mut lat = Latencies(Vec::with_capacity(gets));
        let t = Instant::now();
        for &i in &picks {
            let s = Instant::now();
            let e = if with_table {
                db.get_in("bench", &ids[i])?
            } else {
                db.get(&ids[i])?
            };
            std::hint::black_box(e);
            lat.0.push(s.elapsed());
        }
        let engine_rate = gets as f64 / t.elapsed().as_secs_f64();
        let (p50, p99) = (lat.pct(0.5), lat.pct(0.99));
        let mut raw_lat = Latencies(Vec::with_capacity(gets));
        let t = Instant::now();
        for &i in &picks {
            let s = Instant::now();
            let v = raw.get(ids[i].as_bytes())?;
            // The raw reference parses the JSON too, as a caller of raw RocksDB would.
            let parsed: Option<Value> = v.and_then(|b| serde_json::from_slice(&b).ok());
            std::hint::black_box(parsed);
            raw_lat.0.push(s.elapsed());
        }
        let raw_rate = gets as f64 / t.elapsed().as_secs_f64();
        lines.push(Line {
            what: label,
            engine: engine_rate,
            raw: raw_rate,
            unit: "gets/s",
            extra: format!(
                "engine p50 {:.2} µs p99 {:.2} µs; raw p50 {:.2} µs p99 {:.2} µs",
                us(p50),
                us(p99),
                us(raw_lat.pct(0.5)),
                us(raw_lat.pct(0.99))
            ),
        });
    }

    // 4. Indexed equality lookup returning 10 rows.
    let codes: Vec<String> = (0..lookups)
        .map(|_| format!("code-{:07}", rng.gen_range(0..n / 10)))
        .collect();
    let mut lat = Latencies(Vec::with_capacity(lookups));
    let mut rows = 0usize;
    let t = Instant::now();
    for c in &codes {
        let s = Instant::now();
        let r = db.scan(
            "bench",
            &Filter::eq("code", c.as_str()),
            &ScanOptions::default(),
        )?;
        rows += r.entities.len();
        lat.0.push(s.elapsed());
    }
    let engine_rate = lookups as f64 / t.elapsed().as_secs_f64();
    let (p50, p99) = (lat.pct(0.5), lat.pct(0.99));
    let mut raw_lat = Latencies(Vec::with_capacity(lookups));
    let mut raw_rows = 0usize;
    let t = Instant::now();
    for c in &codes {
        let s = Instant::now();
        let prefix = [b"i2", c.as_bytes()].concat();
        let keys: Vec<Vec<u8>> = raw
            .prefix_iterator(&prefix)
            .map_while(|kv| kv.ok())
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k[k.len() - 16..].to_vec())
            .collect();
        for v in raw.multi_get(&keys).into_iter().flatten().flatten() {
            let parsed: Option<Value> = serde_json::from_slice(&v).ok();
            raw_rows += parsed.is_some() as usize;
        }
        raw_lat.0.push(s.elapsed());
    }
    let raw_rate = lookups as f64 / t.elapsed().as_secs_f64();
    lines.push(Line {
        what: "indexed equality (10 rows)",
        engine: engine_rate,
        raw: raw_rate,
        unit: "lookups/s",
        extra: format!(
            "engine p50 {:.1} µs p99 {:.1} µs ({} rows/lookup); raw p50 {:.1} µs ({} rows/lookup)",
            us(p50),
            us(p99),
            rows / lookups.max(1),
            us(raw_lat.pct(0.5)),
            raw_rows / lookups.max(1)
        ),
    });

    println!();
    println!("| operation | engine | raw RocksDB | engine / raw | latency |");
    println!("|---|---|---|---|---|");
    for l in &lines {
        println!(
            "| {} | {:.0} {} | {:.0} {} | {:.2} | {} |",
            l.what,
            l.engine,
            l.unit,
            l.raw,
            l.unit,
            l.engine / l.raw,
            l.extra
        );
    }
    let report = db.verify()?;
    println!(
        "\nverify after the run: {} entities, {} problems",
        report.entities,
        report.problems.len()
    );
    durability(dir.path(), &records, single.min(2_000))?;
    Ok(())
}

/// What an acknowledged write survives, and what it costs: the same writes with the
/// WAL written but not fsynced (survives a process crash) and with an fsync per commit
/// (`P8_ROCKSDB_SYNC`: survives power loss), single-threaded and from 8 threads
/// (concurrent commits share one fsync: `Store::make_durable`).
fn durability(dir: &std::path::Path, records: &[Value], single: usize) -> Result<()> {
    println!("\ndurability: {single} single inserts and {} records in batches of {BATCH}, WAL without and with fsync", records.len().min(20 * BATCH));
    println!(
        "| writes | process crash (no fsync) | power loss (fsync each commit) | fsync / no fsync |"
    );
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    for sync in [false, true] {
        let path = dir.join(format!("durability-{sync}"));
        let mut options = OpenOptions {
            create: true,
            ..OpenOptions::default()
        };
        options.store.sync_writes = sync;
        let db = Database::open(&path, &options)?;
        db.register_schema(json!({
            "name": "bench", "key_field": "name", "indexed_fields": ["category", "code"],
            "properties": {
                "name": {"type": "string"}, "category": {"type": "string"}, "code": {"type": "string"},
                "score": {"type": "integer"}, "note": {"type": "string"}
            }
        }))?;
        let t = Instant::now();
        for r in records.iter().take(single) {
            db.insert("bench", r.clone())?;
        }
        let single_rate = single as f64 / t.elapsed().as_secs_f64();
        let threads = 8;
        let t = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|w| {
                    let db = db.clone();
                    s.spawn(move || -> Result<()> {
                        for r in records
                            .iter()
                            .skip(single + w)
                            .step_by(threads)
                            .take(single / threads)
                        {
                            db.insert("bench", r.clone())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
            }
            Ok(())
        })?;
        let threaded_rate = (single / threads * threads) as f64 / t.elapsed().as_secs_f64();
        let batched: Vec<Value> = records
            .iter()
            .skip(2 * single)
            .take(20 * BATCH)
            .cloned()
            .collect();
        let t = Instant::now();
        for chunk in batched.chunks(BATCH) {
            db.insert_batch("bench", chunk.to_vec())?;
        }
        let batch_rate = batched.len() as f64 / t.elapsed().as_secs_f64();
        results.push([single_rate, threaded_rate, batch_rate]);
    }
    for (i, what) in [
        "single inserts, 1 thread",
        "single inserts, 8 threads",
        "batches of 1,000",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "| {what} | {:.0} records/s | {:.0} records/s | {:.2} |",
            results[0][i],
            results[1][i],
            results[1][i] / results[0][i]
        );
    }
    Ok(())
}
