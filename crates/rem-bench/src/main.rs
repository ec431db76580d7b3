//! `rem-bench`: benchmark programs. Each figure is printed beside a reference run
//! doing the same work in the same process (raw RocksDB for storage), with the ratio.
//!
//! Run: `cargo run --release -p rem-bench -- storage --n 100000`

mod storage;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rem-bench",
    about = "REM database benchmarks with reference runs"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Batch insert, single insert, get by id and indexed lookup vs raw RocksDB.
    Storage {
        /// Records for the batch-insert and read phases.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Single-insert operations (one commit each).
        #[arg(long, default_value_t = 20_000)]
        single: usize,
        /// Point reads to time.
        #[arg(long, default_value_t = 200_000)]
        gets: usize,
        /// Indexed-equality lookups to time.
        #[arg(long, default_value_t = 20_000)]
        lookups: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Storage {
            n,
            single,
            gets,
            lookups,
        } => storage::run(n, single, gets, lookups),
    }
}
