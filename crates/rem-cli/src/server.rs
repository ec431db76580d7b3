//! `rem serve`, `rem replicate`, `rem replication …`.
//!
//! RocksDB lets one process open a database for writing. A running `rem serve` or
//! `rem replicate --follow` therefore serves the database (rem-service: the typed
//! database service and replication on one port) and leaves the file `SERVER` in the
//! database folder; other `rem` commands that find it send typed requests there
//! instead of opening the database. Every request carries the server's token.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rem::{Database, ReplicationRole};
use rem_replication::{endpoint, ReplicaStatus, ServeOptions};
use rem_service::{Backend, ServerOptions};
use serde_json::json;

use crate::cli::{Format, ReplicationCommand};
use crate::commands::{errln, outln, Access, Ctx};
use crate::config::Config;
use crate::output::{print_json, print_rows, Rows};

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
    let path = path.as_str();
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
pub(crate) fn client_tls(config: &Config) -> Result<Option<rem_replication::ClientTls>> {
    Ok(
        read_pem(config, "P8_REPLICATION_TLS_CA")?.map(|ca_pem| rem_replication::ClientTls {
            ca_pem,
            domain: Some(config.settings().replication.tls_domain.clone())
                .filter(|d| !d.is_empty()),
        }),
    )
}

/// The first non-empty setting of `names`.
fn setting(config: &Config, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| config.get(n))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

fn serve_options(config: &Config) -> Result<ServeOptions> {
    let r = &config.settings().replication;
    Ok(ServeOptions {
        batch_size: r.wal_batch_size.max(1),
        retention: r.wal_retention_size,
        max_snapshots: r.snapshot_limit.max(1),
        snapshot_idle: Duration::from_secs(r.snapshot_idle_timeout.max(1)),
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

/// Binds `host:port`, refusing a non-loopback address without TLS unless `insecure`.
fn bind(
    rt: &tokio::runtime::Runtime,
    host: &str,
    port: u16,
    tls: bool,
    insecure: bool,
) -> Result<tokio::net::TcpListener> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind((host, port)))
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && !tls && !insecure {
        return Err(rem::Error::InvalidInput(format!(
            "refusing to serve on {addr} without TLS: the token and the data would cross the network in plain text; set P8_REPLICATION_TLS_CERT and P8_REPLICATION_TLS_KEY, or pass --insecure"
        ))
        .into());
    }
    Ok(listener)
}

/// The address other processes on this machine reach a listener on.
fn local_address(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// The token of this process's server: configured, or the database's token file.
fn server_token(config: &Config, db: &Database) -> Result<String> {
    let configured = setting(config, &["P8_SERVER_TOKEN", "P8_REPLICATION_TOKEN"]);
    rem_replication::server_token(db.path(), configured.as_deref()).map_err(anyhow::Error::from)
}

/// Where the token comes from, for the start-up line.
fn token_source(config: &Config, db: &Database) -> String {
    match setting(config, &["P8_SERVER_TOKEN", "P8_REPLICATION_TOKEN"]) {
        Some(_) => "the configured token".into(),
        None => format!(
            "the token in {}",
            rem_replication::token_path(db.path()).display()
        ),
    }
}

/// `rem serve`.
pub(crate) fn serve(
    ctx: &mut Ctx<'_>,
    db: Database,
    host: Option<String>,
    port: Option<u16>,
    insecure: bool,
) -> Result<u8> {
    if let ReplicationRole::Replica { primary } = db.replication_role() {
        bail!("this database is a replica of {primary}; run `rem replicate --follow` for it, or `rem replication promote` first");
    }
    let config = &ctx.config;
    let host = host.unwrap_or_else(|| config.settings().replication.host.clone());
    let port = port.unwrap_or(config.settings().replication.port);
    let options = serve_options(config)?;
    let token = server_token(config, &db)?;
    let rt = runtime()?;
    let listener = bind(&rt, &host, port, options.tls.is_some(), insecure)?;
    db.set_primary()?;
    let addr = listener.local_addr()?;
    let instance = rem_service::new_instance_id();
    endpoint::write(
        db.path(),
        &local_address(addr),
        "primary",
        options.tls.is_some(),
        &instance,
    )
    .with_context(|| format!("cannot write the endpoint file in {}", db.path().display()))?;
    errln!(
        ctx,
        "serving {} as primary on {addr}{} (change {}); requests need {}; Ctrl-C stops",
        db.path().display(),
        if options.tls.is_some() {
            " with TLS"
        } else {
            ""
        },
        db.last_seq(),
        token_source(&ctx.config, &db)
    );
    let _ = ctx.session.err().flush();
    let result = rt.block_on(rem_service::serve(
        db.clone(),
        listener,
        ServerOptions {
            replication: options,
            token,
            instance,
        },
        None,
        stop_signal(),
    ));
    endpoint::remove(db.path());
    result.map_err(anyhow::Error::from)?;
    errln!(ctx, "stopped");
    Ok(0)
}

/// `rem replicate`: follows the primary (serving the database while it does, with
/// `follow`); bootstraps from a snapshot when the primary's retained log no longer
/// reaches the database, reopening it after the swap.
pub(crate) fn replicate(
    ctx: &mut Ctx<'_>,
    mut db: Database,
    primary: Option<String>,
    follow: bool,
    rebuild: bool,
    insecure: bool,
) -> Result<u8> {
    let mut rebuild = rebuild;
    let primary = primary
        .or_else(|| setting(&ctx.config, &["P8_PRIMARY_HOST"]))
        .ok_or_else(|| {
            anyhow!(rem::Error::InvalidInput(
                "give the primary with --primary host:port (or P8_PRIMARY_HOST)".into()
            ))
        })?;
    db.become_replica(&primary)?;
    let options = serve_options(&ctx.config)?;
    let status = Arc::new(ReplicaStatus::new(&primary));
    let follow_options = rem_replication::FollowOptions {
        primary: primary.clone(),
        token: setting(&ctx.config, &["P8_REPLICATION_TOKEN", "P8_SERVER_TOKEN"]),
        tls: client_tls(&ctx.config)?,
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
            let served =
                ServedReplica::start(&rt, ctx, &db, &options, &status, &stop_rx, insecure)?;
            if !announced {
                errln!(
                    ctx,
                    "replicating {primary} into {} (at change {}); commands on this database are served on {} and need {}; Ctrl-C stops",
                    db.path().display(),
                    db.last_seq(),
                    served.address,
                    token_source(&ctx.config, &db)
                );
                let _ = ctx.session.err().flush();
                announced = true;
            }
            Some(served)
        } else {
            None
        };
        let result = if std::mem::take(&mut rebuild) {
            Ok(rem_replication::Followed::NeedsSnapshot(
                "rebuilding as asked (--rebuild)".to_string(),
            ))
        } else {
            rt.block_on(rem_replication::follow(
                db.clone(),
                follow_options.clone(),
                status.clone(),
                stop_rx.clone(),
            ))
        };
        let reason = match result {
            Ok(rem_replication::Followed::NeedsSnapshot(reason)) if !*stop_rx.borrow() => reason,
            other => {
                // Following ended (stopped, promoted, or an error retrying cannot fix).
                if let Some(server) = server {
                    server.stop(&rt, &db);
                }
                other.map_err(anyhow::Error::from)?;
                break;
            }
        };
        errln!(ctx, "{reason}; bootstrapping from a snapshot of {primary}");
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
                errln!(ctx, "snapshot failed: {e}; retrying");
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
        db = ctx.open(Access::Write)?;
        let text = format!(
            "completed (snapshot at change {seq}, {:.1} MB, {} ms)",
            bytes as f64 / 1e6,
            started.elapsed().as_millis()
        );
        errln!(
            ctx,
            "snapshot installed: {} is at change {seq}; following",
            path.display()
        );
        status.bootstrap(text);
    }
    if !follow {
        outln!(
            ctx,
            "replica at change {} (primary {primary})",
            db.last_seq()
        );
    }
    Ok(0)
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
    task: tokio::task::JoinHandle<rem_service::Result<()>>,
}

impl ServedReplica {
    fn start(
        rt: &tokio::runtime::Runtime,
        ctx: &Ctx<'_>,
        db: &Database,
        options: &ServeOptions,
        status: &Arc<ReplicaStatus>,
        stop_rx: &tokio::sync::watch::Receiver<bool>,
        insecure: bool,
    ) -> Result<ServedReplica> {
        let host = match ctx.config.settings().replication.host.trim() {
            "" => "127.0.0.1".to_string(),
            h => h.to_string(),
        };
        let tls = options.tls.is_some();
        let listener = bind(rt, &host, 0, tls, insecure)?;
        let address = listener.local_addr()?;
        let token = server_token(&ctx.config, db)?;
        let instance = rem_service::new_instance_id();
        endpoint::write(
            db.path(),
            &local_address(address),
            "replica",
            tls,
            &instance,
        )
        .with_context(|| format!("cannot write the endpoint file in {}", db.path().display()))?;
        let (stop, mut own_stop) = tokio::sync::watch::channel(false);
        let mut process_stop = stop_rx.clone();
        let task = rt.spawn(rem_service::serve(
            db.clone(),
            listener,
            ServerOptions {
                replication: options.clone(),
                token,
                instance,
            },
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
    ctx: &mut Ctx<'_>,
    backend: &Backend,
    cmd: ReplicationCommand,
) -> Result<()> {
    let format = ctx.format;
    match cmd {
        ReplicationCommand::Promote => {
            let p = backend.promote()?;
            outln!(
                ctx,
                "promoted: {} is now a primary at change {}; writes are accepted",
                p.path,
                p.seq
            );
        }
        ReplicationCommand::Checksum => {
            let rows: Vec<Vec<serde_json::Value>> = backend
                .checksum()?
                .families
                .into_iter()
                .map(|f| {
                    vec![
                        json!(f.name),
                        json!(f.entries),
                        json!(format!("{:016x}", f.checksum)),
                    ]
                })
                .collect();
            print_rows(
                &mut ctx.out(),
                format,
                &Rows::new(vec!["column_family", "entries", "checksum"], rows),
            )?;
        }
        ReplicationCommand::WalStatus => {
            let log = backend.status()?;
            if format == Format::Table {
                outln!(ctx, "WAL sequence: {}", log.last_seq);
                outln!(ctx, "Entries: {}", log.entries);
                outln!(ctx, "Size: {} bytes", log.bytes);
                outln!(ctx, "Oldest retained: {}", log.first_seq);
            } else {
                print_json(
                    &mut ctx.out(),
                    format,
                    &json!({"seq": log.last_seq, "entries": log.entries, "bytes": log.bytes, "first_seq": log.first_seq}),
                )?;
            }
        }
        ReplicationCommand::Status => {
            let reply = backend.status()?;
            let lag_entries = reply.primary_seq.saturating_sub(reply.last_seq);
            if format == Format::Table {
                outln!(ctx, "Mode: {}", reply.mode);
                if !reply.primary.is_empty() {
                    outln!(ctx, "Primary: {}", reply.primary);
                }
                outln!(ctx, "WAL position: {}", reply.last_seq);
                if reply.mode != "primary" && !reply.primary.is_empty() {
                    outln!(ctx, "Primary position: {}", reply.primary_seq);
                    outln!(
                        ctx,
                        "Lag: {}ms ({lag_entries} entries)",
                        reply.lag_micros / 1000
                    );
                    outln!(ctx, "Status: {}", reply.state);
                    outln!(ctx, "Last contact: {}", ago(reply.last_contact_micros));
                    if !reply.last_catch_up.is_empty() {
                        let label = if reply.state == "disconnected" {
                            "Last error"
                        } else {
                            "Catchup"
                        };
                        outln!(ctx, "{label}: {}", reply.last_catch_up);
                    }
                    outln!(ctx, "Buffered writes: 0 (read-only)");
                } else {
                    outln!(ctx, "Status: {}", reply.state);
                }
            } else {
                print_json(
                    &mut ctx.out(),
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
    Ok(())
}
