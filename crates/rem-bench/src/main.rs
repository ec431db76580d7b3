//! `rem-bench`: benchmark programs. Each figure is printed beside a reference run
//! doing the same work in the same process or script (raw RocksDB for storage; exact
//! search and hnswlib for the vector index), with the ratio.
//!
//! Run: `cargo run --release -p rem-bench -- storage --n 100000`
//!      `cargo run --release -p rem-bench -- ann --n 100000 --reference`

mod ann;
mod embed;
mod encryption;
mod export;
mod graph;
mod ingest;
mod replication;
mod service;
mod sql;
mod storage;
mod vectors;

use clap::{Parser, Subcommand};

// The system allocator returns large blocks to the OS and faults them in again on the
// next use; candle allocates a fresh tensor per operation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// A plain and an encrypted database side by side: insert, get, lookup, scan, search, open.
    Encryption {
        /// Records.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Point reads to time (a tenth as many indexed lookups).
        #[arg(long, default_value_t = 100_000)]
        gets: usize,
    },
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
    Ann(ann::Args),
    /// Local-model embedding throughput (short, long, mixed texts) and insert-with-embedding.
    Embed {
        /// Local model name.
        #[arg(long, default_value = "all-MiniLM-L6-v2")]
        model: String,
        /// Models directory (default: P8_MODELS_DIR or ~/.p8/models).
        #[arg(long, env = "P8_MODELS_DIR")]
        models_dir: Option<std::path::PathBuf>,
        /// Run the model on candle (f32) instead of the default engine.
        #[arg(long)]
        candle: bool,
        /// Documents for the end-to-end insert.
        #[arg(long, default_value_t = 1000)]
        docs: usize,
    },
    /// `rem export` of a table to Parquet/CSV/JSONL vs the same writer over in-memory batches.
    Export {
        /// Rows.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Runs per format (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// 3-hop traversals forward and reverse vs a BFS over an in-memory adjacency map.
    Graph {
        /// Nodes (each with `fanout` outgoing edges).
        #[arg(long, default_value_t = 100_000)]
        nodes: usize,
        /// Edges per node.
        #[arg(long, default_value_t = 10)]
        fanout: usize,
        /// Traversals per direction.
        #[arg(long, default_value_t = 500)]
        reps: usize,
    },
    /// `rem ingest` of generated Markdown and PDFs: MB/s, chunks/s and the model's share.
    Ingest {
        /// Markdown files.
        #[arg(long, default_value_t = 40)]
        md_files: usize,
        /// Size of each Markdown file in KiB.
        #[arg(long, default_value_t = 8)]
        md_kb: usize,
        /// PDF files.
        #[arg(long, default_value_t = 4)]
        pdfs: usize,
        /// Pages per PDF (40 sentences each).
        #[arg(long, default_value_t = 10)]
        pdf_pages: usize,
        /// Models directory (default: P8_MODELS_DIR or ~/.p8/models).
        #[arg(long, env = "P8_MODELS_DIR")]
        models_dir: Option<std::path::PathBuf>,
    },
    /// Replication lag under steady writes, catch-up rate, and the write cost of replicas.
    Replication {
        /// Single-record writes for the lag measurement.
        #[arg(long, default_value_t = 5000)]
        writes: usize,
        /// Their rate per second.
        #[arg(long, default_value_t = 1000)]
        rate: usize,
        /// Entries a late replica starts behind (also the records of the write-cost run).
        #[arg(long, default_value_t = 100_000)]
        behind: usize,
        /// Records per batch in the write-cost run.
        #[arg(long, default_value_t = 100)]
        batch_rows: usize,
    },
    /// Write throughput of a primary with no replica vs two `rem replicate --follow`
    /// processes pinned to another core (run this program under `taskset -c 0`).
    ReplicationCost {
        /// Records per run.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Records per batch.
        #[arg(long, default_value_t = 100)]
        batch_rows: usize,
        /// The CPU the replica processes are pinned to (`taskset -c`).
        #[arg(long, default_value_t = 1)]
        replica_cpu: usize,
        /// Alternating runs of each case.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The same operations embedded and through a server (the library, then `rem` commands).
    Service {
        /// Notes (embedded with the local model) to search and get.
        #[arg(long, default_value_t = 2000)]
        notes: usize,
        /// Gets measured per path.
        #[arg(long, default_value_t = 5000)]
        gets: usize,
        /// Searches and SQL queries measured per path.
        #[arg(long, default_value_t = 200)]
        reps: usize,
        /// Runs of each `rem` command per path.
        #[arg(long, default_value_t = 15)]
        cli_reps: usize,
        /// Where the local model is.
        #[arg(long, env = "P8_MODELS_DIR")]
        models_dir: Option<std::path::PathBuf>,
    },
    /// The Rust API's side of the Python overhead figure (python/bench/peers.py --rust-bench).
    Vectors {
        /// Folder with vectors.f32 and queries.f32 (raw little-endian f32).
        #[arg(long)]
        data: std::path::PathBuf,
        /// Vector size.
        #[arg(long, default_value_t = 384)]
        dims: usize,
    },
    /// SQL through the table providers vs DataFusion over a MemTable; cosine ORDER BY vs search.
    Sql {
        /// Rows in the relational table.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Documents for the semantic comparison.
        #[arg(long, default_value_t = 20_000)]
        docs: usize,
        /// Runs per query.
        #[arg(long, default_value_t = 200)]
        reps: usize,
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
        Scenario::Encryption { n, gets } => encryption::run(n, gets),
        Scenario::Ann(args) => ann::run(&args),
        Scenario::Sql { n, docs, reps } => sql::run(n, docs, reps),
        Scenario::Vectors { data, dims } => vectors::run(&data, dims),
        Scenario::Service {
            notes,
            gets,
            reps,
            cli_reps,
            models_dir,
        } => service::run(
            notes,
            gets,
            reps,
            cli_reps,
            models_dir.unwrap_or_else(|| rem::expand_home("~/.p8/models")),
        ),
        Scenario::Export { n, reps } => export::run(n, reps),
        Scenario::Graph {
            nodes,
            fanout,
            reps,
        } => graph::run(nodes, fanout, reps),
        Scenario::ReplicationCost {
            records,
            batch_rows,
            replica_cpu,
            rounds,
        } => replication::cost_with_processes(records, batch_rows, replica_cpu, rounds),
        Scenario::Replication {
            writes,
            rate,
            behind,
            batch_rows,
        } => replication::run(writes, rate, behind, batch_rows),
        Scenario::Ingest {
            md_files,
            md_kb,
            pdfs,
            pdf_pages,
            models_dir,
        } => ingest::run(md_files, md_kb, pdfs, pdf_pages, models_dir),
        Scenario::Embed {
            model,
            models_dir,
            candle,
            docs,
        } => embed::run(&model, models_dir, candle, docs),
    }
}
