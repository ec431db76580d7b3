//! `rem serve`, `rem replicate`, `rem replication …`, and running commands through a
//! server that holds the database.
//!
//! RocksDB lets one process open a database for writing. A running `rem serve` or
//! `rem replicate --follow` therefore serves other `rem` commands: it leaves the file
//! `SERVER` in the database folder, and a command that finds it sends its command line
//! (and stdin) to that process, which runs it on its open database with the output
//! captured (`Execute`). Relative paths among the arguments are made absolute first,
//! and the format a terminal would get is passed explicitly.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rem::{Config, Database, ReplicationRole};
use rem_replication::proto::{ExecuteRequest, StatusReply};
use rem_replication::{endpoint, CommandRunner, ReplicaStatus, ServeOptions};
use serde_json::json;

use crate::cli::{Cli, Command, Format, ReplicationCommand};
use crate::io::{errln, outln};

/// The database of this process's server, when it runs one (cleared while a replica
/// swaps in a snapshot).
static SERVED: RwLock<Option<Database>> = RwLock::new(None);
/// The replica loop's state, when this process is a following replica.
static REPLICA: OnceLock<Arc<ReplicaStatus>> = OnceLock::new();

/// The database a running server holds (commands inside it use that handle).
pub(crate) fn served() -> Option<Database> {
    SERVED.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_served(db: Option<Database>) {
    *SERVED.write().unwrap_or_else(|p| p.into_inner()) = db;
}

/// Runs command lines from other `rem` processes on the served database.
struct Runner;

impl CommandRunner for Runner {
    fn execute(&self, args: Vec<String>, stdin: Vec<u8>) -> (Vec<u8>, Vec<u8>, i32) {
        let (code, out, err) = crate::io::capture(stdin, || {
            let argv = std::iter::once("rem".to_string()).chain(args);
            let cli = match Cli::try_parse_from(argv) {
                Ok(cli) => cli,
                Err(e) => {
                    let text = e.render().to_string();
                    if e.use_stderr() {
                        errln!("{}", text.trim_end());
                    } else {
                        outln!("{}", text.trim_end());
                    }
                    return e.exit_code();
                }
            };
            if matches!(
                cli.command,
                Command::Serve { .. } | Command::Replicate { .. }
            ) {
                errln!(
                    "error: this database is already served by process {}",
                    std::process::id()
                );
                return 1;
            }
            match std::panic::catch_unwind(|| crate::commands::run(cli)) {
                Ok(Ok(code)) if code == ExitCode::SUCCESS => 0,
                Ok(Ok(_)) => 1,
                Ok(Err(e)) => {
                    errln!("error: {}", crate::one_line(&e));
                    1
                }
                Err(_) => {
                    errln!("error: internal error; please report it");
                    1
                }
            }
        });
        (out, err, code)
    }
}

/// Commands that never go through a server.
fn runs_locally(command: &Command) -> bool {
    matches!(
        command,
        Command::Serve { .. } | Command::Replicate { .. } | Command::Config(_)
    )
}

/// Sends the command to the server holding the database, if one is running; `None`
/// when there is none (the command then opens the database itself).
pub(crate) fn forward(cli: &Cli, config: &Config) -> Result<Option<ExitCode>> {
    if runs_locally(&cli.command) {
        return Ok(None);
    }
    let db_path = config.db_path();
    let Some(server) = endpoint::read(&db_path) else {
        return Ok(None);
    };
    let address = server.address;
    let tls = client_tls(config)?;
    if server.tls && tls.is_none() {
        bail!("the server holding this database ({address}) accepts TLS only; set P8_REPLICATION_TLS_CA to the CA that signed its certificate");
    }
    let tls = tls.filter(|_| server.tls);
    let token = config.get("P8_REPLICATION_TOKEN").map(String::from);
    let mut args: Vec<String> = std::env::args().skip(1).map(absolute_if_path).collect();
    if cli.global.format.is_none() {
        let f = if std::io::stdout().is_terminal() {
            "table"
        } else {
            "json"
        };
        args.extend(["--format".to_string(), f.to_string()]);
    }
    let stdin = match &cli.command {
        Command::Insert(a) if a.batch => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            buf
        }
        _ => Vec::new(),
    };
    let rt = runtime()?;
    let reply = rt.block_on(async {
        // A file left by a killed server points at nothing: open the database directly.
        let Ok(mut client) =
            rem_replication::connect(&address, Duration::from_secs(2), tls.as_ref()).await
        else {
            return Ok(None);
        };
        client
            .execute(rem_replication::request(
                ExecuteRequest { args, stdin },
                token.as_deref(),
            ))
            .await
            .map(|r| Some(r.into_inner()))
            .map_err(|s| {
                anyhow!(
                    "the server at {address} refused the command: {}",
                    rem_replication::status_message(&s)
                )
            })
    })?;
    let Some(reply) = reply else {
        return Ok(None);
    };
    std::io::stdout().write_all(&reply.stdout)?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(&reply.stderr)?;
    Ok(Some(ExitCode::from(reply.exit_code.clamp(0, 255) as u8)))
}

/// An argument naming an existing relative path, made absolute (the server runs in
/// another working directory).
fn absolute_if_path(arg: String) -> String {
    if arg.starts_with('-') || Path::new(&arg).is_absolute() {
        return arg;
    }
    // `models.py::Class` names a file too.
    let (file, rest) = match arg.split_once("::") {
        Some((f, r)) => (f.to_string(), format!("::{r}")),
        None => (arg.clone(), String::new()),
    };
    if Path::new(&file).exists() {
        if let Ok(abs) = std::path::absolute(&file) {
            return format!("{}{rest}", abs.display());
        }
    }
    arg
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The contents of the PEM file a setting names, if it is set.
fn read_pem(config: &Config, name: &str) -> Result<Option<Vec<u8>>> {
    let Some(path) = config.get(name).filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    std::fs::read(path)
        .map(Some)
        .with_context(|| format!("cannot read {name} ({path})"))
}

/// TLS of the server (`P8_REPLICATION_TLS_CERT` and `_KEY`), when set.
fn server_tls(config: &Config) -> Result<Option<rem_replication::ServerTls>> {
    match (
        read_pem(config, "P8_REPLICATION_TLS_CERT")?,
        read_pem(config, "P8_REPLICATION_TLS_KEY")?,
    ) {
        (Some(cert_pem), Some(key_pem)) => {
            Ok(Some(rem_replication::ServerTls { cert_pem, key_pem }))
        }
        (None, None) => Ok(None),
        _ => bail!("set both P8_REPLICATION_TLS_CERT and P8_REPLICATION_TLS_KEY, or neither"),
    }
}

/// TLS of clients (`P8_REPLICATION_TLS_CA`), when set.
fn client_tls(config: &Config) -> Result<Option<rem_replication::ClientTls>> {
    Ok(
        read_pem(config, "P8_REPLICATION_TLS_CA")?.map(|ca_pem| rem_replication::ClientTls {
            ca_pem,
            domain: config
                .get("P8_REPLICATION_TLS_DOMAIN")
                .filter(|d| !d.is_empty())
                .map(String::from),
        }),
    )
}

fn serve_options(config: &Config) -> Result<ServeOptions> {
    let number = |name: &str| -> Result<u64> {
        let raw = config.get(name).unwrap_or_default();
        raw.trim()
            .parse()
            .map_err(|_| anyhow!("{name} must be a number, not '{raw}'"))
    };
    Ok(ServeOptions {
        batch_size: number("P8_WAL_BATCH_SIZE")?.max(1) as usize,
        token: config
            .get("P8_REPLICATION_TOKEN")
            .filter(|t| !t.is_empty())
            .map(String::from),
        retention: number("P8_WAL_RETENTION_SIZE")?,
        tls: server_tls(config)?,
        ..ServeOptions::default()
    })
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))
}

/// The address other processes on this machine reach a listener on.
fn local_address(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// `rem serve`.
pub(crate) fn serve(
    config: &Config,
    db: Database,
    host: Option<String>,
    port: Option<u16>,
) -> Result<ExitCode> {
    if let ReplicationRole::Replica { primary } = db.replication_role() {
        bail!("this database is a replica of {primary}; run `rem replicate --follow` for it, or `rem replication promote` first");
    }
    db.set_primary()?;
    let host = host
        .or_else(|| config.get("P8_REPLICATION_HOST").map(String::from))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = match port {
        Some(p) => p,
        None => config
            .get("P8_REPLICATION_PORT")
            .unwrap_or("50051")
            .parse()
            .map_err(|_| anyhow!("P8_REPLICATION_PORT must be a port number"))?,
    };
    let options = serve_options(config)?;
    let rt = runtime()?;
    let listener = rt.block_on(bind(&host, port))?;
    let addr = listener.local_addr()?;
    set_served(Some(db.clone()));
    endpoint::write(
        db.path(),
        &local_address(addr),
        "primary",
        options.tls.is_some(),
    )
    .with_context(|| format!("cannot write the endpoint file in {}", db.path().display()))?;
    errln!(
        "serving {} as primary on {addr}{} (change {}); Ctrl-C stops",
        db.path().display(),
        if options.tls.is_some() {
            " with TLS"
        } else {
            ""
        },
        db.last_seq()
    );
    let result = rt.block_on(rem_replication::serve(
        db.clone(),
        listener,
        options,
        Arc::new(Runner),
        None,
        stop_signal(),
    ));
    endpoint::remove(db.path());
    set_served(None);
    result.map_err(|e| anyhow!(e))?;
    errln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `rem replicate`: follows the primary (serving other commands on the database while
/// it does, with `follow`); bootstraps from a snapshot when the primary's retained log
/// no longer reaches the database, reopening it with `reopen` after the swap.
pub(crate) fn replicate(
    config: &Config,
    mut db: Database,
    primary: Option<String>,
    follow: bool,
    reopen: &dyn Fn() -> Result<Database>,
) -> Result<ExitCode> {
    let primary = primary
        .or_else(|| {
            config
                .get("P8_PRIMARY_HOST")
                .filter(|p| !p.is_empty())
                .map(String::from)
        })
        .ok_or_else(|| anyhow!("give the primary with --primary host:port (or P8_PRIMARY_HOST)"))?;
    db.become_replica(&primary)?;
    let options = serve_options(config)?;
    let status = Arc::new(ReplicaStatus::new(&primary));
    let _ = REPLICA.set(status.clone());
    let follow_options = rem_replication::FollowOptions {
        primary: primary.clone(),
        token: options.token.clone(),
        tls: client_tls(config)?,
        follow,
        max_backoff: Duration::from_secs(if follow { 5 } else { 2 }),
        name: format!("{}@{}", db.path().display(), std::process::id()),
    };
    let rt = runtime()?;
    // Turns true when the process is asked to stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if follow {
        rt.spawn(async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
        });
    }
    let mut announced = false;
    loop {
        let server = if follow {
            let served = ServedReplica::start(&rt, config, &db, &options, &status, &stop_rx)?;
            if !announced {
                errln!(
                    "replicating {primary} into {} (at change {}); commands on this database are served on {}; Ctrl-C stops",
                    db.path().display(),
                    db.last_seq(),
                    served.address
                );
                announced = true;
            }
            Some(served)
        } else {
            None
        };
        let result = rt.block_on(rem_replication::follow(
            db.clone(),
            follow_options.clone(),
            status.clone(),
            stop_rx.clone(),
        ));
        let reason = match result {
            Ok(rem_replication::Followed::NeedsSnapshot(reason)) if !*stop_rx.borrow() => reason,
            other => {
                // Following ended (stopped, promoted, or an error retrying cannot fix).
                if let Some(server) = server {
                    server.stop(&rt, &db);
                }
                other.map_err(|e| anyhow!(e))?;
                break;
            }
        };
        errln!("{reason}; bootstrapping from a snapshot of {primary}");
        status.bootstrap("downloading a snapshot".to_string());
        let started = std::time::Instant::now();
        // The download runs while the old copy still serves reads.
        let fetched = rt.block_on(async {
            let mut stop = stop_rx.clone();
            tokio::select! {
                r = rem_replication::fetch_snapshot(db.path(), &follow_options) => Some(r),
                _ = stop.changed() => None,
            }
        });
        if let Some(server) = server {
            server.stop(&rt, &db);
        }
        let (seq, bytes) = match fetched {
            None => {
                let _ = rem::discard_staged_snapshot(db.path());
                break;
            }
            Some(Err(e)) => {
                let _ = rem::discard_staged_snapshot(db.path());
                if !follow {
                    bail!("cannot bootstrap from a snapshot: {e}");
                }
                errln!("snapshot failed: {e}; retrying");
                status.bootstrap(format!("snapshot failed: {e}"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Some(Ok(fetched)) => fetched,
        };
        // Swap the copy in: every handle on the old database must be closed first.
        let path = db.path().to_path_buf();
        close(db)?;
        rem::install_snapshot(&path)
            .with_context(|| format!("cannot install the snapshot into {}", path.display()))?;
        db = reopen()?;
        let text = format!(
            "completed (snapshot at change {seq}, {:.1} MB, {} ms)",
            bytes as f64 / 1e6,
            started.elapsed().as_millis()
        );
        errln!(
            "snapshot installed: {} is at change {seq}; following",
            path.display()
        );
        status.bootstrap(text);
    }
    if !follow {
        outln!("replica at change {} (primary {primary})", db.last_seq());
    }
    Ok(ExitCode::SUCCESS)
}

/// Closes `db`, waiting (a bounded time) for the handles other tasks still hold.
fn close(db: Database) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while db.handle_count() > 1 {
        if std::time::Instant::now() > deadline {
            bail!(
                "cannot install the snapshot: {} other handles on the database are still open",
                db.handle_count() - 1
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(db);
    Ok(())
}

/// The server of a following replica (other commands on its database go through it).
struct ServedReplica {
    address: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl ServedReplica {
    fn start(
        rt: &tokio::runtime::Runtime,
        config: &Config,
        db: &Database,
        options: &ServeOptions,
        status: &Arc<ReplicaStatus>,
        stop_rx: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<ServedReplica> {
        let host = config
            .get("P8_REPLICATION_HOST")
            .unwrap_or("127.0.0.1")
            .to_string();
        let listener = rt.block_on(bind(&host, 0))?;
        let address = listener.local_addr()?;
        set_served(Some(db.clone()));
        let tls = options.tls.is_some();
        endpoint::write(db.path(), &local_address(address), "replica", tls).with_context(|| {
            format!("cannot write the endpoint file in {}", db.path().display())
        })?;
        let (stop, mut own_stop) = tokio::sync::watch::channel(false);
        let mut process_stop = stop_rx.clone();
        let task = rt.spawn(rem_replication::serve(
            db.clone(),
            listener,
            options.clone(),
            Arc::new(Runner),
            Some(status.clone()),
            async move {
                tokio::select! {
                    _ = own_stop.changed() => {}
                    _ = process_stop.changed() => {}
                }
            },
        ));
        Ok(ServedReplica {
            address,
            stop,
            task,
        })
    }

    fn stop(self, rt: &tokio::runtime::Runtime, db: &Database) {
        let _ = self.stop.send(true);
        let _ = rt.block_on(self.task);
        endpoint::remove(db.path());
        set_served(None);
    }
}

fn ago(micros: i64) -> String {
    if micros <= 0 {
        return "never".into();
    }
    let secs = (rem_replication::now_micros() - micros).max(0) as f64 / 1e6;
    format!("{secs:.1}s ago")
}

/// `rem replication …`.
pub(crate) fn replication(
    db: Database,
    format: Format,
    cmd: ReplicationCommand,
) -> Result<ExitCode> {
    match cmd {
        ReplicationCommand::Promote => {
            let seq = db.promote()?;
            outln!(
                "promoted: {} is now a primary at change {seq}; writes are accepted",
                db.path().display()
            );
        }
        ReplicationCommand::Checksum => {
            let rows: Vec<Vec<serde_json::Value>> = db
                .content_checksum()?
                .into_iter()
                .map(|(cf, n, h)| vec![json!(cf), json!(n), json!(format!("{h:016x}"))])
                .collect();
            crate::output::print_rows(
                format,
                &crate::output::Rows::new(vec!["column_family", "entries", "checksum"], rows),
            )?;
        }
        ReplicationCommand::WalStatus => {
            let log = db.log_status()?;
            if format == Format::Table {
                outln!("WAL sequence: {}", log.last_seq);
                outln!("Entries: {}", log.entries);
                outln!("Size: {} bytes", log.bytes);
                outln!("Oldest retained: {}", log.first_seq);
            } else {
                crate::output::print_json(
                    format,
                    &json!({"seq": log.last_seq, "entries": log.entries, "bytes": log.bytes, "first_seq": log.first_seq}),
                )?;
            }
        }
        ReplicationCommand::Status => {
            let log = db.log_status()?;
            let role = db.replication_role();
            let mut reply = StatusReply {
                mode: role.mode().to_string(),
                last_seq: log.last_seq,
                primary_seq: log.last_seq,
                ..StatusReply::default()
            };
            if let ReplicationRole::Replica { primary } = &role {
                reply.primary = primary.clone();
                // Live state when this runs inside `rem replicate --follow`.
                match REPLICA.get().filter(|_| served().is_some()) {
                    Some(r) => r.fill(&mut reply, log.last_seq),
                    None => reply.state = "stopped (no rem replicate --follow running)".into(),
                }
            } else {
                reply.state = if served().is_some() {
                    "serving"
                } else {
                    "not serving"
                }
                .into();
            }
            let lag_entries = reply.primary_seq.saturating_sub(reply.last_seq);
            if format == Format::Table {
                outln!("Mode: {}", reply.mode);
                if !reply.primary.is_empty() {
                    outln!("Primary: {}", reply.primary);
                }
                outln!("WAL position: {}", reply.last_seq);
                if role != ReplicationRole::Primary && !reply.primary.is_empty() {
                    outln!("Primary position: {}", reply.primary_seq);
                    outln!("Lag: {}ms ({lag_entries} entries)", reply.lag_micros / 1000);
                    outln!("Status: {}", reply.state);
                    outln!("Last contact: {}", ago(reply.last_contact_micros));
                    if !reply.last_catch_up.is_empty() {
                        let label = if reply.state == "disconnected" {
                            "Last error"
                        } else {
                            "Catchup"
                        };
                        outln!("{label}: {}", reply.last_catch_up);
                    }
                    outln!("Buffered writes: 0 (read-only)");
                } else {
                    outln!("Status: {}", reply.state);
                }
            } else {
                crate::output::print_json(
                    format,
                    &json!({
                        "mode": reply.mode, "primary": reply.primary,
                        "applied_seq": reply.last_seq, "primary_seq": reply.primary_seq,
                        "lag_entries": lag_entries, "lag_ms": reply.lag_micros as f64 / 1000.0,
                        "state": reply.state, "last_contact_micros": reply.last_contact_micros,
                        "catch_up": reply.last_catch_up,
                    }),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
