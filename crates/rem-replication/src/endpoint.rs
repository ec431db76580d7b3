//! The endpoint file: `<database>/SERVER`, written by a running `rem serve` or
//! `rem replicate --follow` and removed when it stops. It holds the address of the
//! process's gRPC server and its pid; other `rem` commands on the same database read
//! it and go through that server. It also names the server's instance, a random id
//! the server's `Hello` returns: a file left by a killed process points at nothing (the
//! connection fails, or another server answers with another instance), and the command
//! then opens the database itself — before it reads any input.

use std::path::{Path, PathBuf};

/// Name of the file inside the database directory.
pub const FILE_NAME: &str = "SERVER";

fn path(db: &Path) -> PathBuf {
    db.join(FILE_NAME)
}

/// A running server, as its endpoint file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub address: String,
    /// True when the server accepts TLS connections only.
    pub tls: bool,
    /// The serving process's instance id (its `Hello` reply carries the same).
    pub instance: String,
}

/// Writes the endpoint file for `address` (atomically: temporary file, then rename).
pub fn write(
    db: &Path,
    address: &str,
    role: &str,
    tls: bool,
    instance: &str,
) -> std::io::Result<()> {
    let doc = serde_json::json!({
        "address": address, "pid": std::process::id(), "role": role, "tls": tls,
        "instance": instance,
    });
    let tmp = db.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Readable by the owner only, like the token file beside it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(&tmp)?, doc.to_string().as_bytes())?;
    std::fs::rename(&tmp, path(db))
}

/// The server the endpoint file names, if there is one.
pub fn read(db: &Path) -> Option<Endpoint> {
    let text = std::fs::read_to_string(path(db)).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Endpoint {
        address: doc["address"].as_str()?.to_string(),
        tls: doc["tls"].as_bool().unwrap_or(false),
        instance: doc["instance"].as_str().unwrap_or_default().to_string(),
    })
}

/// Removes the endpoint file if it is this process's.
pub fn remove(db: &Path) {
    let mine = std::fs::read_to_string(path(db))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|d| d["pid"].as_u64() == Some(std::process::id() as u64));
    if mine {
        let _ = std::fs::remove_file(path(db));
    }
}
