//! Kill points (after RocksDB's): named places inside a multi-step operation where a
//! test can have the process die at once, as under `kill -9`, to pin a crash between
//! two steps that a random kill rarely hits. The process aborts at the point armed by
//! [`arm_kill_point`] (the `rem` binary arms `P8_KILL_POINT`); unarmed, a point costs
//! one atomic load.

use std::sync::OnceLock;

static ARMED: OnceLock<String> = OnceLock::new();

/// Arms the kill point `name` for the rest of the process (the first call wins).
#[doc(hidden)]
pub fn arm_kill_point(name: &str) {
    let _ = ARMED.set(name.to_string());
}

/// Aborts the process when `name` is the armed kill point.
pub(crate) fn reached(name: &str) {
    if ARMED.get().map(String::as_str) == Some(name) {
        eprintln!("kill point {name} reached: aborting");
        std::process::abort();
    }
}
