//! Replication with real processes on 127.0.0.1: the seeds' "Peer Replication
//! Testing" walkthrough (primary, two replicas, failover, automatic catch-up), commands
//! going through a running server, convergence checked by content checksums, and
//! kills of the primary and of a replica. Every wait is bounded in time.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{path_str, Rem};

const ARTICLES: &str = r#"{"name": "articles", "key_field": "title",
 "description": "Articles replicated between nodes",
 "indexed_fields": ["category"], "embedding_fields": ["content"],
 "properties": {"title": {"type": "string"}, "content": {"type": "string"},
                "category": {"type": "string"}}}"#;

/// The token the nodes of a test share (a replica follows its primary with it).
const TOKEN: &str = "test-cluster-token";

/// A sandbox with `rem init` run and the cluster's token configured.
fn node() -> Rem {
    let rem = Rem::init();
    rem.set_env("P8_REPLICATION_TOKEN", TOKEN);
    rem
}

/// A background `rem` process, killed when dropped.
struct Proc(Child);

impl Proc {
    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most `secs`) until `check` holds.
fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn endpoint(rem: &Rem) -> std::path::PathBuf {
    rem.db_path().join("SERVER")
}

fn spawn_with(rem: &Rem, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let child = rem
        .command()
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rem");
    Proc(child)
}

/// `rem serve` on `port`, waiting for its endpoint file to name it.
fn serve(rem: &Rem, port: u16) -> Proc {
    serve_with(rem, port, &[])
}

fn serve_with(rem: &Rem, port: u16, env: &[(&str, &str)]) -> Proc {
    let _ = std::fs::remove_file(endpoint(rem));
    let p = spawn_with(
        rem,
        &["serve", "--host", "127.0.0.1", "--port", &port.to_string()],
        env,
    );
    wait_for("the primary to serve", 60, || endpoint(rem).exists());
    p
}

fn follow(rem: &Rem, port: u16) -> Proc {
    follow_with(rem, port, &[])
}

fn follow_with(rem: &Rem, port: u16, env: &[(&str, &str)]) -> Proc {
    let p = spawn_follower(rem, port, env);
    wait_for("the replica to serve", 60, || endpoint(rem).exists());
    p
}

/// `rem replicate --primary 127.0.0.1:<port> --follow`, not waiting for it.
fn spawn_follower(rem: &Rem, port: u16, env: &[(&str, &str)]) -> Proc {
    spawn_with(
        rem,
        &[
            "replicate",
            "--primary",
            &format!("127.0.0.1:{port}"),
            "--follow",
        ],
        env,
    )
}

fn status(rem: &Rem) -> Value {
    rem.json(&["replication", "status"])
}

fn wait_synced(replica: &Rem, primary_seq: u64) {
    wait_for("the replica to catch up", 120, || {
        let s = status(replica);
        s["state"] == "synced" && s["applied_seq"].as_u64() == Some(primary_seq)
    });
}

fn checksum(rem: &Rem) -> Value {
    rem.json(&["replication", "checksum"])
}

fn seq(rem: &Rem) -> u64 {
    rem.json(&["replication", "wal-status"])["seq"]
        .as_u64()
        .unwrap()
}

fn titles(rem: &Rem) -> Vec<String> {
    let rows = rem.json(&["query", "SELECT title FROM articles ORDER BY title"]);
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_string())
        .collect()
}

fn add_schema(rem: &Rem) {
    let schema = rem.write_file("articles.json", ARTICLES);
    rem.ok(&["schema", "add", path_str(&schema)]);
}

#[test]
fn walkthrough_two_replicas_failover_and_catch_up() {
    // Terminal 1: the primary.
    let primary = node();
    add_schema(&primary);
    let port = free_port();
    let mut server = serve(&primary, port);
    // Commands on the served database go through the server (no lock error).
    primary.ok(&[
        "insert",
        "articles",
        r#"{"title": "Doc 1", "content": "Test replication", "category": "test"}"#,
    ]);
    let wal = primary.json(&["replication", "wal-status"]);
    assert!(wal["entries"].as_u64().unwrap() >= 1, "{wal}");
    assert!(wal["bytes"].as_u64().unwrap() > 0);
    let text = primary.ok(&["replication", "wal-status", "--format", "table"]);
    assert!(
        text.contains("WAL sequence: ") && text.contains("Entries: "),
        "{text}"
    );

    // Terminals 2 and 3: two replicas.
    let r1 = node();
    let r2 = node();
    let _f1 = follow(&r1, port);
    let _f2 = follow(&r2, port);
    let at = seq(&primary);
    wait_synced(&r1, at);
    wait_synced(&r2, at);
    let s = r1.ok(&["replication", "status", "--format", "table"]);
    for line in [
        "Mode: replica",
        &format!("Primary: 127.0.0.1:{port}"),
        "Status: synced",
        "Lag: ",
    ] {
        assert!(s.contains(line), "{line} missing from:\n{s}");
    }
    assert_eq!(titles(&r1), vec!["Doc 1"]);
    let count = r2.json(&["query", "SELECT COUNT(*) AS n FROM articles"]);
    assert_eq!(count[0]["n"], 1);
    // Same content, index entries and vectors; same search results.
    assert_eq!(checksum(&r1), checksum(&primary));
    assert_eq!(checksum(&r2), checksum(&primary));
    let search = |rem: &Rem| rem.json(&["search", "replication test", "--schema", "articles"]);
    assert_eq!(search(&r1)["results"], search(&primary)["results"]);
    // Replicas refuse local writes, with one clear line.
    let err = r1.fails(&["insert", "articles", r#"{"title": "local"}"#]);
    assert!(err.contains("replica of 127.0.0.1"), "{err}");

    // Failover: the primary dies; replicas keep serving reads.
    server.kill();
    assert_eq!(titles(&r1), vec!["Doc 1"]);
    wait_for("the replica to notice the outage", 30, || {
        status(&r1)["state"] == "disconnected"
    });
    let s = r1.ok(&["replication", "status", "--format", "table"]);
    assert!(
        s.contains("Status: disconnected") && s.contains("Last contact: "),
        "{s}"
    );

    // The primary restarts and takes a write; the replicas catch up by themselves.
    server = serve(&primary, port);
    primary.ok(&[
        "insert",
        "articles",
        r#"{"title": "Doc 2", "content": "After restart", "category": "test"}"#,
    ]);
    let at = seq(&primary);
    wait_synced(&r1, at);
    wait_synced(&r2, at);
    let newest = r1.json(&[
        "query",
        "SELECT title FROM articles ORDER BY created_at DESC LIMIT 1",
    ]);
    assert_eq!(newest[0]["title"], "Doc 2");
    let s = r1.ok(&["replication", "status", "--format", "table"]);
    assert!(
        s.contains("Status: synced") && s.contains("Catchup: completed"),
        "{s}"
    );
    assert_eq!(checksum(&r2), checksum(&primary));
    drop(server);
}

/// Upserts, deletes, explicit edges and `references` lists, in batches.
fn write_burst(rem: &Rem, round: usize, n: usize) {
    let mut lines = String::new();
    for i in 0..n {
        let k = (round * 7 + i) % (n + 50);
        let category = ["a", "b", "c"][i % 3];
        lines.push_str(
            &json!({
                "title": format!("T{k}"), "content": format!("round {round} item {i}"),
                "category": category,
                "edges": if i % 4 == 0 { json!([format!("articles:T{}", (k + 1) % (n + 50))]) } else { json!([]) },
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let out = rem.run_with_stdin(
        &["insert", "articles", "--batch", "--batch-size", "97"],
        &lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rem.ok(&[
        "edge",
        "add",
        &format!("T{round}"),
        &format!("T{}", round + 3),
        "--type",
        "cites",
        "--props",
        r#"{"w": 1}"#,
    ]);
    if round % 2 == 1 {
        let found = rem.json(&["lookup", &format!("T{}", 100 + round * 5)]);
        if let Some(id) = found
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e["id"].as_str())
        {
            rem.ok(&["delete", id]);
        }
        let _ = rem.run(&[
            "edge",
            "rm",
            &format!("T{}", round - 1),
            &format!("T{}", round + 2),
            "--type",
            "cites",
        ]);
    }
}

#[test]
fn replicas_converge_through_kills_of_primary_and_replica() {
    let primary = node();
    // Without embeddings, so the burst measures replication rather than the model.
    no_embeddings_schema(&primary);
    let port = free_port();
    let mut server = serve(&primary, port);
    let r1 = node();
    let r2 = node();
    let _f1 = follow(&r1, port);
    let mut f2 = follow(&r2, port);
    // 7 bursts of 1,400 upserts (with `references` edges), explicit edges added and
    // removed, deletes, and 300 single inserts: over 10,000 writes.
    for round in 0..4 {
        write_burst(&primary, round, 1400);
    }
    // SIGKILL the replica while it applies a burst, then restart it.
    write_burst(&primary, 4, 1400);
    f2.kill();
    write_burst(&primary, 5, 1400);
    f2 = follow(&r2, port);
    // SIGKILL the primary while a client writes through it; every insert that was
    // acknowledged (exit 0 with an id) must survive.
    let writer = {
        let home = primary.home.path().to_path_buf();
        let models = super::models_dir();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in 0..300 {
                let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rem"));
                for (k, _) in std::env::vars() {
                    if k.starts_with("P8_") {
                        c.env_remove(k);
                    }
                }
                let out = c
                    .env("P8_HOME", &home)
                    .env("P8_MODELS_DIR", &models)
                    .args(["insert", "articles"])
                    .arg(
                        json!({"title": format!("K{i}"), "content": "burst", "category": "k"})
                            .to_string(),
                    )
                    .output()
                    .unwrap();
                if out.status.success() {
                    acked.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    let acked_ids = writer.join().unwrap();
    assert!(!acked_ids.is_empty());
    server = serve(&primary, port);
    for id in &acked_ids {
        assert!(
            primary.run(&["get", id]).status.success(),
            "acknowledged {id} lost"
        );
    }
    write_burst(&primary, 6, 1400);
    assert_converged(&primary, &[&r1, &r2]);
    drop(f2);
    drop(server);
}

#[test]
fn wrong_token_and_non_empty_replica_are_refused() {
    let primary = Rem::init();
    let port = free_port();
    let p = primary
        .command()
        .env("P8_REPLICATION_TOKEN", "s3cret")
        .args(["serve", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(p);
    wait_for("the primary to serve", 60, || endpoint(&primary).exists());
    // A command without the token is refused by the server.
    let out = primary.run(&["stats"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    let replica = Rem::init();
    let out = replica
        .command()
        .env("P8_REPLICATION_TOKEN", "wrong")
        .args(["replicate", "--primary", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let err = super::check_failure(&["replicate"], &out);
    assert!(err.contains("wrong token"), "{err}");
    let ok = replica
        .command()
        .env("P8_REPLICATION_TOKEN", "s3cret")
        .args(["replicate", "--primary", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A database with its own data cannot become a replica.
    let other = Rem::init();
    add_schema(&other);
    let err = other.fails(&["replicate", "--primary", &format!("127.0.0.1:{port}")]);
    assert!(err.contains("its own data"), "{err}");
    // Promotion: the replica becomes a primary and accepts writes.
    replica.ok(&["replication", "promote"]);
    assert!(!Path::new(&endpoint(&replica)).exists());
    replica.ok(&[
        "schema",
        "add",
        path_str(&replica.write_file("a.json", ARTICLES)),
    ]);
}

/// Waits until every replica has applied all of the primary's log, then checks that
/// each has the same content (checksums), passes `rem verify` and returns the same rows.
fn assert_converged(primary: &Rem, replicas: &[&Rem]) {
    let at = seq(primary);
    for r in replicas {
        wait_synced(r, at);
    }
    let want = checksum(primary);
    for r in replicas {
        assert_eq!(checksum(r), want);
        let v = r.ok(&["verify"]);
        assert!(v.starts_with("ok: "), "{v}");
        assert_eq!(titles(r), titles(primary));
    }
}

/// An `articles` record with title "Doc {i}".
fn article(i: usize) -> String {
    format!(r#"{{"title": "Doc {i}", "content": "c", "category": "test"}}"#)
}

/// The port the server of `rem`'s database listens on (from its SERVER file).
fn served_port(rem: &Rem) -> u16 {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(endpoint(rem)).unwrap()).unwrap();
    let address = doc["address"].as_str().unwrap();
    address.rsplit(':').next().unwrap().parse().unwrap()
}

fn wal(rem: &Rem) -> Value {
    rem.json(&["replication", "wal-status"])
}

fn no_embeddings_schema(rem: &Rem) {
    let schema = ARTICLES.replace(r#""embedding_fields": ["content"],"#, "");
    let f = rem.write_file("articles.json", &schema);
    rem.ok(&["schema", "add", path_str(&f)]);
}

#[test]
fn a_replica_past_retention_bootstraps_from_a_snapshot() {
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    // The primary keeps only the newest 200 change records.
    let mut server = serve_with(&primary, port, &[("P8_WAL_RETENTION_SIZE", "200")]);
    let r1 = node();
    let mut f1 = follow(&r1, port);
    write_burst(&primary, 0, 300);
    wait_synced(&r1, seq(&primary));
    // r1 stops; the primary writes on and trims its log past r1's watermark.
    f1.kill();
    let stopped_at = seq(&r1);
    for round in 1..4 {
        write_burst(&primary, round, 300);
    }
    wait_for("retention to trim the primary's log", 30, || {
        wal(&primary)["first_seq"].as_u64().unwrap() > stopped_at + 1
    });
    // r1 comes back and a new replica r2 joins: neither can be served from the log.
    // r1 trims its own log as well.
    f1 = follow_with(&r1, port, &[("P8_WAL_RETENTION_SIZE", "200")]);
    let r2 = node();
    let f2 = follow(&r2, port);
    let at = seq(&primary);
    wait_synced(&r1, at);
    wait_synced(&r2, at);
    for r in [&r1, &r2] {
        // The replica's log is the primary's trimmed one: it came with the snapshot.
        assert!(wal(r)["first_seq"].as_u64().unwrap() > 1, "{}", wal(r));
        assert_eq!(status(r)["mode"], "replica");
        let err = r.fails(&["insert", "articles", r#"{"title": "local"}"#]);
        assert!(err.contains("replica"), "{err}");
    }
    // They keep following after the bootstrap, through a primary restart too.
    write_burst(&primary, 4, 300);
    server.kill();
    server = serve_with(&primary, port, &[("P8_WAL_RETENTION_SIZE", "200")]);
    write_burst(&primary, 5, 300);
    assert_converged(&primary, &[&r1, &r2]);
    wait_for("retention on the replica", 30, || {
        wal(&r1)["entries"].as_u64().unwrap() <= 200
    });
    // No staging or replaced folder is left beside the replicas.
    for r in [&r1, &r2] {
        let parent = r.db_path().parent().unwrap().to_path_buf();
        let leftovers: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snapshot") || n.ends_with(".replaced"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    drop((f1, f2, server));
}

#[test]
fn tls_replication_and_commands_through_a_tls_server() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let primary = node();
    let cert = primary.write_file("cert.pem", &certified.cert.pem());
    let key = primary.write_file("key.pem", &certified.signing_key.serialize_pem());
    let wrong_ca = primary.write_file("other.pem", &other.cert.pem());
    let (cert, key, wrong_ca) = (path_str(&cert), path_str(&key), path_str(&wrong_ca));
    no_embeddings_schema(&primary);
    let port = free_port();
    let tls_server = [
        ("P8_REPLICATION_TLS_CERT", cert),
        ("P8_REPLICATION_TLS_KEY", key),
    ];
    let _server = serve_with(&primary, port, &tls_server);
    // A command through the TLS server needs the CA, and says so without it.
    let err = primary.fails(&["stats"]);
    assert!(err.contains("P8_REPLICATION_TLS_CA"), "{err}");
    primary.set_env("P8_REPLICATION_TLS_CA", cert);
    primary.ok(&[
        "insert",
        "articles",
        r#"{"title": "over TLS", "category": "a"}"#,
    ]);
    // A replica trusting the server's certificate follows over TLS (and serves its
    // own commands over TLS).
    let replica = node();
    for (k, v) in [("P8_REPLICATION_TLS_CA", cert)]
        .into_iter()
        .chain(tls_server)
    {
        replica.set_env(k, v);
    }
    let _f = follow(&replica, port);
    write_burst(&primary, 0, 50);
    wait_synced(&replica, seq(&primary));
    assert_eq!(checksum(&replica), checksum(&primary));
    // A replica without TLS, or trusting another certificate, is refused.
    let url = format!("127.0.0.1:{port}");
    for env in [None, Some(wrong_ca)] {
        let r = node();
        let mut c = r.command();
        if let Some(ca) = env {
            c.env("P8_REPLICATION_TLS_CA", ca);
        }
        let out = c.args(["replicate", "--primary", &url]).output().unwrap();
        let err = super::check_failure(&["replicate"], &out);
        let expected = if env.is_none() {
            "P8_REPLICATION_TLS_CA"
        } else {
            "certificate"
        };
        assert!(err.contains(expected), "{err}");
        assert_eq!(seq(&r), 0, "{err}");
    }
    // Half a TLS configuration is refused with a clear error.
    let r = node();
    let out = r
        .command()
        .env("P8_REPLICATION_TLS_CERT", cert)
        .args(["serve", "--port", &free_port().to_string()])
        .output()
        .unwrap();
    let err = super::check_failure(&["serve"], &out);
    assert!(err.contains("P8_REPLICATION_TLS_KEY"), "{err}");
}

/// A replica that got changes from its old primary after another replica was promoted
/// has a history the new primary does not share: pointed at the new primary it is
/// refused (nothing applied) with where they diverged and how to rebuild, and
/// `--rebuild` brings it to the new primary's content.
#[test]
fn a_replica_whose_history_diverged_is_refused_and_rebuilds() {
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    let mut server = serve(&primary, port);
    let (r, q) = (node(), node());
    let mut follow_r = follow(&r, port);
    let mut follow_q = follow(&q, port);
    for i in 0..3 {
        primary.ok(&["insert", "articles", &article(i)]);
    }
    let at = seq(&primary);
    wait_synced(&r, at);
    wait_synced(&q, at);

    // q is promoted and takes its own writes; the old primary takes others, which r gets.
    follow_q.kill();
    q.ok(&["replication", "promote"]);
    for i in 10..15 {
        q.ok(&["insert", "articles", &article(i)]);
    }
    for i in 20..22 {
        primary.ok(&["insert", "articles", &article(i)]);
    }
    wait_synced(&r, seq(&primary));
    follow_r.kill();
    server.kill();
    let r_seq = seq(&r);
    assert!(r_seq < seq(&q), "the test needs r behind q's sequence");

    // Pointed at q: refused, nothing applied.
    let q_port = free_port();
    let _q_server = serve(&q, q_port);
    let q_addr = format!("127.0.0.1:{q_port}");
    let out = r.run(&["replicate", "--primary", &q_addr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("diverged") && err.contains("--rebuild"),
        "{err}"
    );
    assert_eq!(seq(&r), r_seq);
    assert_ne!(titles(&r), titles(&q));

    // Rebuilt from a snapshot of q: the same content.
    r.ok(&["replicate", "--primary", &q_addr, "--rebuild"]);
    assert_eq!(checksum(&r), checksum(&q));
    assert_eq!(titles(&r), titles(&q));
    assert!(r.ok(&["verify"]).starts_with("ok:"));
    // And it follows q from now on.
    q.ok(&["insert", "articles", &article(30)]);
    r.ok(&["replicate", "--primary", &q_addr]);
    assert_eq!(checksum(&r), checksum(&q));
}

/// A replica serves its own replica: writes on the primary reach both, in order, with
/// the same content; the second replica survives its upstream replica restarting.
#[test]
fn a_replica_of_a_replica_converges() {
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    let _server = serve(&primary, port);
    let (r1, r2) = (node(), node());
    let mut follow_r1 = follow(&r1, port);
    let upstream_port = served_port(&r1);
    let mut follow_r2 = follow(&r2, upstream_port);
    for i in 0..5 {
        primary.ok(&["insert", "articles", &article(i)]);
    }
    let at = seq(&primary);
    wait_synced(&r1, at);
    wait_synced(&r2, at);
    assert_eq!(checksum(&r1), checksum(&primary));
    assert_eq!(checksum(&r2), checksum(&primary));
    assert_eq!(titles(&r2), titles(&primary));
    assert!(r2.ok(&["verify"]).starts_with("ok:"));
    // r1 restarts (on another port: its server binds a free one); r2 is pointed at it again
    // and catches up on what the primary wrote meanwhile.
    follow_r1.kill();
    for i in 5..8 {
        primary.ok(&["insert", "articles", &article(i)]);
    }
    // The killed process left its SERVER file: wait for the new one.
    let _ = std::fs::remove_file(endpoint(&r1));
    let _follow_r1 = follow(&r1, port);
    let upstream_port = served_port(&r1);
    let at = seq(&primary);
    wait_synced(&r1, at);
    follow_r2.kill();
    r2.ok(&[
        "replicate",
        "--primary",
        &format!("127.0.0.1:{upstream_port}"),
    ]);
    assert_eq!(checksum(&r2), checksum(&primary));
}

/// A TCP proxy on 127.0.0.1 between a replica and its primary that, for each of the
/// first `faulty` connections, cuts the primary→replica stream after a random number of
/// bytes (mid-message, mid-batch), half of them after stalling it for 1–2 s partway;
/// later connections pass through. Counts the faults (cuts and stalls) it injected.
struct FaultyLink {
    port: u16,
    faults: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyLink {
    fn start(upstream: u16, faulty: usize, seed: u64) -> FaultyLink {
        Self::start_with(upstream, faulty, seed, None)
    }

    /// [`FaultyLink::start`], passing at most `rate` bytes a second to the replica.
    fn start_with(upstream: u16, faulty: usize, seed: u64, rate: Option<usize>) -> FaultyLink {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&faults), Arc::clone(&stop));
        std::thread::spawn(move || {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut connections = 0usize;
            let started = Instant::now();
            // Bounded in time; the test ends long before.
            while !s.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(600) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                connections += 1;
                // A faulty connection is cut after `cut` bytes, and half of them stall
                // for 1–2 s after `stall` bytes first.
                let plan: Option<(Option<usize>, usize)> = (connections <= faulty).then(|| {
                    let cut = rng.gen_range(200..60_000);
                    (rng.gen_bool(0.5).then(|| rng.gen_range(100..cut)), cut)
                });
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // replica → primary: passed through.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (c2, s2);
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                });
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    let mut buf = [0u8; 4096];
                    let mut passed = 0usize;
                    let mut stalled = false;
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut chunk = &buf[..n];
                        if let Some((stall, cut)) = plan {
                            if let Some(at) =
                                stall.filter(|at| !stalled && passed + chunk.len() > *at)
                            {
                                let head = at.saturating_sub(passed).min(chunk.len());
                                if to.write_all(&chunk[..head]).is_err() {
                                    break;
                                }
                                stalled = true;
                                f.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(
                                    1000 + (at % 1000) as u64,
                                ));
                                passed += head;
                                chunk = &chunk[head..];
                            }
                            if passed + chunk.len() > cut {
                                let head = cut.saturating_sub(passed).min(chunk.len());
                                let _ = to.write_all(&chunk[..head]);
                                f.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                        }
                        if to.write_all(chunk).is_err() {
                            break;
                        }
                        passed += chunk.len();
                        if let Some(rate) = rate {
                            std::thread::sleep(Duration::from_secs_f64(
                                chunk.len() as f64 / rate as f64,
                            ));
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                });
            }
        });
        FaultyLink { port, faults, stop }
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_replica_behind_a_link_that_cuts_and_stalls_converges() {
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    let _server = serve(&primary, port);
    let seed: u64 = std::env::var("LINK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("faulty link seed: {seed} (rerun with LINK_SEED={seed})");
    let link = FaultyLink::start(port, 6, seed);
    let replica = node();
    // Writes before the replica starts (a catch-up through the faults), then during.
    write_burst(&primary, 0, 1400);
    let _follower = spawn_follower(&replica, link.port, &[]);
    for round in 1..5 {
        write_burst(&primary, round, 1400);
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_for("the link to inject its faults", 120, || {
        link.faults.load(std::sync::atomic::Ordering::SeqCst) >= 6
    });
    write_burst(&primary, 5, 1400);
    // Converged: same content (checksum), same log position and length, verify clean.
    assert_converged(&primary, &[&replica]);
    assert_eq!(wal(&replica)["seq"], wal(&primary)["seq"]);
    assert_eq!(
        wal(&replica)["entries"],
        wal(&primary)["entries"],
        "a change applied twice or missing"
    );
    eprintln!(
        "{} faults injected; replica at seq {}",
        link.faults.load(std::sync::atomic::Ordering::SeqCst),
        seq(&replica)
    );
}

/// Entries beside a replica's database that a snapshot bootstrap stages or sets aside.
fn staging(rem: &Rem) -> Vec<String> {
    let parent = rem.db_path().parent().unwrap().to_path_buf();
    std::fs::read_dir(&parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snapshot") || n.ends_with(".replaced"))
        .collect()
}

#[test]
fn a_replica_killed_during_its_snapshot_download_recovers() {
    use rand::{Rng, SeedableRng};
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    // The log keeps 200 changes: a new replica must bootstrap from a snapshot.
    let _server = serve_with(&primary, port, &[("P8_WAL_RETENTION_SIZE", "200")]);
    for round in 0..4 {
        write_burst(&primary, round, 1400);
    }
    wait_for("retention to trim the primary's log", 30, || {
        wal(&primary)["first_seq"].as_u64().unwrap() > 1
    });
    let seed: u64 = rand::random();
    eprintln!("snapshot kill seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // 200 KB/s: the download takes seconds, so the kills land inside it.
    let link = FaultyLink::start_with(port, 0, seed, Some(200 * 1024));
    let replica = node();
    let mut killed_while_staging = 0;
    for _ in 0..3 {
        let _ = std::fs::remove_file(endpoint(&replica));
        let mut f = spawn_follower(&replica, link.port, &[]);
        wait_for("a snapshot download to start", 60, || {
            !staging(&replica).is_empty()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..1500)));
        if !staging(&replica).is_empty() {
            killed_while_staging += 1;
        }
        f.kill();
    }
    assert!(killed_while_staging > 0, "no kill landed in a download");
    // Straight to the primary now: the bootstrap completes and the replica follows.
    let _ = std::fs::remove_file(endpoint(&replica));
    let _f = follow(&replica, port);
    write_burst(&primary, 4, 1400);
    assert_converged(&primary, &[&replica]);
    assert!(staging(&replica).is_empty(), "{:?}", staging(&replica));
    eprintln!("{killed_while_staging} of 3 kills landed while the snapshot was staged");
}

/// A crash pinned before, between and after the two renames of a snapshot install
/// (kill points, `P8_KILL_POINT`): the follower dies there, leaving the state the
/// point names, and the next start finishes or redoes the install and converges.
#[test]
fn a_replica_killed_inside_the_snapshot_swap_recovers() {
    use std::os::unix::process::ExitStatusExt;
    let primary = node();
    no_embeddings_schema(&primary);
    let port = free_port();
    let _server = serve_with(&primary, port, &[("P8_WAL_RETENTION_SIZE", "200")]);
    for round in 0..2 {
        write_burst(&primary, round, 600);
    }
    wait_for("retention to trim the primary's log", 30, || {
        wal(&primary)["first_seq"].as_u64().unwrap() > 1
    });
    for point in ["staged", "set-aside", "swapped"] {
        let replica = node();
        let mut f = spawn_follower(
            &replica,
            port,
            &[("P8_KILL_POINT", &format!("snapshot-install:{point}"))],
        );
        let start = Instant::now();
        let status = loop {
            if let Some(status) = f.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the follower never reached kill point {point}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            status.signal(),
            Some(6),
            "{point}: died by SIGABRT, not {status:?}"
        );
        let db = replica.db_path();
        let replaced = staging(&replica).iter().any(|n| n.ends_with(".replaced"));
        match point {
            "staged" => assert!(db.exists() && !replaced, "{point}"),
            "set-aside" => assert!(!db.exists() && replaced, "{point}"),
            _ => assert!(db.exists() && replaced, "{point}"),
        }
        let _ = std::fs::remove_file(endpoint(&replica));
        let _f = follow(&replica, port);
        assert_converged(&primary, &[&replica]);
        assert!(
            staging(&replica).is_empty(),
            "{point}: {:?}",
            staging(&replica)
        );
    }
}

#[test]
fn a_replica_of_a_synced_primary_converges() {
    // P8_ROCKSDB_SYNC on the primary: commits are grouped into fsyncs and only durable
    // changes are shipped; the replica still receives all of them.
    let primary = node();
    primary.set_env("P8_ROCKSDB_SYNC", "true");
    no_embeddings_schema(&primary);
    let port = free_port();
    let _server = serve(&primary, port);
    let replica = node();
    let _f = follow(&replica, port);
    for round in 0..3 {
        write_burst(&primary, round, 400);
    }
    assert_converged(&primary, &[&replica]);
    assert_eq!(wal(&replica)["entries"], wal(&primary)["entries"]);
}
