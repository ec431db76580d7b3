//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable table (default on a terminal).
    Table,
    /// JSON (default when piped).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

/// File formats of `rem export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Parser)]
#[command(
    name = "rem",
    version,
    about = "REM database: an embedded store for AI agents' memory (schemas, entities, indexes, key lookup).",
    after_help = "Examples:\n  rem init\n  rem schema add person.yaml\n  rem insert person '{\"name\": \"Ada\", \"email\": \"ada@example.com\"}'\n  rem lookup ada@example.com\n\nThe database is --path, else P8_DB_PATH, else $P8_HOME/db (P8_HOME defaults to ~/.p8)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Database directory (overrides P8_DB_PATH).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) path: Option<PathBuf>,
    /// Tenant to act for (overrides P8_DEFAULT_TENANT).
    #[arg(long, global = true)]
    pub(crate) tenant: Option<String>,
    /// Output format (default: table on a terminal, json when piped).
    #[arg(long, global = true, value_enum)]
    pub(crate) format: Option<Format>,
    /// Send the command to the server at HOST:PORT (P8_SERVER; its token in
    /// P8_SERVER_TOKEN). Without it, a server holding the database is found through the
    /// SERVER file in the database folder.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub(crate) server: Option<String>,
    /// Password of an encrypted database (overrides P8_PASSWORD; on a terminal, rem
    /// prompts when one is needed, which keeps it out of shell history). With `rem
    /// init`, the new database is encrypted.
    #[arg(long, global = true, value_name = "PASSWORD")]
    pub(crate) password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a database and register the built-in tables.
    #[command(
        after_help = "Examples:\n  rem init\n  rem init --path ./data\n  rem init --encrypt            # prompts for a password\n  P8_PASSWORD=... rem init       # encrypted, password from the environment\n\nWith a password (--password, P8_PASSWORD or --encrypt's prompt) the database is\nencrypted at rest: every later command needs the password (P8_PASSWORD, or the prompt)."
    )]
    Init {
        /// Encrypt the new database; prompts for a password when none is given.
        #[arg(long)]
        encrypt: bool,
    },
    /// Change the password of an encrypted database (re-wraps its key: O(1), crash-safe).
    #[command(
        after_help = "Examples:\n  rem passwd                                   # prompts for both\n  P8_PASSWORD=old P8_NEW_PASSWORD=new rem passwd\n\nOnly the ENCRYPTION header is rewritten: at every moment the old or the new\npassword opens the database. The data key itself does not change."
    )]
    Passwd {
        /// The new password (else P8_NEW_PASSWORD, else a prompt on a terminal).
        #[arg(long, value_name = "PASSWORD")]
        new_password: Option<String>,
    },
    /// Create this user's Ed25519 key pair in $P8_HOME/keys (private key sealed by a password).
    #[command(
        name = "key-gen",
        after_help = "Examples:\n  rem key-gen                  # prompts for a password\n  rem key-gen --password P\n\nWrites keys/public_key (hex) and keys/private_key_encrypted (Argon2id +\nXChaCha20-Poly1305). The pair identifies this user; sharing between tenants\n(X25519 from the same key) builds on it later. It is not the database key."
    )]
    KeyGen {
        /// Replace an existing key pair.
        #[arg(long)]
        force: bool,
    },
    /// Register and inspect schemas (tables).
    #[command(
        subcommand,
        after_help = "Examples:\n  rem schema add person.yaml\n  rem schema list"
    )]
    Schema(SchemaCommand),
    /// Insert or upsert records: one JSON object, or JSONL on stdin with --batch.
    #[command(
        after_help = "Examples:\n  rem insert person '{\"name\": \"Ada\"}'\n  cat people.jsonl | rem insert person --batch\n  cat people.jsonl | rem insert person --batch --batch-size 500 --ids"
    )]
    Insert(InsertArgs),
    /// Upsert records from a JSONL file into a table.
    #[command(after_help = "Example:\n  rem upsert people.jsonl --schema person")]
    Upsert(UpsertArgs),
    /// Show an entity by id.
    #[command(after_help = "Example:\n  rem get 550e8400-e29b-41d4-a716-446655440000")]
    Get {
        /// Entity id (UUID).
        id: String,
        /// Also show a soft-deleted entity.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Soft-delete an entity by id.
    #[command(after_help = "Example:\n  rem delete 550e8400-e29b-41d4-a716-446655440000")]
    Delete {
        /// Entity id (UUID).
        id: String,
    },
    /// Find every entity, in any table, whose key equals KEY.
    #[command(
        after_help = "Examples:\n  rem lookup TAP-1234\n  rem lookup ada@example.com --format json"
    )]
    Lookup {
        /// Key value (a key field, uri, key or name).
        key: String,
    },
    /// Semantic search over a table's embedded fields.
    #[command(
        after_help = "Examples:\n  rem search \"fast programming languages\" --schema articles --top-k 5\n  rem search \"sprint planning\" --where \"moment_type = 'meeting'\"\n  rem search \"database internals\"   # picks the table by its description"
    )]
    Search(SearchArgs),
    /// Run SQL over the tables (SELECT, EXPLAIN, SEARCH, LOOKUP).
    #[command(after_help = "Examples:
  rem query \"SELECT name, category FROM resources WHERE category = 'docs' LIMIT 5\"
  rem query \"SELECT category, COUNT(*) AS n FROM resources GROUP BY category ORDER BY n DESC\"
  rem query \"SELECT name, _score FROM resources ORDER BY embedding.cosine('rocksdb tuning') DESC LIMIT 3\"
  rem query \"SEARCH resources 'rocksdb tuning' WHERE category = 'docs' LIMIT 3\"
  rem query \"LOOKUP 'ada@example.com'\"
  rem query \"EXPLAIN SELECT * FROM resources WHERE uri = 'file:///a.md'\"
  rem query \"SELECT * FROM resources WHERE deleted_at IS NOT NULL\"   # soft-deleted rows

Soft-deleted rows are hidden unless the query filters on deleted_at or --include-deleted is given.")]
    Query {
        /// One SQL statement.
        sql: String,
        /// Show soft-deleted rows in every table.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Add or remove typed edges between entities.
    #[command(
        subcommand,
        after_help = "Examples:\n  rem edge add <src-id> <dst-id> --type authored_by\n  rem edge add TAP-1 resources:file:///a.md#0 --type mentions --props '{\"line\": 3}' --weight 0.5\n  rem edge rm <src-id> <dst-id> --type authored_by\n\nEntities are given by id, qualified key (table:key) or a key only one entity has.\nType 'references' edits the source's edges list."
    )]
    Edge(EdgeCommand),
    /// List the edges of an entity.
    #[command(
        after_help = "Examples:\n  rem edges <id>\n  rem edges <id> --direction in --type authored_by"
    )]
    Edges {
        /// Entity: id, qualified key (table:key) or unique key.
        entity: String,
        /// out, in or both.
        #[arg(long, default_value = "both")]
        direction: String,
        /// Only edges of this type.
        #[arg(long = "type")]
        edge_type: Option<String>,
    },
    /// Walk the graph from an entity (breadth-first; --dfs for depth-first).
    #[command(
        after_help = "Examples:\n  rem traverse <id> --depth 2\n  rem traverse <id> --depth 3 --direction both --type references\n  rem traverse <id> --depth 4 --dfs --format json"
    )]
    Traverse {
        /// Start entity: id, qualified key (table:key) or unique key.
        entity: String,
        /// Hops (1-16).
        #[arg(long, default_value_t = 2)]
        depth: usize,
        /// out, in or both.
        #[arg(long, default_value = "out")]
        direction: String,
        /// Only edges of this type.
        #[arg(long = "type")]
        edge_type: Option<String>,
        /// Depth-first order.
        #[arg(long)]
        dfs: bool,
    },
    /// Shortest path (fewest hops) between two entities.
    #[command(
        after_help = "Examples:\n  rem path <id-a> <id-b>\n  rem path <id-a> <id-b> --direction both --max-depth 8"
    )]
    Path {
        /// From: id, qualified key or unique key.
        from: String,
        /// To: id, qualified key or unique key.
        to: String,
        /// out, in or both.
        #[arg(long, default_value = "out")]
        direction: String,
        /// Only edges of this type.
        #[arg(long = "type")]
        edge_type: Option<String>,
        /// Longest path searched (1-16).
        #[arg(long, default_value_t = 6)]
        max_depth: usize,
    },
    /// Ingest documents: chunk, embed and store a file or a folder's files.
    #[command(after_help = "Examples:
  rem ingest notes.md
  rem ingest ./docs --recursive
  rem ingest paper.pdf --schema papers

Reads .txt, .md, .html and .pdf. Each file gets a `files` record (status, content_hash,
chunk_count) and its chunks go to --schema (default resources) with uri, ordinal, name,
content and metadata (page, heading_path). Unchanged files are skipped; changed files
replace their chunks. In a folder, a failing file is reported and the run goes on.")]
    Ingest {
        /// File or folder.
        #[arg(value_name = "PATH")]
        input: PathBuf,
        /// Table for the chunks.
        #[arg(long, default_value = "resources")]
        schema: String,
        /// Include sub-folders.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Export a table (or every table) to Parquet, CSV or JSON lines.
    #[command(after_help = "Examples:
  rem export resources --output resources.parquet
  rem export resources --output docs.parquet --where \"category = 'docs'\" --include-embeddings
  rem export person --output people.csv
  rem export person --output people.data --file-format jsonl
  rem export --all --output backup/            # one <table>.parquet per table

--file-format defaults to the output file's extension, else parquet (--format is what
the summary is printed as). Parquet compression:
--compression, else P8_PARQUET_COMPRESSION (zstd); row groups of P8_PARQUET_ROW_GROUP_SIZE
rows are written while streaming. Files are written beside the target and renamed into
place when complete.")]
    Export(ExportArgs),
    /// Check that indexes and entities agree and the change log has no gaps.
    #[command(after_help = "Example:\n  rem verify")]
    Verify,
    /// Rows per table, index sizes and disk use.
    #[command(after_help = "Example:\n  rem stats --format json")]
    Stats,
    /// Configuration.
    #[command(subcommand, after_help = "Example:\n  rem config show")]
    Config(ConfigCommand),
    /// Serve the database: replicas subscribe here, and other `rem` commands on the
    /// same database go through this process while it runs.
    #[command(
        after_help = "Examples:\n  rem serve --port 50051\n  P8_REPLICATION_TLS_CERT=cert.pem P8_REPLICATION_TLS_KEY=key.pem rem serve --host 0.0.0.0

The database becomes a primary. Other rem commands with the same --path find the
server through the file SERVER in the database folder; remote ones use --server.
Every request needs the server's token: P8_SERVER_TOKEN (or P8_REPLICATION_TOKEN) when
set, else a random token kept in the database folder's TOKEN file (mode 0600), which
local commands read. A non-loopback --host needs TLS, or --insecure. Stop with Ctrl-C."
    )]
    Serve {
        /// Address to listen on (P8_REPLICATION_HOST, default 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
        /// Port (P8_REPLICATION_PORT, default 50051; 0 picks a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Allow plain-text connections on a non-loopback address (no TLS): anyone who
        /// can watch the network sees the token and the data.
        #[arg(long)]
        insecure: bool,
    },
    /// Make this database a replica of a primary and apply its changes.
    #[command(
        after_help = "Examples:\n  rem replicate --primary localhost:50051 --follow\n  rem replicate --primary 10.0.0.5:50051          # catch up once, then exit

The database must be new (only `rem init`) or already a replica. Local writes are
refused; reads work, also while the primary is down. With --follow the replica keeps
applying changes, reconnects with backoff and serves other rem commands on its
database (see rem serve)."
    )]
    Replicate {
        /// Primary address host:port (P8_PRIMARY_HOST).
        #[arg(long)]
        primary: Option<String>,
        /// Keep following after catching up.
        #[arg(long)]
        follow: bool,
        /// Start again from a snapshot of the primary, dropping this replica's copy (for
        /// a replica whose history diverged from its primary's).
        #[arg(long)]
        rebuild: bool,
        /// Allow the replica's server on a non-loopback address without TLS.
        #[arg(long)]
        insecure: bool,
    },
    /// Replication status, change-log status and promotion.
    #[command(subcommand)]
    Replication(ReplicationCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReplicationCommand {
    /// Mode, primary, applied and primary sequence numbers, lag and state.
    #[command(after_help = "Example:\n  rem replication status")]
    Status,
    /// Change-log sequence number, retained entries and bytes.
    #[command(after_help = "Example:\n  rem replication wal-status")]
    WalStatus,
    /// Turn this replica into a primary (manual failover); its sequence continues.
    #[command(after_help = "Example:\n  rem replication promote")]
    Promote,
    /// Checksums of entities and every index, to compare a replica with its primary.
    #[command(after_help = "Example:\n  rem replication checksum --format json")]
    Checksum,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EdgeCommand {
    /// Add (or update) the edge SRC -[TYPE]-> DST.
    Add {
        /// Source: id, qualified key (table:key) or unique key.
        src: String,
        /// Target: id, qualified key (table:key) or unique key.
        dst: String,
        /// Edge type.
        #[arg(long = "type")]
        edge_type: String,
        /// Edge properties as a JSON object.
        #[arg(long)]
        props: Option<String>,
        /// Weight (default 1.0).
        #[arg(long)]
        weight: Option<f64>,
    },
    /// Remove the edge SRC -[TYPE]-> DST.
    Rm {
        /// Source: id, qualified key (table:key) or unique key.
        src: String,
        /// Target: id, qualified key (table:key) or unique key.
        dst: String,
        /// Edge type.
        #[arg(long = "type")]
        edge_type: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Register a schema from a file (JSON, YAML, models.py::Class) or a template.
    #[command(
        after_help = "Examples:\n  rem schema add person.json\n  rem schema add person.yaml\n  rem schema add models.py::Person\n  rem schema add --name my_docs --template resources\n  rem schema add --name my_docs --template resources --output my_docs.yaml"
    )]
    Add {
        /// Schema file: .json, .yaml/.yml, or models.py::ClassName.
        source: Option<String>,
        /// Name of a new schema made from --template.
        #[arg(long, requires = "template")]
        name: Option<String>,
        /// Template to clone (see `rem schema templates`).
        #[arg(long, requires = "name", conflicts_with = "source")]
        template: Option<String>,
        /// Write the templated schema to this file (.json or .yaml) instead of registering it.
        #[arg(long, requires = "template")]
        output: Option<PathBuf>,
    },
    /// List registered schemas.
    #[command(after_help = "Examples:\n  rem schema list\n  rem schema list --format json")]
    List,
    /// Show a schema document (JSON, ready to edit and re-add).
    #[command(
        after_help = "Example:\n  rem schema show person > person.json && rem schema add person.json"
    )]
    Show {
        /// Table name.
        name: String,
    },
    /// List schema templates.
    #[command(after_help = "Example:\n  rem schema templates")]
    Templates,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Effective configuration values and where each came from.
    #[command(
        after_help = "Examples:\n  rem config show\n  P8_ROCKSDB_COMPRESSION=zstd rem config show --format json"
    )]
    Show,
}

#[derive(Debug, Args)]
pub(crate) struct InsertArgs {
    /// Table name.
    pub(crate) table: String,
    /// The record as a JSON object (omit with --batch).
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub(crate) json: Option<String>,
    /// Read JSONL records from stdin, written in atomic batches.
    #[arg(long)]
    pub(crate) batch: bool,
    #[command(flatten)]
    pub(crate) batching: BatchArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// What to look for, in plain language.
    pub(crate) query: String,
    /// Table to search (default: the table whose description is most similar).
    #[arg(long)]
    pub(crate) schema: Option<String>,
    /// Number of results.
    #[arg(long, default_value_t = 10)]
    pub(crate) top_k: usize,
    /// Drop results below this cosine similarity.
    #[arg(long)]
    pub(crate) min_score: Option<f32>,
    /// Only entities matching this SQL predicate, e.g. "category = 'tutorial' AND views > 10".
    #[arg(long = "where", value_name = "PREDICATE")]
    pub(crate) predicate: Option<String>,
    /// Search the alternative embedding (P8_ALT_EMBEDDING).
    #[arg(long)]
    pub(crate) alt: bool,
    /// Table output: these columns (comma-separated) after the score, instead of the
    /// table, key or name and content.
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub(crate) columns: Option<Vec<String>>,
    /// Table output: every field.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpsertArgs {
    /// JSONL file, one record per line.
    pub(crate) file: PathBuf,
    /// Table to write into.
    #[arg(long)]
    pub(crate) schema: String,
    #[command(flatten)]
    pub(crate) batching: BatchArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BatchArgs {
    /// Records per atomic batch (default P8_BATCH_SIZE, 1000).
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Print each id once its batch is committed.
    #[arg(long)]
    pub(crate) ids: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Table to export (omit with --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub(crate) table: Option<String>,
    /// Every table, one file each, into the --output folder.
    #[arg(long)]
    pub(crate) all: bool,
    /// Output file (a folder with --all).
    #[arg(long, short = 'o')]
    pub(crate) output: PathBuf,
    /// Parquet compression: snappy, gzip, brotli, lz4, zstd or none.
    #[arg(long)]
    pub(crate) compression: Option<String>,
    /// Only rows matching this SQL predicate.
    #[arg(long = "where", value_name = "PREDICATE")]
    pub(crate) predicate: Option<String>,
    /// Add the stored vectors as embedding (and embedding_alt) columns.
    #[arg(long)]
    pub(crate) include_embeddings: bool,
    /// Export from an encrypted database: the file is written in plaintext.
    #[arg(long)]
    pub(crate) plaintext: bool,
    /// File format (default: the output file's extension, else parquet).
    #[arg(long, value_enum)]
    pub(crate) file_format: Option<FileFormat>,
}
