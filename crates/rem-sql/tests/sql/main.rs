//! SQL tests: behaviour (`.slt` files), a differential check against SQLite, index
//! pushdown visible in EXPLAIN, semantic extensions and errors.

// Test helpers may panic: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod common;
mod differential;
mod errors;
mod pushdown;
mod semantic;
mod slt;
mod subqueries;
