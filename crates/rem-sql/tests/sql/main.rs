//! SQL tests: behaviour (`.slt` files), a differential check against SQLite, index
//! pushdown visible in EXPLAIN, semantic extensions and errors.

mod common;
mod differential;
mod errors;
mod pushdown;
mod semantic;
mod slt;
