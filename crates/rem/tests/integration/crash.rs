//! Crash test through the library, in the manner of RocksDB's db_stress: a worker
//! process (this test binary, re-run as `crash_worker`) writes through every write path —
//! marked batches with vectors and edges, soft deletes, schema re-registration that adds
//! or drops an index (backfill) — with 1 MB memtables, printing each operation before it
//! starts and after it is acknowledged. The parent SIGKILLs it at random moments, reopens
//! the database and checks: every batch is whole or absent (less the deletes that
//! started), every acknowledged record not deleted is there and found by its own vector,
//! every acknowledged delete holds, the schema is the last acknowledged or the one in
//! flight, and verify is clean. `CRASH_ROUNDS` (default 6) sets the number of kills.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rem::{Database, EdgeOptions, EntityId, Filter, OpenOptions, ScanOptions, SearchOptions};
use serde_json::json;

const DIMS: usize = 8;
const WORKER_DIR: &str = "REM_CRASH_WORKER_DIR";

/// A small deterministic generator (xorshift), so that the worker needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The vector of record `slug`: deterministic, distinct per slug, unit length.
fn vector(slug: &str) -> Vec<f32> {
    let mut h: u64 = 1469598103934665603;
    for b in slug.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    let mut r = Rng(h | 1);
    let v: Vec<f32> = (0..DIMS)
        .map(|_| (r.below(2000) as f32 / 1000.0) - 1.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.into_iter().map(|x| x / n).collect()
}

fn schema(indexed: bool) -> serde_json::Value {
    json!({
        "name": "notes", "key_field": "slug",
        "indexed_fields": if indexed { json!(["batch", "n"]) } else { json!(["batch"]) },
        "embedding_fields": ["slug"], "embedding_provider": format!("external:{DIMS}"),
        "properties": {"slug": {"type": "string"}, "batch": {"type": "string"}, "n": {"type": "integer"}}
    })
}

fn open(path: &std::path::Path) -> Database {
    let mut options = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    options.store.write_buffer_size = 1 << 20;
    Database::open(path, &options).unwrap()
}

/// The worker: runs until killed. Not a test of its own (ignored); the crash test runs it.
#[test]
#[ignore = "the worker process of crash::kills_during_every_write_path_leave_a_consistent_database"]
fn crash_worker() {
    let dir = std::path::PathBuf::from(std::env::var(WORKER_DIR).expect("run by the crash test"));
    let seed: u64 = std::env::var("REM_CRASH_SEED").unwrap().parse().unwrap();
    let round: u64 = std::env::var("REM_CRASH_ROUND").unwrap().parse().unwrap();
    let db = open(&dir.join("db"));
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    let mut rng = Rng(seed ^ (round + 1).wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut live: Vec<String> = Vec::new();
    for op in 0..100_000u64 {
        match rng.below(10) {
            // A marked batch of 1–40 records with vectors, each with an edge to the
            // previous record of the batch.
            0..=5 => {
                let mark = format!("r{round}-b{op}");
                let size = 1 + rng.below(40) as usize;
                let slugs: Vec<String> = (0..size).map(|i| format!("{mark}-{i}")).collect();
                let records = slugs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let edges = if i > 0 {
                            json!([slugs[i - 1]])
                        } else {
                            json!([])
                        };
                        json!({"slug": s, "batch": mark, "n": i, "edges": edges})
                    })
                    .collect();
                let vectors = slugs.iter().map(|s| vector(s)).collect();
                say(format!("START BATCH {mark} {size}"));
                db.insert_batch_with_vectors("notes", records, vectors)
                    .unwrap();
                say(format!("ACK BATCH {mark} {size}"));
                live.extend(slugs);
            }
            6 | 7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let slug = live.swap_remove(i);
                let id = EntityId::from_key("default", "notes", &slug);
                say(format!("START DELETE {slug}"));
                db.delete(&id).unwrap();
                say(format!("ACK DELETE {slug}"));
            }
            9 => {
                let indexed = rng.below(2) == 1;
                say(format!("START SCHEMA {indexed}"));
                db.register_schema(schema(indexed)).unwrap();
                say(format!("ACK SCHEMA {indexed}"));
            }
            // An explicit edge between two live records.
            _ => {
                if live.len() >= 2 {
                    let (a, b) = (
                        rng.below(live.len() as u64) as usize,
                        rng.below(live.len() as u64) as usize,
                    );
                    if a != b {
                        let _ = db.add_edge(&live[a], &live[b], "rel", &EdgeOptions::default());
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct Expected {
    /// mark -> size, for batches whose write started.
    batches: BTreeMap<String, usize>,
    acked_batches: BTreeSet<String>,
    deletes_started: BTreeSet<String>,
    deletes_acked: BTreeSet<String>,
    /// The schema's `n` index: the last acknowledged state and one in flight.
    schema_acked: bool,
    schema_in_flight: Option<bool>,
}

#[test]
fn kills_during_every_write_path_leave_a_consistent_database() {
    let rounds: u64 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (rerun with CRASH_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(&dir.path().join("db"));
        db.register_schema(schema(false)).unwrap();
    }
    let mut rng = Rng(seed);
    let mut expected = Expected::default();
    let (mut acked_ops, mut deletes) = (0usize, 0usize);
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_worker",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(WORKER_DIR, dir.path())
            .env("REM_CRASH_SEED", seed.to_string())
            .env("REM_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(300 + rng.below(1700)));
        child.kill().unwrap();
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            // The test harness prints "test crash::crash_worker ... " before the
            // worker's first line, on the same line.
            let line = match (line.find("START "), line.find("ACK ")) {
                (Some(a), Some(b)) => &line[a.min(b)..],
                (Some(a), None) | (None, Some(a)) => &line[a..],
                (None, None) => continue,
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["START", "BATCH", mark, size] => {
                    expected
                        .batches
                        .insert(mark.to_string(), size.parse().unwrap());
                }
                ["ACK", "BATCH", mark, _] => {
                    expected.acked_batches.insert(mark.to_string());
                    acked_ops += 1;
                }
                ["START", "DELETE", slug] => {
                    expected.deletes_started.insert(slug.to_string());
                }
                ["ACK", "DELETE", slug] => {
                    expected.deletes_acked.insert(slug.to_string());
                    acked_ops += 1;
                    deletes += 1;
                }
                ["START", "SCHEMA", v] => expected.schema_in_flight = Some(*v == "true"),
                ["ACK", "SCHEMA", v] => {
                    expected.schema_acked = *v == "true";
                    expected.schema_in_flight = None;
                    acked_ops += 1;
                }
                _ => {}
            }
        }
        check(&dir.path().join("db"), &mut expected, seed, round);
    }
    assert!(
        expected.acked_batches.len() > 5 && deletes > 0,
        "too little was acknowledged ({} batches, {deletes} deletes) to prove much",
        expected.acked_batches.len()
    );
    eprintln!(
        "{rounds} kills: {acked_ops} acknowledged operations ({} batches, {deletes} deletes)",
        expected.acked_batches.len()
    );
}

fn check(path: &std::path::Path, expected: &mut Expected, seed: u64, round: u64) {
    let db = open(path);
    let ctx = format!("round {round}, seed {seed}");
    // Present records by batch.
    let mut present: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in db
        .scan("notes", &Filter::All, &ScanOptions::default())
        .unwrap()
        .entities
    {
        let mark = e.properties["batch"].as_str().unwrap().to_string();
        let slug = e.properties["slug"].as_str().unwrap().to_string();
        present.entry(mark).or_default().insert(slug);
    }
    for (mark, slugs) in &present {
        let size = *expected
            .batches
            .get(mark)
            .unwrap_or_else(|| panic!("{ctx}: batch {mark} was never written"));
        // Whole, less the records whose delete started.
        for i in 0..size {
            let slug = format!("{mark}-{i}");
            assert!(
                slugs.contains(&slug) || expected.deletes_started.contains(&slug),
                "{ctx}: batch {mark} is partial: {slug} missing"
            );
        }
        // A batch that was not acknowledged committed whole: count it as acknowledged
        // from now on (the next round's kill may not undo it).
        expected.acked_batches.insert(mark.clone());
    }
    for mark in &expected.acked_batches {
        let size = expected.batches[mark];
        for i in 0..size {
            let slug = format!("{mark}-{i}");
            let there = present.get(mark).is_some_and(|s| s.contains(&slug));
            if expected.deletes_acked.contains(&slug) {
                assert!(!there, "{ctx}: acknowledged delete of {slug} undone");
            } else if !expected.deletes_started.contains(&slug) {
                assert!(there, "{ctx}: acknowledged {slug} lost");
            }
        }
    }
    // Deletes that started and took effect count as done.
    for slug in expected.deletes_started.clone() {
        let mark = slug.rsplit_once('-').unwrap().0.to_string();
        if !present.get(&mark).is_some_and(|s| s.contains(&slug)) {
            expected.deletes_acked.insert(slug);
        }
    }
    // The schema is the acknowledged one or the one in flight.
    let indexed = db
        .schema("notes")
        .unwrap()
        .indexed_fields
        .contains(&"n".to_string());
    assert!(
        indexed == expected.schema_acked || Some(indexed) == expected.schema_in_flight,
        "{ctx}: the schema has n indexed = {indexed}"
    );
    expected.schema_acked = indexed;
    expected.schema_in_flight = None;
    // The index finds live records by their own vectors (a sample).
    let sample: Vec<String> = present.values().flatten().take(15).cloned().collect();
    for slug in sample {
        let hits = db
            .search_by_vector(
                "notes",
                &vector(&slug),
                &SearchOptions {
                    top_k: 3,
                    ..SearchOptions::default()
                },
            )
            .unwrap();
        assert!(
            hits.hits
                .iter()
                .any(|h| h.entity.properties["slug"] == slug.as_str()),
            "{ctx}: {slug} not found by its own vector"
        );
    }
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{ctx}: {:?}", report.problems);
}
