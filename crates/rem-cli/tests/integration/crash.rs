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

/// Runs `rem insert <table> --batch --ids --batch-size <n>`, feeds it the lines `line(i)`
/// makes (each with what the test remembers of it) until its pipe breaks, SIGKILLs it
/// after `wait`, and returns what was sent and the ids it printed (one per record, in
/// input order, after their batch committed).
fn killed_writer<T: Send + 'static>(
    rem: &Rem,
    table: &str,
    batch_size: usize,
    wait: Duration,
    mut line: impl FnMut(usize) -> (String, T) + Send + 'static,
) -> (Vec<T>, Vec<String>) {
    let mut child = rem
        .command()
        .args([
            "insert",
            table,
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
    // Bounded: the child dies long before.
    let feeder = std::thread::spawn(move || {
        let mut sent = Vec::new();
        for i in 0..200_000usize {
            let (text, kept) = line(i);
            if stdin.write_all(text.as_bytes()).is_err() {
                break;
            }
            sent.push(kept);
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
    std::thread::sleep(wait);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader");
    let sent = feeder.join().expect("feeder");
    let ids: Vec<String> = rx
        .try_iter()
        .filter(|l| EntityId::parse(l).is_ok())
        .collect();
    assert!(ids.len() <= sent.len());
    (sent, ids)
}

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
        // Half the keys repeat across rounds, so upserts of existing entities are
        // killed too.
        let mut r = rand::rngs::StdRng::seed_from_u64(rng.gen());
        let wait = Duration::from_millis(rng.gen_range(30..400));
        let (sent, ids) = killed_writer(&rem, "person", batch_size, wait, move |i| {
            let email = if r.gen_bool(0.5) {
                format!("shared{}@x", r.gen_range(0..500))
            } else {
                format!("r{round}-{i}@x")
            };
            let role = format!("role-{round}-{i}");
            let line = format!(
                "{{\"name\": \"n\", \"email\": \"{email}\", \"role\": \"{role}\", \"age\": {}}}\n",
                i % 100
            );
            (line, (email, role))
        });
        total_lines += sent.len();
        // Map each acknowledged id to the record it came from (the i-th line).
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
        // ~2 KB bodies fill a 1 MB memtable every few hundred records.
        let filler = "lorem ipsum dolor sit amet ".repeat(80);
        let wait = Duration::from_millis(rng.gen_range(200..1500));
        let (sent, ids) = killed_writer(&rem, "docs", batch_size, wait, move |i| {
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
            (line, (slug, mark, body))
        });
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

/// ENOSPC: `rem insert --batch` into a database on a 16 MB tmpfs (mounted in a user and
/// mount namespace of its own, `unshare -rm`, so nothing outside the test sees it) until
/// the disk is full. The failing command exits with one clear line and writes nothing of
/// its batch; the full database still verifies; once space is freed it holds exactly
/// the acknowledged batches, verifies, and takes writes again.
#[test]
fn a_full_disk_fails_the_write_cleanly_and_the_database_reopens_consistent() {
    use rand::RngCore;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("mnt")).unwrap();
    std::fs::write(
        root.join("schema.json"),
        r#"{"name": "notes", "key_field": "slug", "properties": {"slug": {"type": "string"}, "body": {"type": "string"}}}"#,
    )
    .unwrap();
    // 200 records of ~1 KB of incompressible text per batch: ~40 batches fill the disk.
    // The 6 MB filler, removed once the disk is full, leaves room for the flush and
    // compaction a reopened database starts with.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    const BATCHES: usize = 120;
    const PER_BATCH: usize = 200;
    for b in 0..=BATCHES {
        let mut lines = String::new();
        for i in 0..PER_BATCH {
            let mut bytes = [0u8; 500];
            rng.fill_bytes(&mut bytes);
            let body: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
            lines.push_str(&format!(
                "{{\"slug\": \"s{b}-{i}\", \"body\": \"{body}\"}}\n"
            ));
        }
        std::fs::write(root.join(format!("b{b}.jsonl")), lines).unwrap();
    }
    let script = format!(
        r#"set -u
R="{root}"; REM="{rem}"
mount -t tmpfs -o size=16m tmpfs "$R/mnt" || {{ echo "MOUNT_FAILED"; exit 0; }}
export P8_HOME="$R/mnt/home"
head -c 6000000 /dev/zero > "$R/mnt/filler"
"$REM" init > /dev/null || echo "INIT_FAILED"
"$REM" schema add "$R/schema.json" > /dev/null || echo "SCHEMA_FAILED"
for b in $(seq 0 {last}); do
  if "$REM" insert notes --batch < "$R/b$b.jsonl" > /dev/null 2> "$R/err"; then echo "OK $b"; else echo "FAILED $b $?"; echo "ERR $(cat "$R/err" | wc -l) $(cat "$R/err")"; break; fi
done
echo "FULL_VERIFY $("$REM" verify 2>&1 | head -1)"
rm "$R/mnt/filler"
echo "VERIFY $("$REM" verify 2>&1 | head -1)"
echo "COUNT $("$REM" query 'SELECT count(*) AS n FROM notes' --format json 2>&1)"
if "$REM" insert notes --batch < "$R/b{extra}.jsonl" > /dev/null 2> "$R/err"; then echo "AFTER_FREE_OK"; else echo "AFTER_FREE_FAILED $(cat "$R/err")"; fi
echo "COUNT2 $("$REM" query 'SELECT count(*) AS n FROM notes' --format json 2>&1)"
"#,
        root = root.display(),
        rem = env!("CARGO_BIN_EXE_rem"),
        last = BATCHES - 1,
        extra = BATCHES,
    );
    std::fs::write(root.join("run.sh"), script).unwrap();
    let out = std::process::Command::new("unshare")
        .args(["-rm", "bash"])
        .arg(root.join("run.sh"))
        .env_remove("P8_DB_PATH")
        .output()
        .expect("unshare (util-linux) runs the ENOSPC script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("MOUNT_FAILED"),
        "this test mounts a 16 MB tmpfs in a user namespace (`unshare -rm`); it could not: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("INIT_FAILED") && !stdout.contains("SCHEMA_FAILED"),
        "{stdout}"
    );
    let line = |prefix: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in:\n{stdout}"))
            .trim()
            .to_string()
    };
    let acknowledged = stdout.lines().filter(|l| l.starts_with("OK ")).count();
    let failed = line("FAILED ");
    assert!(acknowledged > 0, "{stdout}");
    let rc: i32 = failed.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        rc != 0 && rc != 101,
        "the failing insert exited {rc} (101 is a panic)"
    );
    let err = line("ERR ");
    let (lines, text) = err.split_once(' ').unwrap();
    assert_eq!(lines, "1", "one line of error, not {lines}: {text}");
    assert!(
        text.starts_with("error: ") && text.contains("No space left on device"),
        "{text}"
    );
    assert!(
        text.contains("nothing of the current batch was written"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(line("FULL_VERIFY ").starts_with("ok:"), "{stdout}");
    assert!(line("VERIFY ").starts_with("ok:"), "{stdout}");
    let count = |prefix: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(&line(prefix)).unwrap();
        v[0]["n"].as_u64().unwrap() as usize
    };
    assert_eq!(count("COUNT "), acknowledged * PER_BATCH, "{stdout}");
    assert!(
        stdout.contains("AFTER_FREE_OK"),
        "no write after freeing space: {stdout}"
    );
    assert_eq!(count("COUNT2 "), (acknowledged + 1) * PER_BATCH);
    eprintln!("disk full after {acknowledged} batches; the failing one wrote nothing");
}
