//! Bootstrapping a replica from a copy of the primary (SPEC §8).
//!
//! A replica whose watermark is older than the primary's retained change log cannot
//! catch up record by record. The primary then writes a RocksDB checkpoint
//! ([`Database::checkpoint`]) and streams its files; the replica writes them into a
//! staging folder beside its database, marks the copy as its own replica
//! ([`prepare_snapshot`]), and swaps it in for its database ([`install_snapshot`])
//! once its own handles are closed.
//!
//! The swap is two renames, so a crash can stop it between them. Every open goes
//! through [`recover_snapshot_install`] first, which finishes or undoes it:
//!
//! | database | staging (`.<name>.snapshot`) | replaced (`.<name>.replaced`) | on open |
//! |---|---|---|---|
//! | present | any | present | replaced is removed |
//! | missing | complete | any | staging becomes the database |
//! | missing | incomplete or missing | present | replaced is put back |
//!
//! The kill points `snapshot-install:staged`, `:set-aside` and `:swapped` (see
//! `kill_point`) pin a crash before, between and after the renames for the tests.
//!
//! A staging folder beside a present database is left alone: it belongs to a download
//! in progress, which removes it itself when it starts over.
//!
//! Vector index files are not copied: the replica rebuilds its indexes from the
//! stored vectors on first use, as after any loss of those files.

use std::fs;
use std::path::{Path, PathBuf};

use rem_storage::{ColumnFamily, OpenMode, Store, StoreOptions};

use crate::format::meta::{ReplicationRole, META_ROLE};
use crate::{Database, Error, Result};

/// The file whose presence says a staging folder holds a whole, prepared copy.
const COMPLETE: &str = "SNAPSHOT_COMPLETE";

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".to_string());
    db.with_file_name(format!(".{name}.{suffix}"))
}

/// Where a snapshot for the database at `db` is staged before it is installed.
pub fn snapshot_staging_path(db: &Path) -> PathBuf {
    sibling(db, "snapshot")
}

fn replaced_path(db: &Path) -> PathBuf {
    sibling(db, "replaced")
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn sync_dir(path: &Path) {
    // Makes renames and new files durable; not every platform can open a directory.
    if let Ok(dir) = fs::File::open(path) {
        let _ = dir.sync_all();
    }
}

fn parent(db: &Path) -> PathBuf {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Database {
    /// Writes a consistent copy of the database into `dir` (which must not exist): a
    /// RocksDB checkpoint, whose table files are hard links when `dir` is on the same
    /// file system. Writes go on meanwhile.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        Ok(self.store().checkpoint(dir)?)
    }

    /// How many handles (clones, tenant views) share this database; it closes when
    /// the last is dropped.
    pub fn handle_count(&self) -> usize {
        std::sync::Arc::strong_count(&self.inner)
    }
}

/// Turns a received copy in `staging` into a replica of `primary` and marks it
/// complete, ready for [`install_snapshot`]. Returns the copy's last sequence number,
/// the watermark the replica continues from.
pub fn prepare_snapshot(staging: &Path, primary: &str) -> Result<u64> {
    let seq = {
        let store = Store::open(staging, OpenMode::Existing, &StoreOptions::default())?;
        let role = ReplicationRole::Replica {
            primary: primary.to_string(),
        };
        let mut batch = store.batch();
        batch.put(ColumnFamily::Meta, META_ROLE, &role.encode())?;
        store.commit(batch, &[])?;
        store.flush()?;
        store.last_seq()
    };
    let marker = staging.join(COMPLETE);
    let file = fs::File::create(&marker).map_err(|e| io_error(&marker, e))?;
    file.sync_all().map_err(|e| io_error(&marker, e))?;
    sync_dir(staging);
    Ok(seq)
}

/// Replaces the database at `db` (closed: no handle may be open) with the prepared
/// copy staged beside it.
pub fn install_snapshot(db: &Path) -> Result<()> {
    let staging = snapshot_staging_path(db);
    if !staging.join(COMPLETE).is_file() {
        return Err(Error::InvalidInput(format!(
            "no complete snapshot is staged in {}",
            staging.display()
        )));
    }
    let replaced = replaced_path(db);
    remove_dir(&replaced)?;
    crate::kill_point::reached("snapshot-install:staged");
    if db.exists() {
        fs::rename(db, &replaced).map_err(|e| io_error(db, e))?;
    }
    crate::kill_point::reached("snapshot-install:set-aside");
    if let Err(e) = fs::rename(&staging, db) {
        // Another process opening the database may have finished the swap.
        if !db.exists() || staging.exists() {
            return Err(io_error(&staging, e));
        }
    }
    crate::kill_point::reached("snapshot-install:swapped");
    sync_dir(&parent(db));
    let _ = fs::remove_file(db.join(COMPLETE));
    remove_dir(&replaced)
}

/// Finishes or undoes a snapshot install that a crash interrupted, and removes
/// leftovers (see the module documentation). Called before every open.
pub fn recover_snapshot_install(db: &Path) -> Result<()> {
    let staging = snapshot_staging_path(db);
    let replaced = replaced_path(db);
    if !db.exists() {
        if staging.join(COMPLETE).is_file() {
            tracing::warn!(
                "finishing an interrupted snapshot install in {}",
                db.display()
            );
            fs::rename(&staging, db).map_err(|e| io_error(&staging, e))?;
            let _ = fs::remove_file(db.join(COMPLETE));
        } else if replaced.exists() {
            tracing::warn!(
                "undoing an interrupted snapshot install in {}",
                db.display()
            );
            fs::rename(&replaced, db).map_err(|e| io_error(&replaced, e))?;
        } else {
            return Ok(());
        }
        sync_dir(&parent(db));
    }
    if replaced.exists() {
        remove_dir(&replaced)?;
    }
    Ok(())
}

/// Removes a staged snapshot that was never installed (a download cut short).
pub fn discard_staged_snapshot(db: &Path) -> Result<()> {
    remove_dir(&snapshot_staging_path(db))
}
