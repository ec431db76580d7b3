//! Crash safety: a writer killed with SIGKILL at random moments loses no acknowledged
//! write and leaves indexes consistent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rem::{Database, EntityId, OpenOptions};

use crate::{path_str, Rem, PERSON_YAML};

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    let rem = Rem::init();
    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // id -> the role it was last acknowledged with.
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut total_lines = 0usize;

    for round in 0..24 {
        let batch_size = rng.gen_range(1..=8);
        let mut child = rem
            .command()
            .args([
                "insert",
                "person",
                "--batch",
                "--ids",
                "--batch-size",
                &batch_size.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        // Feed records until the pipe breaks (the child died) or a bound is hit. Half the
        // keys repeat across rounds, so upserts of existing entities are killed too.
        let feeder_seed: u64 = rng.gen();
        let feeder = std::thread::spawn(move || {
            let mut r = rand::rngs::StdRng::seed_from_u64(feeder_seed);
            let mut sent = Vec::new();
            for i in 0..200_000usize {
                let email = if r.gen_bool(0.5) {
                    format!("shared{}@x", r.gen_range(0..500))
                } else {
                    format!("r{round}-{i}@x")
                };
                let role = format!("role-{round}-{i}");
                let line = format!("{{\"name\": \"n\", \"email\": \"{email}\", \"role\": \"{role}\", \"age\": {}}}\n", i % 100);
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
                sent.push((email, role));
            }
            sent
        });
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let sent = feeder.join().expect("feeder");
        total_lines += sent.len();
        // Ids arrive in input order, one per record, after their batch committed.
        // Map each acknowledged id to the record it came from (the i-th line).
        let ids: Vec<String> = rx
            .try_iter()
            .filter(|l| EntityId::parse(l).is_ok())
            .collect();
        assert!(ids.len() <= sent.len());
        for (id, (email, role)) in ids.iter().zip(&sent) {
            assert_eq!(
                id,
                &EntityId::from_key("default", "person", email).to_string()
            );
            acknowledged.insert(id.clone(), role.clone());
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "no write was acknowledged in any round; the test proved nothing"
    );
    eprintln!(
        "{} acknowledged entities from {total_lines} lines sent",
        acknowledged.len()
    );

    // Every acknowledged write is there, with at least the acknowledged state: the role
    // is the acknowledged one or a later one (a write that committed but was not yet
    // printed when the kill came).
    let db = Database::open(
        rem.db_path(),
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .expect("reopen");
    for (id, role) in &acknowledged {
        let e = db
            .get(&EntityId::parse(id).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {id} lost"));
        let stored = e.properties["role"].as_str().unwrap();
        let round_of = |r: &str| -> (u32, u64) {
            let mut parts = r.trim_start_matches("role-").split('-');
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().parse().unwrap(),
            )
        };
        assert!(
            round_of(stored) >= round_of(role),
            "{id}: stored {stored} is older than acknowledged {role}"
        );
    }
    drop(db);
    let started = Instant::now();
    assert!(rem.ok(&["verify"]).starts_with("ok:"));
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// SIGKILL while embedded records with edges stream in through 1 MB memtables (so
/// flushes and compactions run under the kill). Each batch is marked: after every
/// reopen, a batch is all there or not at all, every acknowledged record is there with
/// its vector, the index finds each by its own text, and verify is clean.
/// `CRASH_ROUNDS` (default 8) sets the rounds; `scripts/stress.sh` runs 100.
#[test]
fn sigkill_with_flushes_embeddings_and_edges_keeps_batches_whole() {
    let (rem, _server) = crate::search::mock_rem();
    rem.set_env("P8_ROCKSDB_WRITE_BUFFER_SIZE", "1");
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // slug -> body of every acknowledged record; batch mark -> lines sent with it.
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut sent_per_batch: HashMap<String, usize> = HashMap::new();
    let mut rounds_with_sst = 0usize;

    for round in 0..rounds {
        let batch_size = rng.gen_range(1..=16);
        let mut child = rem
            .command()
            .args([
                "insert",
                "docs",
                "--batch",
                "--ids",
                "--batch-size",
                &batch_size.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let feeder = std::thread::spawn(move || {
            let mut sent = Vec::new();
            // ~2 KB bodies fill a 1 MB memtable every few hundred records.
            let filler = "lorem ipsum dolor sit amet ".repeat(80);
            for i in 0..100_000usize {
                let slug = format!("r{round}-{i}");
                let mark = format!("b{round}-{}", i / batch_size);
                let body = format!("body of {slug} {filler}");
                let edge = if i > 0 {
                    format!("[\"r{round}-{}\"]", i - 1)
                } else {
                    "[]".into()
                };
                let line = format!(
                    "{{\"slug\": \"{slug}\", \"category\": \"{mark}\", \"body\": \"{body}\", \"edges\": {edge}}}\n"
                );
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
                sent.push((slug, mark, body));
            }
            sent
        });
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1500)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        let sent = feeder.join().expect("feeder");
        let ids: Vec<String> = rx
            .try_iter()
            .filter(|l| EntityId::parse(l).is_ok())
            .collect();
        assert!(ids.len() <= sent.len());
        for (_, mark, _) in &sent {
            *sent_per_batch.entry(mark.clone()).or_default() += 1;
        }
        for (id, (slug, _, body)) in ids.iter().zip(&sent) {
            assert_eq!(id, &EntityId::from_key("default", "docs", slug).to_string());
            acknowledged.insert(slug.clone(), body.clone());
        }

        // After each kill: reopen and check.
        let db = Database::open(
            rem.db_path(),
            &OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        )
        .expect("reopen");
        let sst_files = std::fs::read_dir(rem.db_path())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().to_string_lossy().ends_with(".sst"))
                    .count()
            })
            .unwrap_or(0);
        if sst_files > 0 {
            rounds_with_sst += 1;
        }
        let mut present: HashMap<String, usize> = HashMap::new();
        for e in db
            .scan("docs", &rem::Filter::All, &rem::ScanOptions::default())
            .unwrap()
            .entities
        {
            let mark = e.properties["category"].as_str().unwrap().to_string();
            *present.entry(mark).or_default() += 1;
        }
        for (mark, n) in &present {
            let sent_n = sent_per_batch.get(mark).copied().unwrap_or(0);
            assert_eq!(
                *n, sent_n,
                "batch {mark}: {n} of its {sent_n} records survived (seed {seed})"
            );
        }
        for (slug, body) in &acknowledged {
            let e = db
                .get_in("docs", &EntityId::from_key("default", "docs", slug))
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {slug} lost (seed {seed})"));
            assert_eq!(e.properties["body"].as_str().unwrap(), body);
        }
        drop(db);
        // The index finds acknowledged records by their own text (a sample), through
        // `rem search` and the loopback provider.
        for (slug, body) in acknowledged.iter().take(10) {
            let hits = rem.json(&["search", body, "--schema", "docs", "--top-k", "3"]);
            assert!(
                hits.as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["slug"] == slug.as_str()),
                "{slug} not found by its own text after the kill (seed {seed}): {hits}"
            );
        }
        let report = rem.ok(&["verify"]);
        assert!(report.starts_with("ok:"), "round {round}: {report}");
    }
    assert!(
        acknowledged.len() > 20,
        "only {} writes acknowledged; the kills came too early to prove much",
        acknowledged.len()
    );
    eprintln!(
        "{} acknowledged records in {} batches over {rounds} kills ({rounds_with_sst} with SST files on disk)",
        acknowledged.len(),
        sent_per_batch.len()
    );
}
