//! The endpoint file: `<database>/SERVER`, written by a running `rem serve` or
//! `rem replicate --follow` and removed when it stops. It holds the address of the
//! process's gRPC server and its pid; other `rem` commands on the same database read
//! it and go through that server. A file left by a killed process points at nothing:
//! the connection fails and the command opens the database itself.

use std::path::{Path, PathBuf};

/// Name of the file inside the database directory.
pub const FILE_NAME: &str = "SERVER";

fn path(db: &Path) -> PathBuf {
    db.join(FILE_NAME)
}

/// Writes the endpoint file for `address` (atomically: temporary file, then rename).
pub fn write(db: &Path, address: &str, role: &str) -> std::io::Result<()> {
    let doc = serde_json::json!({
        "address": address, "pid": std::process::id(), "role": role,
    });
    let tmp = db.join(format!(".{FILE_NAME}.{}", std::process::id()));
    std::fs::write(&tmp, doc.to_string())?;
    std::fs::rename(&tmp, path(db))
}

/// The address in the endpoint file, if there is one.
pub fn read(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path(db)).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["address"].as_str().map(String::from)
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
