//! `rem-bench`: benchmark programs. Each figure is printed beside a reference run
//! doing the same work in the same process or script (raw RocksDB for storage; exact
//! search and hnswlib for the vector index), with the ratio.
//!
//! Run: `cargo run --release -p rem-bench -- storage --n 100000`
//!      `cargo run --release -p rem-bench -- ann --n 100000 --reference`

mod ann;
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
    /// Vector index build, memory, recall@10, QPS and latency vs exact search and hnswlib.
    Ann {
        /// Vectors.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Dimensions.
        #[arg(long, default_value_t = 384)]
        dims: usize,
        /// Queries.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// HNSW M.
        #[arg(long, default_value_t = 16)]
        m: usize,
        /// HNSW ef_construction.
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// ef_search values to measure.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
        ef_search: Vec<usize>,
        /// Also run the hnswlib reference (scripts/ann_reference.py; REM_BENCH_PYTHON picks the interpreter).
        #[arg(long)]
        reference: bool,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
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
        Scenario::Ann {
            n,
            dims,
            queries,
            m,
            ef_construction,
            ef_search,
            reference,
            seed,
        } => ann::run(
            n,
            dims,
            queries,
            m,
            ef_construction,
            &ef_search,
            reference,
            seed,
        ),
    }
}
