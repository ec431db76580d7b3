//! The `Snapshot` RPC: a primary sends a RocksDB checkpoint of its database as files
//! in chunks; a replica the retained change log no longer reaches writes them into a
//! staging folder beside its database ([`fetch_snapshot`]), and installs the copy with
//! [`rem::install_snapshot`] once its database is closed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::Status;

use crate::proto::{SnapshotChunk, SnapshotFile, SnapshotRequest};
use crate::{connect, request, status_message, Error, FollowOptions, Result};

/// Bytes per streamed chunk.
const CHUNK: usize = 1 << 20;

/// The folder of a server's checkpoints, inside the database folder (a checkpoint
/// must be on the database's file system for its files to be hard links).
pub(crate) fn checkpoints_root(db: &Path) -> PathBuf {
    db.join("snapshots")
}

/// A new, not yet existing checkpoint folder.
pub(crate) fn checkpoint_dir(db: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let root = checkpoints_root(db);
    let _ = std::fs::create_dir_all(&root);
    root.join(format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The files of a checkpoint, with their sizes.
pub(crate) fn list_files(dir: &Path) -> rem::Result<Vec<SnapshotFile>> {
    let io = |e: std::io::Error| rem::Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        if meta.is_file() {
            files.push(SnapshotFile {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Sends the listing, then every file in chunks; removes the checkpoint afterwards,
/// whether the replica took it all or went away.
pub(crate) fn send_files(
    dir: PathBuf,
    files: Vec<SnapshotFile>,
    tx: mpsc::Sender<Result<SnapshotChunk, Status>>,
    idle: Duration,
) {
    // A replica that takes nothing for `idle` is given up on.
    let put = |chunk: SnapshotChunk| -> Result<(), Status> {
        let started = std::time::Instant::now();
        let mut item = Ok(chunk);
        loop {
            match tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(Status::cancelled("the replica went away"))
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if started.elapsed() >= idle {
                        return Err(Status::deadline_exceeded(format!(
                            "the replica took nothing for {} s; the snapshot was abandoned",
                            idle.as_secs()
                        )));
                    }
                    item = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    };
    let send = || -> Result<(), Status> {
        let listing = SnapshotChunk {
            files: files.clone(),
            ..SnapshotChunk::default()
        };
        put(listing)?;
        for f in &files {
            let path = dir.join(&f.name);
            let mut file = std::fs::File::open(&path)
                .map_err(|e| Status::internal(format!("cannot read {}: {e}", path.display())))?;
            let mut offset = 0u64;
            loop {
                let mut data = vec![0u8; CHUNK];
                let n = file.read(&mut data).map_err(|e| {
                    Status::internal(format!("cannot read {}: {e}", path.display()))
                })?;
                if n == 0 {
                    break;
                }
                data.truncate(n);
                let chunk = SnapshotChunk {
                    file: f.name.clone(),
                    offset,
                    data,
                    ..SnapshotChunk::default()
                };
                offset += n as u64;
                put(chunk)?;
            }
        }
        Ok(())
    };
    match send() {
        Ok(()) => tracing::info!(files = files.len(), "snapshot sent"),
        Err(e) => {
            tracing::warn!("snapshot not sent: {}", e.message());
            let _ = tx.try_send(Err(e));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!("cannot remove checkpoint {}: {e}", dir.display());
    }
}

/// A file name from the primary that stays inside the staging folder.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// Downloads a snapshot of `primary` for the database at `db` into its staging folder
/// and prepares it as a replica of `primary`. Returns the copy's sequence number and
/// its size in bytes. The database itself is not touched.
pub async fn fetch_snapshot(db: &Path, options: &FollowOptions) -> Result<(u64, u64)> {
    let primary = options.primary.as_str();
    let staging = rem::snapshot_staging_path(db);
    rem::discard_staged_snapshot(db)?;
    std::fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;
    // The copy becomes the database: readable by its owner only, as `rem init` makes one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("cannot restrict {}", staging.display()), e))?;
    }
    let mut client = connect(primary, Duration::from_secs(3), options.tls.as_ref()).await?;
    let mut stream = client
        .snapshot(request(
            SnapshotRequest {
                replica_name: options.name.clone(),
            },
            options.token.as_deref(),
        ))
        .await
        .map_err(|s| Error::from_status(&s, options.tls.is_some()))?
        .into_inner();
    let next = |s: Result<Option<SnapshotChunk>, Status>| -> Result<Option<SnapshotChunk>> {
        s.map_err(|s| Error::Connection(format!("snapshot interrupted: {}", status_message(&s))))
    };
    let listing = next(stream.message().await)?
        .ok_or_else(|| Error::Protocol("the primary sent an empty snapshot".to_string()))?;
    // Each listed file: its size and the bytes received so far.
    let mut files: BTreeMap<String, (u64, u64)> = listing
        .files
        .iter()
        .map(|f| (f.name.clone(), (f.size, 0)))
        .collect();
    if files.is_empty() || files.keys().any(|n| !safe_name(n)) {
        return Err(Error::Protocol(
            "the primary sent a malformed snapshot listing".to_string(),
        ));
    }
    let mut open: Option<(String, std::fs::File)> = None;
    let mut total = 0u64;
    while let Some(chunk) = next(stream.message().await)? {
        let Some((size, at)) = files.get_mut(&chunk.file) else {
            return Err(Error::Protocol(format!(
                "the primary sent an unlisted file '{}'",
                chunk.file
            )));
        };
        if chunk.offset != *at || *at + chunk.data.len() as u64 > *size {
            return Err(Error::Protocol(format!(
                "the primary sent '{}' out of order",
                chunk.file
            )));
        }
        *at += chunk.data.len() as u64;
        total += chunk.data.len() as u64;
        if open.as_ref().map(|(n, _)| n != &chunk.file).unwrap_or(true) {
            if let Some((name, f)) = open.take() {
                f.sync_all()
                    .map_err(|e| Error::io(format!("cannot write the snapshot file {name}"), e))?;
            }
            let path = staging.join(&chunk.file);
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            open = Some((chunk.file.clone(), f));
        }
        if let Some((_, f)) = open.as_mut() {
            f.write_all(&chunk.data)
                .map_err(|e| Error::io("cannot write the snapshot", e))?;
        }
    }
    if let Some((name, f)) = open.take() {
        f.sync_all()
            .map_err(|e| Error::io(format!("cannot write the snapshot file {name}"), e))?;
    }
    for (name, (size, at)) in &files {
        if at != size {
            return Err(Error::Protocol(format!(
                "the snapshot ended before '{name}' was complete"
            )));
        }
        // Empty files have no chunks.
        if *size == 0 {
            std::fs::File::create(staging.join(name))
                .map_err(|e| Error::io(format!("cannot write the snapshot file {name}"), e))?;
        }
    }
    let staged = staging.clone();
    let primary = primary.to_string();
    let seq = tokio::task::spawn_blocking(move || rem::prepare_snapshot(&staged, &primary))
        .await
        .map_err(|e| Error::Internal(format!("preparing the snapshot failed: {e}")))??;
    Ok((seq, total))
}
