//! Service benchmark: the same operations embedded and through a server, in one run.
//!
//! 1. Library: [`rem_service::Backend`] over the embedded database against the same
//!    backend over a [`rem_service::Client`] talking to a server on 127.0.0.1 (in this
//!    process, on its own runtime): get, insert of 1,000 records, search, SQL.
//! 2. CLI: `rem` commands opening the database themselves against the same commands
//!    sent to a running `rem serve` process (found through its SERVER file): get,
//!    insert of 1,000 records, search, SQL. Each command is a new process, as a user
//!    runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rem::{Database, EmbeddingOptions, OpenOptions};
use rem_service::proto::SearchRequest;
use rem_service::{Backend, Client, ClientOptions};
use serde_json::{json, Value};

const TOKEN: &str = "bench-service-token";

/// A CLI case: its label, its arguments and its stdin.
type CliCase<'a> = (&'static str, Vec<&'a str>, Option<&'a [u8]>);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn timed(reps: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<Vec<f64>> {
    let mut t = Vec::with_capacity(reps);
    for i in 0..reps {
        let s = Instant::now();
        f(i)?;
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t)
}

fn note(i: usize) -> Value {
    let topics = ["databases", "cooking", "travel", "music", "rust"];
    let topic = topics[i % topics.len()];
    json!({"name": format!("note-{i}"), "category": topic,
           "content": format!("Note {i} about {topic} and a few words more to embed")})
}

fn event(round: usize, i: usize) -> Value {
    let kind = ["a", "b", "c"][i % 3];
    json!({"key": format!("e-{i}"), "kind": kind, "n": round,
           "body": format!("event {i} of round {round}")})
}

fn schemas(db: &Database) -> Result<()> {
    db.register_schema(json!({
        "name": "notes", "key_field": "name", "indexed_fields": ["category"],
        "embedding_fields": ["content"],
        "properties": {"name": {"type": "string"}, "category": {"type": "string"},
                       "content": {"type": "string"}}
    }))?;
    db.register_schema(json!({
        "name": "events", "key_field": "key", "indexed_fields": ["kind"],
        "properties": {"key": {"type": "string"}, "kind": {"type": "string"},
                       "n": {"type": "integer"}, "body": {"type": "string"}}
    }))?;
    Ok(())
}

struct Row {
    op: &'static str,
    embedded: Vec<f64>,
    remote: Vec<f64>,
}

fn report(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>14} {:>8}",
        "operation", "embedded p50", "embedded p99", "remote p50", "remote p99", "ratio"
    );
    for r in rows {
        let (e50, e99) = (percentile(&r.embedded, 0.5), percentile(&r.embedded, 0.99));
        let (r50, r99) = (percentile(&r.remote, 0.5), percentile(&r.remote, 0.99));
        println!(
            "{:<22} {:>11.1} µs {:>11.1} µs {:>11.1} µs {:>11.1} µs {:>7.2}×",
            r.op,
            e50,
            e99,
            r50,
            r99,
            r50 / e50
        );
    }
}

/// The same operations on `backend`; returns (get, insert, search, sql) timings in µs.
fn library_ops(
    backend: &Backend,
    ids: &[String],
    gets: usize,
    reps: usize,
    round: &mut usize,
) -> Result<[Vec<f64>; 4]> {
    let get = timed(gets, |i| {
        let id = &ids[(i * 7919) % ids.len()];
        ensure!(backend.get(id, false)?.is_some(), "missing {id}");
        Ok(())
    })?;
    let insert = timed(reps.min(20), |_| {
        *round += 1;
        let batch: Vec<Value> = (0..1000).map(|i| event(*round, i)).collect();
        let mut w = backend.inserter("events")?;
        ensure!(w.write(batch)?.len() == 1000, "short batch");
        Ok(())
    })?;
    let queries = [
        "fast storage engines",
        "recipes for dinner",
        "trains across europe",
    ];
    let search = timed(reps, |i| {
        let r = backend.search(SearchRequest {
            table: "notes".into(),
            query: queries[i % queries.len()].into(),
            top_k: 10,
            ..Default::default()
        })?;
        ensure!(r.hits.len() == 10, "short result");
        Ok(())
    })?;
    let sql = timed(reps, |_| {
        let rows: usize = backend
            .sql(
                "SELECT category, COUNT(*) AS n FROM notes GROUP BY category ORDER BY category",
                false,
            )?
            .map(|b| b.map(|b| b.num_rows()))
            .sum::<Result<usize, _>>()?;
        ensure!(rows == 5, "{rows} groups");
        Ok(())
    })?;
    Ok([get, insert, search, sql])
}

/// The `rem` binary built beside this program.
fn rem_exe() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("rem")))
        .unwrap_or_else(|| "rem".into())
}

fn rem(home: &Path, models: &Path) -> Command {
    let mut c = Command::new(rem_exe());
    c.env("P8_HOME", home)
        .env("P8_MODELS_DIR", models)
        .env("P8_SERVER_TOKEN", TOKEN);
    c
}

/// Runs a command `reps` times; returns the wall times in µs.
fn cli_times(
    home: &Path,
    models: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    reps: usize,
) -> Result<Vec<f64>> {
    timed(reps, |_| {
        let mut child = rem(home, models)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run rem (build it beside rem-bench)")?;
        let mut input = child.stdin.take().context("stdin")?;
        if let Some(data) = stdin {
            input.write_all(data)?;
        }
        drop(input);
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "rem {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })
}

pub(crate) fn run(
    notes: usize,
    gets: usize,
    reps: usize,
    cli_reps: usize,
    models: PathBuf,
) -> Result<()> {
    println!("service benchmark: embedded vs through a server on 127.0.0.1 (2 cores)");
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("db");
    let embedding = EmbeddingOptions {
        models_dir: models.clone(),
        ..EmbeddingOptions::default()
    };
    let db = Database::open(
        &db_path,
        &OpenOptions {
            create: true,
            embedding,
            ..OpenOptions::default()
        },
    )?;
    schemas(&db)?;
    let mut ids = Vec::with_capacity(notes);
    for chunk in (0..notes).collect::<Vec<_>>().chunks(500) {
        let batch = chunk.iter().map(|i| note(*i)).collect();
        ids.extend(
            db.insert_batch("notes", batch)?
                .into_iter()
                .map(|id| id.to_string()),
        );
    }
    println!("{notes} notes (embedded with the local model), events written 1,000 per batch");

    // 1. Library: embedded backend and client backend, same operations.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?.to_string();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let server = rt.spawn(rem_service::serve(
        db.clone(),
        listener,
        rem_service::ServerOptions {
            replication: rem_replication::ServeOptions::default(),
            token: TOKEN.into(),
            instance: rem_service::new_instance_id(),
        },
        None,
        async move {
            let _ = stopped.changed().await;
        },
    ));
    let client = Client::connect(
        &address,
        &ClientOptions {
            token: TOKEN.into(),
            tls: None,
            tenant: None,
            connect_timeout: Duration::from_secs(5),
        },
    )?;
    let embedded = Backend::Embedded(db.clone());
    let remote = Backend::Remote(client);
    let mut round = 0;
    // Warm both paths (vector index loaded, connection up).
    library_ops(&embedded, &ids, 50, 3, &mut round)?;
    library_ops(&remote, &ids, 50, 3, &mut round)?;
    let [eg, ei, es, eq] = library_ops(&embedded, &ids, gets, reps, &mut round)?;
    let [rg, ri, rs, rq] = library_ops(&remote, &ids, gets, reps, &mut round)?;
    report(
        "library: rem_service::Backend embedded vs Client (same process, loopback gRPC)",
        &[
            Row {
                op: "get",
                embedded: eg,
                remote: rg,
            },
            Row {
                op: "insert 1,000",
                embedded: ei,
                remote: ri,
            },
            Row {
                op: "search top 10",
                embedded: es,
                remote: rs,
            },
            Row {
                op: "SQL group by",
                embedded: eq,
                remote: rq,
            },
        ],
    );
    let _ = stop.send(true);
    let _ = rt.block_on(server);
    drop(remote);
    drop(embedded);
    db.flush()?;
    drop(db);

    // 2. CLI processes: direct open, then through `rem serve`.
    let home = dir.path();
    let get_id = ids[ids.len() / 2].clone();
    let mut lines = Vec::new();
    for i in 0..1000 {
        writeln!(lines, "{}", event(9_999, i))?;
    }
    let commands: Vec<CliCase<'_>> = vec![
        ("rem get", vec!["get", &get_id], None),
        (
            "rem insert --batch 1,000",
            vec!["insert", "events", "--batch"],
            Some(&lines),
        ),
        (
            "rem search",
            vec!["search", "fast storage engines", "--schema", "notes"],
            None,
        ),
        (
            "rem query",
            vec![
                "query",
                "SELECT category, COUNT(*) AS n FROM notes GROUP BY category",
            ],
            None,
        ),
    ];
    let mut direct = Vec::new();
    for (_, args, stdin) in &commands {
        cli_times(home, &models, args, *stdin, 1)?;
        direct.push(cli_times(home, &models, args, *stdin, cli_reps)?);
    }
    let mut served = rem(home, &models)
        .args(["serve", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while !db_path.join("SERVER").exists() {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "rem serve did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut through = Vec::new();
    let result = (|| -> Result<()> {
        for (_, args, stdin) in &commands {
            cli_times(home, &models, args, *stdin, 1)?;
            through.push(cli_times(home, &models, args, *stdin, cli_reps)?);
        }
        Ok(())
    })();
    let _ = served.kill();
    let _ = served.wait();
    result?;
    let rows: Vec<Row> = commands
        .iter()
        .zip(direct.into_iter().zip(through))
        .map(|((op, _, _), (embedded, remote))| Row {
            op,
            embedded,
            remote,
        })
        .collect();
    report(
        "CLI: each command a new `rem` process; embedded = opens the database, remote = through `rem serve`",
        &rows,
    );
    Ok(())
}
