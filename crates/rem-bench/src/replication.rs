//! Replication benchmark, in one process over real gRPC on 127.0.0.1: a primary
//! `rem_service::serve` and replicas running `rem_replication::follow`, each on its
//! own RocksDB database.
//!
//! - Lag: single-record writes at a steady rate with two replicas attached; the lag of
//!   a change is the time from its commit on the primary to its appearance on a replica
//!   (a thread watches each replica's `last_seq`).
//! - Catch-up: a replica started 100k entries behind; entries applied per second.
//! - Write cost: the same batch inserts with no replica and with two replicas
//!   following (the reference run is the first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rem::{Database, OpenOptions};
use rem_replication::{FollowOptions, ReplicaStatus, ServeOptions};
use serde_json::json;

/// The token of the benchmark's primary.
const TOKEN: &str = "bench-token";

fn open(dir: &std::path::Path, name: &str) -> Result<Database> {
    Ok(Database::open(
        dir.join(name),
        &OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )?)
}

fn schema(db: &Database) -> Result<()> {
    db.register_schema(json!({
        "name": "events", "key_field": "key", "indexed_fields": ["kind"],
        "properties": {"key": {"type": "string"}, "kind": {"type": "string"},
                       "n": {"type": "integer"}, "body": {"type": "string"}}
    }))?;
    Ok(())
}

fn record(i: usize) -> serde_json::Value {
    let kind = ["a", "b", "c", "d"][i % 4];
    json!({"key": format!("e-{i}"), "kind": kind, "n": i,
           "body": format!("event number {i} with a little text to replicate")})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    fn start(primary: &Database) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        primary.set_primary()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        rt.spawn(rem_service::serve(
            primary.clone(),
            listener,
            rem_service::ServerOptions {
                replication: ServeOptions::default(),
                token: TOKEN.into(),
                instance: rem_service::new_instance_id(),
            },
            None,
            async move {
                let _ = rx.changed().await;
            },
        ));
        Ok(Cluster { rt, port, stop })
    }

    fn follow(&self, replica: &Database, name: &str) -> Result<()> {
        let primary = format!("127.0.0.1:{}", self.port);
        replica.become_replica(&primary)?;
        let options = FollowOptions {
            primary: primary.clone(),
            token: Some(TOKEN.into()),
            tls: None,
            follow: true,
            max_backoff: Duration::from_secs(1),
            name: name.into(),
        };
        self.rt.spawn(rem_replication::follow(
            replica.clone(),
            options,
            Arc::new(ReplicaStatus::new(&primary)),
            self.stop.subscribe(),
        ));
        Ok(())
    }
}

fn wait_until(db: &Database, seq: u64, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    while db.last_seq() < seq {
        anyhow::ensure!(
            t.elapsed() < limit,
            "replica stuck at {} < {seq}",
            db.last_seq()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(t.elapsed())
}

pub(crate) fn run(writes: usize, rate: usize, behind: usize, batch_rows: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    println!("replication benchmark (one process, gRPC over 127.0.0.1, 2 cores)");

    // 1. Lag under a steady load.
    let primary = open(dir.path(), "primary")?;
    schema(&primary)?;
    let cluster = Cluster::start(&primary)?;
    let replicas = [open(dir.path(), "r1")?, open(dir.path(), "r2")?];
    for (i, r) in replicas.iter().enumerate() {
        cluster.follow(r, &format!("r{}", i + 1))?;
    }
    let start_seq = primary.last_seq();
    for r in &replicas {
        wait_until(r, start_seq, Duration::from_secs(30)).context("initial sync")?;
    }
    let committed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchers: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            let committed = committed.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut lags = Vec::new();
                let mut seen = r.last_seq();
                let deadline = Instant::now() + Duration::from_secs(600);
                while !done.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let now_seq = r.last_seq();
                    if now_seq > seen {
                        let now = Instant::now();
                        let map = committed.lock().unwrap_or_else(|p| p.into_inner());
                        for s in seen + 1..=now_seq {
                            if let Some(t) = map.get(&s) {
                                lags.push(now.duration_since(*t).as_secs_f64() * 1000.0);
                            }
                        }
                        seen = now_seq;
                    } else {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                lags
            })
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let t = Instant::now();
    for i in 0..writes {
        let due = t + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        primary.insert("events", record(i))?;
        let seq = primary.last_seq();
        committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq, Instant::now());
    }
    let last = primary.last_seq();
    for r in &replicas {
        wait_until(r, last, Duration::from_secs(60))?;
    }
    std::thread::sleep(Duration::from_millis(20));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lags: Vec<f64> = Vec::new();
    for w in watchers {
        lags.extend(w.join().map_err(|_| anyhow::anyhow!("watcher panicked"))?);
    }
    lags.sort_by(|a, b| a.total_cmp(b));
    println!(
        "\nlag: {writes} single-record writes at {rate}/s, 2 replicas: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    for r in &replicas {
        anyhow::ensure!(
            r.content_checksum()? == primary.content_checksum()?,
            "a replica differs from the primary"
        );
    }
    println!("replicas' content checksums equal the primary's");
    drop(cluster);

    // 2. Catch-up of a replica `behind` entries behind.
    let primary = open(dir.path(), "primary2")?;
    schema(&primary)?;
    let records: Vec<_> = (0..behind).map(record).collect();
    for chunk in records.chunks(1000) {
        primary.insert_batch("events", chunk.to_vec())?;
    }
    let cluster = Cluster::start(&primary)?;
    let late = open(dir.path(), "late")?;
    let t = Instant::now();
    cluster.follow(&late, "late")?;
    let took = wait_until(&late, primary.last_seq(), Duration::from_secs(600))?.max(t.elapsed());
    println!(
        "\ncatch-up: {} entries in {:.2} s = {:.0} entries/s",
        primary.last_seq(),
        took.as_secs_f64(),
        primary.last_seq() as f64 / took.as_secs_f64()
    );
    drop(cluster);

    // 3. Write throughput with and without two replicas.
    let measure = |with_replicas: bool, name: &str| -> Result<f64> {
        let primary = open(dir.path(), name)?;
        schema(&primary)?;
        let cluster = Cluster::start(&primary)?;
        let mut followers = Vec::new();
        if with_replicas {
            for i in 0..2 {
                let r = open(dir.path(), &format!("{name}-r{i}"))?;
                cluster.follow(&r, &format!("{name}-r{i}"))?;
                followers.push(r);
            }
        }
        let t = Instant::now();
        for chunk in records.chunks(batch_rows) {
            primary.insert_batch("events", chunk.to_vec())?;
        }
        let secs = t.elapsed().as_secs_f64();
        for r in &followers {
            wait_until(r, primary.last_seq(), Duration::from_secs(600))?;
        }
        drop(cluster);
        Ok(records.len() as f64 / secs)
    };
    let alone = measure(false, "w0")?;
    let with_two = measure(true, "w2")?;
    println!(
        "\nwrites ({} records, batches of {batch_rows}): no replica {alone:.0} rec/s, two replicas {with_two:.0} rec/s, cost {:.1}%",
        records.len(),
        100.0 * (1.0 - with_two / alone)
    );
    Ok(())
}

/// A `rem replicate --follow` process pinned to `cpu`, killed when dropped.
struct ReplicaProcess {
    child: std::process::Child,
    home: std::path::PathBuf,
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `rem` binary built beside this program.
fn rem_exe() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("rem")))
        .unwrap_or_else(|| "rem".into())
}

impl ReplicaProcess {
    fn rem(&self) -> std::process::Command {
        let mut c = std::process::Command::new(rem_exe());
        c.env("P8_HOME", &self.home)
            .env("P8_REPLICATION_TOKEN", TOKEN);
        c
    }

    fn start(home: std::path::PathBuf, port: u16, cpu: usize) -> Result<ReplicaProcess> {
        let init = std::process::Command::new(rem_exe())
            .env("P8_HOME", &home)
            .arg("init")
            .output()
            .context("cannot run rem (build it beside rem-bench)")?;
        anyhow::ensure!(init.status.success(), "rem init failed");
        let child = std::process::Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(rem_exe())
            .args([
                "replicate",
                "--primary",
                &format!("127.0.0.1:{port}"),
                "--follow",
            ])
            .env("P8_HOME", &home)
            .env("P8_REPLICATION_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot run taskset")?;
        let p = ReplicaProcess { child, home };
        let endpoint = p.home.join("db").join("SERVER");
        let t = Instant::now();
        while !endpoint.exists() {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(60),
                "the replica did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(p)
    }

    /// The replica's applied sequence number (through its server).
    fn applied(&self) -> Result<u64> {
        let out = self
            .rem()
            .args(["replication", "status", "--format", "json"])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        Ok(v["applied_seq"].as_u64().unwrap_or(0))
    }

    fn wait_for(&self, seq: u64, limit: Duration) -> Result<()> {
        let t = Instant::now();
        while self.applied()? < seq {
            anyhow::ensure!(t.elapsed() < limit, "replica stuck below {seq}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The replica's content checksum rows, as `rem replication checksum` prints them.
    fn checksum(&self) -> Result<Vec<(String, u64, String)>> {
        let out = self
            .rem()
            .args(["replication", "checksum", "--format", "json"])
            .output()?;
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
        Ok(v.iter()
            .map(|r| {
                (
                    r["column_family"].as_str().unwrap_or_default().to_string(),
                    r["entries"].as_u64().unwrap_or(0),
                    r["checksum"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

/// Write throughput of this process's primary with no replica and with two replica
/// processes on `replica_cpu`, alternating `rounds` times; prints each run and the
/// medians. Meant to run under `taskset -c 0`, so the replicas' apply work does not
/// compete with the primary for its core.
pub(crate) fn cost_with_processes(
    records: usize,
    batch_rows: usize,
    replica_cpu: usize,
    rounds: usize,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    println!(
        "replication write cost: primary in this process, replicas as `rem replicate --follow` processes on CPU {replica_cpu}"
    );
    let rows: Vec<_> = (0..records).map(record).collect();
    let mut alone = Vec::new();
    let mut with_two = Vec::new();
    for round in 0..rounds.max(1) {
        for replicas in [0usize, 2] {
            let name = format!("c{round}-{replicas}");
            let primary = open(dir.path(), &name)?;
            schema(&primary)?;
            let cluster = Cluster::start(&primary)?;
            let procs = (0..replicas)
                .map(|i| {
                    ReplicaProcess::start(
                        dir.path().join(format!("{name}-r{i}")),
                        cluster.port,
                        replica_cpu,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            for p in &procs {
                p.wait_for(primary.last_seq(), Duration::from_secs(60))?;
            }
            let t = Instant::now();
            for chunk in rows.chunks(batch_rows) {
                primary.insert_batch("events", chunk.to_vec())?;
            }
            let secs = t.elapsed().as_secs_f64();
            let rate = records as f64 / secs;
            let mut after = String::new();
            if !procs.is_empty() {
                for p in &procs {
                    p.wait_for(primary.last_seq(), Duration::from_secs(600))?;
                }
                let want: Vec<_> = primary
                    .content_checksum()?
                    .into_iter()
                    .map(|(cf, n, h)| (cf, n, format!("{h:016x}")))
                    .collect();
                for p in &procs {
                    anyhow::ensure!(p.checksum()? == want, "a replica differs from the primary");
                }
                after = format!(
                    "; replicas synced {:.2} s after the first write, checksums equal",
                    t.elapsed().as_secs_f64()
                );
                with_two.push(rate);
            } else {
                alone.push(rate);
            }
            println!("  round {round}, {replicas} replicas: {rate:.0} rec/s ({secs:.2} s){after}");
            drop(procs);
            drop(cluster);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (a, w) = (median(&mut alone), median(&mut with_two));
    println!(
        "\nmedian: no replica {a:.0} rec/s, two replicas {w:.0} rec/s, cost {:.1}%",
        100.0 * (1.0 - w / a)
    );
    Ok(())
}
