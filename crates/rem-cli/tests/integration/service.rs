//! The typed service with real `rem serve` processes on 127.0.0.1: no input is lost
//! after a server is killed, every RPC needs the token, a non-loopback bind needs TLS,
//! and a client can make the server read no path and run no code. Every wait is
//! bounded in time.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rem_service::proto::database_client::DatabaseClient;
use rem_service::proto::*;
use serde_json::Value;

use crate::{path_str, Rem, PERSON_YAML};

/// A background `rem` process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

fn server_file(rem: &Rem) -> PathBuf {
    rem.db_path().join("SERVER")
}

/// `rem serve` on a free port; waits for its SERVER file.
fn serve(rem: &Rem, extra_env: &[(&str, &str)]) -> Proc {
    let _ = std::fs::remove_file(server_file(rem));
    let child = rem
        .command()
        .envs(extra_env.iter().copied())
        .args(["serve", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rem serve");
    wait_for("the server to start", 60, || server_file(rem).exists());
    Proc(child)
}

fn address(rem: &Rem) -> String {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(server_file(rem)).unwrap()).unwrap();
    doc["address"].as_str().unwrap().to_string()
}

fn with_person() -> Rem {
    let rem = Rem::init();
    rem.ok(&[
        "schema",
        "add",
        path_str(&rem.write_file("p.yaml", PERSON_YAML)),
    ]);
    rem
}

fn people(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "p{i}", "email": "{tag}{i}@x", "role": "r{}"}}"#,
                i % 3
            ) + "\n"
        })
        .collect()
}

#[test]
fn after_a_server_is_killed_batch_inserts_store_everything() {
    let rem = with_person();
    let mut server = serve(&rem, &[]);
    // Through the live server first.
    let out = rem.run_with_stdin(&["insert", "person", "--batch"], &people(300, "a"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rem.rows("person"), 300);
    // SIGKILL leaves the SERVER file behind, pointing at nothing.
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert!(server_file(&rem).exists());
    let out = rem.run_with_stdin(
        &["insert", "person", "--batch", "--batch-size", "64"],
        &people(1000, "b"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "wrote 1000 records to person"
    );
    assert_eq!(rem.rows("person"), 1300);
    // A new server on the same database: the stale file is replaced, and a batch
    // through it stores every record too.
    let _server = serve(&rem, &[]);
    let out = rem.run_with_stdin(&["insert", "person", "--batch"], &people(500, "c"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rem.rows("person"), 1800);
    assert!(rem.ok(&["verify"]).starts_with("ok: "));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A request carrying `token` (none when `None`).
fn req<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert("x-rem-token", t.parse().unwrap());
    }
    r
}

/// Every RPC of both services with `token`; returns the status codes of the refusals
/// (calls that were not refused as unauthenticated are reported by name).
fn call_everything(address: &str, token: Option<&str>) -> Vec<String> {
    use rem_replication::proto::replication_client::ReplicationClient;
    use rem_replication::proto::{
        HeartbeatRequest, SnapshotRequest, StatusRequest, SubscribeRequest,
    };
    let rt = runtime();
    rt.block_on(async {
        let url = format!("http://{address}");
        let mut db = DatabaseClient::connect(url.clone()).await.unwrap();
        let mut repl = ReplicationClient::connect(url).await.unwrap();
        let mut admitted = Vec::new();
        macro_rules! check {
            ($name:expr, $call:expr) => {
                match $call.await {
                    Err(s) if s.code() == tonic::Code::Unauthenticated => {}
                    Err(s) => admitted.push(format!("{} ({:?}: {})", $name, s.code(), s.message())),
                    Ok(_) => admitted.push(format!("{} (answered)", $name)),
                }
            };
        }
        check!("Hello", db.hello(req(HelloRequest {}, token)));
        check!(
            "RegisterSchema",
            db.register_schema(req(
                RegisterSchemaRequest {
                    document_json: "{}".into()
                },
                token
            ))
        );
        check!(
            "ListSchemas",
            db.list_schemas(req(ListSchemasRequest {}, token))
        );
        check!(
            "GetSchema",
            db.get_schema(req(
                GetSchemaRequest {
                    name: "person".into()
                },
                token
            ))
        );
        let batch = InsertRequest {
            table: "person".into(),
            records_json: vec![r#"{"name": "x", "email": "x@x"}"#.into()],
            vectors: vec![],
        };
        check!(
            "Insert",
            db.insert(req(tokio_stream::iter(vec![batch]), token))
        );
        check!(
            "Delete",
            db.delete(req(DeleteRequest { id: "x".into() }, token))
        );
        check!(
            "Get",
            db.get(req(
                GetRequest {
                    id: "x".into(),
                    include_deleted: false
                },
                token
            ))
        );
        check!(
            "Lookup",
            db.lookup(req(LookupRequest { key: "x@x".into() }, token))
        );
        check!(
            "Search",
            db.search(req(
                SearchRequest {
                    query: "x".into(),
                    top_k: 1,
                    ..Default::default()
                },
                token
            ))
        );
        check!(
            "Sql",
            db.sql(req(
                SqlRequest {
                    sql: "SELECT 1".into(),
                    include_deleted: false
                },
                token
            ))
        );
        check!(
            "AddEdge",
            db.add_edge(req(
                AddEdgeRequest {
                    src: "a".into(),
                    dst: "b".into(),
                    edge_type: "t".into(),
                    ..Default::default()
                },
                token
            ))
        );
        check!(
            "RemoveEdge",
            db.remove_edge(req(
                RemoveEdgeRequest {
                    src: "a".into(),
                    dst: "b".into(),
                    edge_type: "t".into()
                },
                token
            ))
        );
        check!(
            "Edges",
            db.edges(req(
                EdgesRequest {
                    entity: "a".into(),
                    direction: "both".into(),
                    edge_type: String::new()
                },
                token
            ))
        );
        check!(
            "Traverse",
            db.traverse(req(
                TraverseRequest {
                    entity: "a".into(),
                    depth: 1,
                    direction: "out".into(),
                    ..Default::default()
                },
                token
            ))
        );
        check!(
            "Path",
            db.path(req(
                PathRequest {
                    from: "a".into(),
                    to: "b".into(),
                    direction: "out".into(),
                    max_depth: 2,
                    ..Default::default()
                },
                token
            ))
        );
        let chunk = IngestChunk {
            uri: "file:///x.txt".into(),
            name: "x.txt".into(),
            data: b"hi".to_vec(),
            last: true,
            ..Default::default()
        };
        check!(
            "Ingest",
            db.ingest(req(tokio_stream::iter(vec![chunk]), token))
        );
        check!(
            "Export",
            db.export(req(
                ExportRequest {
                    table: "person".into(),
                    format: "jsonl".into(),
                    compression: "none".into(),
                    row_group_size: 10,
                    ..Default::default()
                },
                token
            ))
        );
        check!("Stats", db.stats(req(StatsRequest {}, token)));
        check!("Verify", db.verify(req(VerifyRequest {}, token)));
        check!("Checksum", db.checksum(req(ChecksumRequest {}, token)));
        check!("Promote", db.promote(req(PromoteRequest {}, token)));
        check!(
            "Status",
            db.status(req(rem_service::proto::StatusRequest {}, token))
        );
        check!(
            "Subscribe",
            repl.subscribe(req(
                SubscribeRequest {
                    after_seq: 0,
                    replica_name: "t".into(),
                    ..Default::default()
                },
                token
            ))
        );
        check!(
            "Snapshot",
            repl.snapshot(req(
                SnapshotRequest {
                    replica_name: "t".into()
                },
                token
            ))
        );
        check!("GetStatus", repl.get_status(req(StatusRequest {}, token)));
        check!("Heartbeat", repl.heartbeat(req(HeartbeatRequest {}, token)));
        admitted
    })
}

#[test]
fn every_rpc_needs_the_token_and_a_token_file_is_made_when_none_is_set() {
    let rem = with_person();
    let _server = serve(&rem, &[]);
    // No token configured: a random one, in a file only the owner can read.
    let token_file = rem.db_path().join("TOKEN");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.trim().len(), 64, "{token}");
    {
        // The token and the SERVER file are the owner's only, and so is the database
        // directory `rem init` made.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&token_file), 0o600, "TOKEN {:o}", mode(&token_file));
        let server_file = rem.db_path().join("SERVER");
        assert_eq!(mode(&server_file), 0o600, "SERVER {:o}", mode(&server_file));
        assert_eq!(mode(&rem.db_path()), 0o700, "db {:o}", mode(&rem.db_path()));
    }
    let before = rem.last_seq();
    let addr = address(&rem);
    for token in [None, Some("wrong"), Some(&token.trim()[..63])] {
        let admitted = call_everything(&addr, token);
        assert!(admitted.is_empty(), "with token {token:?}: {admitted:?}");
    }
    // Nothing was written by the refused calls; local commands read the token file.
    assert_eq!(rem.last_seq(), before);
    rem.ok(&["insert", "person", r#"{"name": "Ada", "email": "ada@x"}"#]);
    // With the right token, the same client gets through.
    let admitted = call_everything(&addr, Some(token.trim()));
    assert!(
        admitted.iter().any(|a| a.starts_with("Hello (answered)")),
        "{admitted:?}"
    );
    // A command given a wrong token is refused, loudly, and never opens around the server.
    rem.set_env("P8_SERVER_TOKEN", "not-the-token");
    let err = rem.fails(&["lookup", "ada@x"]);
    assert!(err.contains("refused") && err.contains("token"), "{err}");
    let out = rem.run(&["stats"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_remote_server_is_reached_with_its_address_and_token() {
    let rem = with_person();
    let _server = serve(&rem, &[("P8_SERVER_TOKEN", "the-server-token")]);
    // A client elsewhere: its own P8_HOME, no database of its own.
    let client = Rem::new();
    let addr = address(&rem);
    client.set_env("P8_SERVER", &addr);
    client.set_env("P8_SERVER_TOKEN", "the-server-token");
    // The client's settings travel with the request: here its tenant. The schema file
    // is read by the client.
    let yaml = client.write_file("p.yaml", PERSON_YAML);
    client.ok(&["--tenant", "acme", "schema", "add", path_str(&yaml)]);
    let id = client.ok(&[
        "--tenant",
        "acme",
        "insert",
        "person",
        r#"{"name": "A", "email": "a@x"}"#,
    ]);
    let found = client.json(&["--tenant", "acme", "get", id.trim()]);
    assert_eq!(found["email"], "a@x");
    assert!(client.fails(&["get", id.trim()]).contains("no entity"));
    assert!(!client.db_path().exists(), "the client opened no database");
    // --server overrides P8_SERVER; a wrong token is refused.
    let other = Rem::new();
    other.set_env("P8_SERVER_TOKEN", "nope");
    let err = other.fails(&["--server", &addr, "stats"]);
    assert!(err.contains("token"), "{err}");
}

#[test]
fn non_loopback_binds_need_tls_or_insecure() {
    let rem = Rem::init();
    let out = rem
        .command()
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    let err = crate::check_failure(&["serve"], &out);
    assert!(
        err.contains("without TLS") && err.contains("--insecure"),
        "{err}"
    );
    assert!(!server_file(&rem).exists());
    // Explicitly insecure: it serves.
    let child = rem
        .command()
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--insecure"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    wait_for("the insecure server", 60, || server_file(&rem).exists());
    assert!(rem.json(&["stats"])["last_seq"].as_u64().is_some());
}

#[test]
fn the_server_reads_no_path_and_runs_no_code_of_a_client() {
    let rem = with_person();
    let mut server = serve(&rem, &[]);
    let server_pid = server.0.id();
    // A Pydantic model whose import records which process ran it.
    let marker = rem.home.path().join("ran-by");
    let models = rem.write_file(
        "models.py",
        &format!(
            "import os\nopen({:?}, 'w').write(str(os.getppid()))\nfrom pydantic import BaseModel\nclass Note(BaseModel):\n    title: str\n",
            path_str(&marker)
        ),
    );
    let spec = format!("{}::Note", path_str(&models));
    let child = rem
        .command()
        .args(["schema", "add", &spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran_by: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        ran_by, client_pid,
        "the model ran in the client (server is {server_pid})"
    );
    assert_ne!(ran_by, server_pid);
    // Ingest sends bytes: a request naming a file on the server's machine gets what
    // was sent, not the file.
    let secret = rem.write_file("secret.txt", "the server's private text");
    let token = std::fs::read_to_string(rem.db_path().join("TOKEN")).unwrap();
    let uri = format!("file://{}", path_str(&secret));
    let report = runtime().block_on(async {
        let mut db = DatabaseClient::connect(format!("http://{}", address(&rem)))
            .await
            .unwrap();
        let chunk = IngestChunk {
            schema: "resources".into(),
            uri: uri.clone(),
            name: "secret.txt".into(),
            data: b"what the client sent".to_vec(),
            last: true,
        };
        let mut replies = db
            .ingest(req(tokio_stream::iter(vec![chunk]), Some(token.trim())))
            .await
            .unwrap()
            .into_inner();
        replies.message().await.unwrap().unwrap()
    });
    assert_eq!(report.status, "completed", "{report:?}");
    let rows = rem.json(&[
        "query",
        &format!("SELECT content FROM resources WHERE uri = '{uri}'"),
    ]);
    assert_eq!(rows[0]["content"], "what the client sent");
    // Export: the client writes the file; nothing appears beside the server.
    let work = tempfile::tempdir().unwrap();
    let out = rem
        .command()
        .current_dir(work.path())
        .args(["export", "person", "-o", "people.jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.path().join("people.jsonl").is_file());
    // An argument that happens to name a file is still just a key.
    std::fs::write(work.path().join("ada@x"), "not a key").unwrap();
    rem.ok(&["insert", "person", r#"{"name": "Ada", "email": "ada@x"}"#]);
    let found = rem
        .command()
        .current_dir(work.path())
        .args(["lookup", "ada@x", "--format", "json"])
        .output()
        .unwrap();
    let found: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found[0]["name"], "Ada");
    drop(server.0.kill());
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let rem = with_person();
    let out = rem.run_with_stdin(&["insert", "person", "--batch"], &people(3000, "p"));
    assert!(out.status.success());
    for args in [
        &["query", "SELECT * FROM person", "--format", "jsonl"][..],
        &["lookup", "p1@x", "--format", "json"],
    ] {
        let mut child = rem
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        let _ = stdout.read(&mut first);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn exit_codes_tell_user_errors_from_usage_errors() {
    let rem = with_person();
    let out = rem.run(&["get", "not-an-id"]);
    assert_eq!(out.status.code(), Some(1));
    let out = rem.run(&["insert", "ghost", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    let out = rem.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    // A database that is not one is a storage failure, not the user's input.
    let broken = Rem::new();
    std::fs::create_dir_all(broken.db_path()).unwrap();
    std::fs::write(broken.db_path().join("CURRENT"), "MANIFEST-999999\n").unwrap();
    let out = broken.run(&["stats"]);
    let err = crate::check_failure(&["stats"], &out);
    assert_eq!(out.status.code(), Some(3), "{err}");
}

/// The CLI as a library: two sessions in one process, on two databases, with their
/// own output buffers and environments.
#[test]
fn the_cli_runs_as_a_library_with_explicit_sessions() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let session = |home: &Path, stdin: &str| {
        let (out, err) = (Buf::default(), Buf::default());
        let mut env = std::collections::BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.display().to_string());
        env.insert(
            "P8_MODELS_DIR".to_string(),
            crate::models_dir().display().to_string(),
        );
        let s = rem_cli::Session::with_io(
            env,
            Box::new(std::io::Cursor::new(stdin.as_bytes().to_vec())),
            Box::new(out.clone()),
            Box::new(err.clone()),
        );
        (s, out, err)
    };
    for (i, home) in homes.iter().enumerate() {
        let (mut s, out, err) = session(home.path(), "");
        assert_eq!(
            rem_cli::run(["rem", "init"], &mut s),
            std::process::ExitCode::SUCCESS,
            "{}",
            err.take()
        );
        assert!(out.take().starts_with("initialized"));
        let yaml = home.path().join("p.yaml");
        std::fs::write(&yaml, PERSON_YAML).unwrap();
        assert_eq!(
            rem_cli::run(["rem", "schema", "add", path_str(&yaml)], &mut s),
            std::process::ExitCode::SUCCESS,
            "{}",
            err.take()
        );
        let (mut s, out, err) = session(home.path(), &people(i + 1, "lib"));
        assert_eq!(
            rem_cli::run(["rem", "insert", "person", "--batch"], &mut s),
            std::process::ExitCode::SUCCESS,
            "{}",
            err.take()
        );
        assert_eq!(
            out.take().trim(),
            format!("wrote {} records to person", i + 1)
        );
    }
    for (i, home) in homes.iter().enumerate() {
        let (mut s, out, _) = session(home.path(), "");
        assert_eq!(
            rem_cli::run(["rem", "query", "SELECT COUNT(*) AS n FROM person"], &mut s),
            std::process::ExitCode::SUCCESS
        );
        let v: Value = serde_json::from_str(&out.take()).unwrap();
        assert_eq!(v[0]["n"], (i + 1) as u64);
        // Errors go to the session's stderr, one line.
        let (mut s, _, err) = session(home.path(), "");
        assert_ne!(
            rem_cli::run(["rem", "get", "nope"], &mut s),
            std::process::ExitCode::SUCCESS
        );
        assert!(err.take().starts_with("error: "));
    }
}

/// Snapshots are limited: past `P8_SNAPSHOT_LIMIT` at once the server answers
/// RESOURCE_EXHAUSTED (replicas retry), and a snapshot whose replica takes nothing for
/// `P8_SNAPSHOT_IDLE_TIMEOUT` is abandoned, freeing its place and its checkpoint.
#[test]
fn snapshots_are_limited_and_idle_ones_abandoned() {
    use rem_replication::proto::replication_client::ReplicationClient;
    use rem_replication::proto::SnapshotRequest;
    let rem = with_person();
    for i in 0..50 {
        rem.ok(&[
            "insert",
            "person",
            &format!(r#"{{"name": "p{i}", "email": "p{i}@x"}}"#),
        ]);
    }
    let _server = serve(
        &rem,
        &[
            ("P8_SNAPSHOT_LIMIT", "1"),
            ("P8_SNAPSHOT_IDLE_TIMEOUT", "2"),
        ],
    );
    let token = std::fs::read_to_string(rem.db_path().join("TOKEN")).unwrap();
    let token = Some(token.trim());
    let url = format!("http://{}", address(&rem));
    // Checkpoints live in <db>/snapshots/ while they are sent.
    let checkpoints = || {
        std::fs::read_dir(rem.db_path().join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    runtime().block_on(async {
        let mut repl = ReplicationClient::connect(url).await.unwrap();
        let ask = || {
            req(
                SnapshotRequest {
                    replica_name: "t".into(),
                },
                token,
            )
        };
        // The first stream is held and never read.
        let held = repl.snapshot(ask()).await.unwrap();
        let second = repl.snapshot(ask()).await;
        assert_eq!(
            second.map(|_| ()).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        // After the idle timeout the held one is abandoned: a new one is admitted and
        // read to its end.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut stream = repl.snapshot(ask()).await.unwrap().into_inner();
        let mut bytes = 0;
        while let Some(chunk) = stream.message().await.unwrap() {
            bytes += chunk.data.len();
        }
        assert!(bytes > 0);
        drop(held);
    });
    wait_for("the checkpoints to be removed", 10, || checkpoints() == 0);
}
