//! Configuration: `P8_*` environment variables over `$P8_HOME/config.toml` over
//! defaults, each value remembering where it came from (`rem config show`). Loaded here,
//! in the top layer; the engine receives [`rem::OpenOptions`] built from it.
//!
//! [`Settings`] is the typed configuration (serde); its `Default` is the one place
//! defaults are written. Loading serialises the defaults to a TOML table, lays the
//! file's values and then the environment's over it (each converted to the type of its
//! default, with an error naming the setting), and deserialises the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use rem::{
    expand_home, Compression, EmbeddingOptions, Error, LocalEngine, Result, StoreOptions,
    VectorIndexType, VectorQuantization,
};

/// Where a configuration value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Built-in default.
    Default,
    /// `$P8_HOME/config.toml`.
    File,
    /// Environment variable.
    Env,
    /// Command-line flag.
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Env => "environment",
            Source::Flag => "flag",
        })
    }
}

/// One setting: its environment name and its place in `config.toml` (its default and
/// its type are those of the [`Settings`] field at that place).
struct Setting {
    env: &'static str,
    section: &'static str,
    key: &'static str,
    help: &'static str,
}

/// Every setting an environment variable or `config.toml` can change.
const SETTINGS: &[Setting] = &[
    Setting {
        env: "P8_DB_PATH",
        section: "database",
        key: "path",
        help: "database directory",
    },
    Setting {
        env: "P8_DEFAULT_TENANT",
        section: "core",
        key: "default_tenant",
        help: "tenant of every operation",
    },
    Setting {
        env: "P8_ROCKSDB_WRITE_BUFFER_SIZE",
        section: "database",
        key: "rocksdb_write_buffer_size",
        help: "memtable size per column family, MB",
    },
    Setting {
        env: "P8_ROCKSDB_MAX_BACKGROUND_JOBS",
        section: "database",
        key: "rocksdb_max_background_jobs",
        help: "flush and compaction threads",
    },
    Setting {
        env: "P8_ROCKSDB_MAX_OPEN_FILES",
        section: "database",
        key: "rocksdb_max_open_files",
        help: "open file limit (-1: unlimited)",
    },
    Setting {
        env: "P8_ROCKSDB_COMPRESSION",
        section: "database",
        key: "rocksdb_compression",
        help: "none, lz4, zstd or snappy",
    },
    Setting {
        env: "P8_ROCKSDB_BLOCK_CACHE_SIZE",
        section: "database",
        key: "rocksdb_block_cache_size",
        help: "block cache, MB",
    },
    Setting {
        env: "P8_ROCKSDB_SYNC",
        section: "database",
        key: "rocksdb_sync",
        help: "fsync the log on every commit (power-loss safety)",
    },
    Setting {
        env: "P8_ARGON2_MEMORY_KIB",
        section: "database",
        key: "argon2_memory_kib",
        help: "Argon2id memory (KiB) for a new password (`rem init --password`, `rem passwd`, `rem key-gen`)",
    },
    Setting {
        env: "P8_ARGON2_ITERATIONS",
        section: "database",
        key: "argon2_iterations",
        help: "Argon2id passes for a new password",
    },
    Setting {
        env: "P8_ARGON2_PARALLELISM",
        section: "database",
        key: "argon2_parallelism",
        help: "Argon2id lanes for a new password",
    },
    Setting {
        env: "P8_BATCH_SIZE",
        section: "database",
        key: "batch_size",
        help: "records per atomic batch for `rem insert --batch`",
    },
    Setting {
        env: "P8_REPLICATION_MODE",
        section: "replication",
        key: "mode",
        help: "standalone, primary or replica (`rem serve` follows P8_PRIMARY_HOST when replica)",
    },
    Setting {
        env: "P8_REPLICATION_HOST",
        section: "replication",
        key: "host",
        help: "address `rem serve` listens on",
    },
    Setting {
        env: "P8_REPLICATION_PORT",
        section: "replication",
        key: "port",
        help: "port of `rem serve`",
    },
    Setting {
        env: "P8_PRIMARY_HOST",
        section: "replication",
        key: "primary_host",
        help: "host:port of the primary a replica follows",
    },
    Setting {
        env: "P8_REPLICATION_TOKEN",
        section: "replication",
        key: "token",
        help: "token of a server (every RPC needs one; empty: a random one in <db>/TOKEN) and of the primary a replica follows",
    },
    Setting {
        env: "P8_SERVER",
        section: "server",
        key: "address",
        help: "host:port of a server to send commands to (like --server)",
    },
    Setting {
        env: "P8_SERVER_TOKEN",
        section: "server",
        key: "token",
        help: "token of the server (default: P8_REPLICATION_TOKEN, else the served database's TOKEN file)",
    },
    Setting {
        env: "P8_PYTHON",
        section: "core",
        key: "python",
        help: "interpreter that turns models.py::Class into a JSON Schema (runs on the client)",
    },
    Setting {
        env: "P8_REPLICATION_TLS_CERT",
        section: "replication",
        key: "tls_cert",
        help: "PEM certificate chain: `rem serve` / `rem replicate --follow` serve TLS only (with _KEY)",
    },
    Setting {
        env: "P8_REPLICATION_TLS_KEY",
        section: "replication",
        key: "tls_key",
        help: "PEM private key of P8_REPLICATION_TLS_CERT",
    },
    Setting {
        env: "P8_REPLICATION_TLS_CA",
        section: "replication",
        key: "tls_ca",
        help: "PEM CA certificate: clients (replicas, commands) connect with TLS and trust it",
    },
    Setting {
        env: "P8_REPLICATION_TLS_DOMAIN",
        section: "replication",
        key: "tls_domain",
        help: "name the server's TLS certificate must carry (default: the host connected to)",
    },
    Setting {
        env: "P8_WAL_RETENTION_SIZE",
        section: "replication",
        key: "wal_retention_size",
        help: "change-log records a primary keeps for replicas (0: all)",
    },
    Setting {
        env: "P8_SNAPSHOT_LIMIT",
        section: "replication",
        key: "snapshot_limit",
        help: "snapshots a server sends at once (more are told to retry)",
    },
    Setting {
        env: "P8_SNAPSHOT_IDLE_TIMEOUT",
        section: "replication",
        key: "snapshot_idle_timeout",
        help: "seconds a snapshot waits for a replica that takes nothing before it is abandoned",
    },
    Setting {
        env: "P8_WAL_BATCH_SIZE",
        section: "replication",
        key: "wal_batch_size",
        help: "change records per streamed batch",
    },
    Setting {
        env: "P8_DEFAULT_EMBEDDING",
        section: "embeddings",
        key: "default_model",
        help: "provider of `default` embedded fields: a local model name, local:<m>, openai:<m> or text-embedding-*",
    },
    Setting {
        env: "P8_ALT_EMBEDDING",
        section: "embeddings",
        key: "alt_model",
        help: "second provider filling embedding_alt (empty: none)",
    },
    Setting {
        env: "P8_EMBEDDING_BATCH_SIZE",
        section: "embeddings",
        key: "batch_size",
        help: "texts per provider call",
    },
    Setting {
        env: "P8_MODELS_DIR",
        section: "embeddings",
        key: "models_dir",
        help: "where local models are looked for first",
    },
    Setting {
        env: "P8_LOCAL_ENGINE",
        section: "embeddings",
        key: "local_engine",
        help: "local model engine: auto (bf16 on AVX-512 BF16 CPUs) or candle (f32)",
    },
    Setting {
        env: "P8_OPENAI_BASE_URL",
        section: "embeddings",
        key: "openai_base_url",
        help: "OpenAI-compatible endpoint",
    },
    Setting {
        env: "P8_OPENAI_API_KEY",
        section: "embeddings",
        key: "openai_api_key",
        help: "API key (else OPENAI_API_KEY)",
    },
    Setting {
        env: "P8_VECTOR_INDEX_TYPE",
        section: "vector_search",
        key: "index_type",
        help: "hnsw (approximate) or flat (exact)",
    },
    Setting {
        env: "P8_VECTOR_QUANTIZATION",
        section: "vector_search",
        key: "quantization",
        help: "how the index stores vectors: bf16, f16 or f32",
    },
    Setting {
        env: "P8_HNSW_M",
        section: "vector_search",
        key: "hnsw_m",
        help: "HNSW connections per node",
    },
    Setting {
        env: "P8_HNSW_EF_CONSTRUCTION",
        section: "vector_search",
        key: "hnsw_ef_construction",
        help: "HNSW build beam width",
    },
    Setting {
        env: "P8_HNSW_EF_SEARCH",
        section: "vector_search",
        key: "hnsw_ef_search",
        help: "HNSW search beam width",
    },
    Setting {
        env: "P8_PARQUET_ROW_GROUP_SIZE",
        section: "export",
        key: "parquet_row_group_size",
        help: "rows per Parquet row group (export streams one group at a time)",
    },
    Setting {
        env: "P8_PARQUET_COMPRESSION",
        section: "export",
        key: "parquet_compression",
        help: "snappy, gzip, brotli, lz4, zstd or none",
    },
    Setting {
        env: "P8_LOG_LEVEL",
        section: "logging",
        key: "level",
        help: "error, warn, info, debug or trace",
    },
    Setting {
        env: "P8_LOG_FORMAT",
        section: "logging",
        key: "format",
        help: "text or json",
    },
];

/// The typed configuration; `Settings::default()` holds every default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Settings {
    /// `[core]`.
    pub core: CoreSettings,
    /// `[database]`.
    pub database: DatabaseSettings,
    /// `[replication]`.
    pub replication: ReplicationSettings,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[embeddings]`.
    pub embeddings: EmbeddingSettings,
    /// `[vector_search]`.
    pub vector_search: VectorSearchSettings,
    /// `[export]`.
    pub export: ExportSettings,
    /// `[logging]`.
    pub logging: LoggingSettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            core: CoreSettings {
                default_tenant: "default".into(),
                python: "python3".into(),
            },
            database: DatabaseSettings {
                path: "$P8_HOME/db".into(),
                rocksdb_write_buffer_size: 64,
                rocksdb_max_background_jobs: 2,
                rocksdb_max_open_files: 1000,
                rocksdb_compression: "lz4".into(),
                rocksdb_block_cache_size: 128,
                rocksdb_sync: false,
                argon2_memory_kib: rem::KdfParams::default().m_kib,
                argon2_iterations: rem::KdfParams::default().t,
                argon2_parallelism: rem::KdfParams::default().p,
                batch_size: 1000,
            },
            replication: ReplicationSettings {
                mode: "standalone".into(),
                host: "127.0.0.1".into(),
                port: 50051,
                primary_host: String::new(),
                token: String::new(),
                tls_cert: String::new(),
                tls_key: String::new(),
                tls_ca: String::new(),
                tls_domain: String::new(),
                wal_retention_size: 1_000_000,
                wal_batch_size: 1000,
                snapshot_limit: 2,
                snapshot_idle_timeout: 60,
            },
            server: ServerSettings {
                address: String::new(),
                token: String::new(),
            },
            embeddings: EmbeddingSettings {
                default_model: "all-MiniLM-L6-v2".into(),
                alt_model: String::new(),
                batch_size: 32,
                models_dir: "$P8_HOME/models".into(),
                local_engine: "auto".into(),
                openai_base_url: "https://api.openai.com/v1".into(),
                openai_api_key: String::new(),
            },
            vector_search: VectorSearchSettings {
                index_type: "hnsw".into(),
                quantization: "bf16".into(),
                hnsw_m: 16,
                hnsw_ef_construction: 200,
                hnsw_ef_search: 50,
            },
            export: ExportSettings {
                parquet_row_group_size: 65536,
                parquet_compression: "zstd".into(),
            },
            logging: LoggingSettings {
                level: "warn".into(),
                format: "text".into(),
            },
        }
    }
}

/// `[core]`: tenant and the schema interpreter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct CoreSettings {
    /// `P8_DEFAULT_TENANT`.
    pub default_tenant: String,
    /// `P8_PYTHON`.
    pub python: String,
}

/// `[database]`: where the database is and how RocksDB runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct DatabaseSettings {
    /// `P8_DB_PATH` (`$P8_HOME` and `~` expanded).
    pub path: String,
    /// `P8_ROCKSDB_WRITE_BUFFER_SIZE`, MB.
    pub rocksdb_write_buffer_size: usize,
    /// `P8_ROCKSDB_MAX_BACKGROUND_JOBS`.
    pub rocksdb_max_background_jobs: i32,
    /// `P8_ROCKSDB_MAX_OPEN_FILES`.
    pub rocksdb_max_open_files: i32,
    /// `P8_ROCKSDB_COMPRESSION`.
    pub rocksdb_compression: String,
    /// `P8_ROCKSDB_BLOCK_CACHE_SIZE`, MB.
    pub rocksdb_block_cache_size: usize,
    /// `P8_ROCKSDB_SYNC`.
    pub rocksdb_sync: bool,
    /// `P8_ARGON2_MEMORY_KIB`.
    pub argon2_memory_kib: u32,
    /// `P8_ARGON2_ITERATIONS`.
    pub argon2_iterations: u32,
    /// `P8_ARGON2_PARALLELISM`.
    pub argon2_parallelism: u32,
    /// `P8_BATCH_SIZE`.
    pub batch_size: usize,
}

/// `[replication]`: serving, following and TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct ReplicationSettings {
    /// `P8_REPLICATION_MODE`.
    pub mode: String,
    /// `P8_REPLICATION_HOST`.
    pub host: String,
    /// `P8_REPLICATION_PORT`.
    pub port: u16,
    /// `P8_PRIMARY_HOST`.
    pub primary_host: String,
    /// `P8_REPLICATION_TOKEN`.
    pub token: String,
    /// `P8_REPLICATION_TLS_CERT`.
    pub tls_cert: String,
    /// `P8_REPLICATION_TLS_KEY`.
    pub tls_key: String,
    /// `P8_REPLICATION_TLS_CA`.
    pub tls_ca: String,
    /// `P8_REPLICATION_TLS_DOMAIN`.
    pub tls_domain: String,
    /// `P8_WAL_RETENTION_SIZE`.
    pub wal_retention_size: u64,
    /// `P8_WAL_BATCH_SIZE`.
    pub wal_batch_size: usize,
    /// `P8_SNAPSHOT_LIMIT`.
    pub snapshot_limit: usize,
    /// `P8_SNAPSHOT_IDLE_TIMEOUT`, seconds.
    pub snapshot_idle_timeout: u64,
}

/// `[server]`: the server commands are sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerSettings {
    /// `P8_SERVER`.
    pub address: String,
    /// `P8_SERVER_TOKEN`.
    pub token: String,
}

/// `[embeddings]`: providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct EmbeddingSettings {
    /// `P8_DEFAULT_EMBEDDING`.
    pub default_model: String,
    /// `P8_ALT_EMBEDDING`.
    pub alt_model: String,
    /// `P8_EMBEDDING_BATCH_SIZE`.
    pub batch_size: usize,
    /// `P8_MODELS_DIR` (`$P8_HOME` and `~` expanded).
    pub models_dir: String,
    /// `P8_LOCAL_ENGINE`.
    pub local_engine: String,
    /// `P8_OPENAI_BASE_URL`.
    pub openai_base_url: String,
    /// `P8_OPENAI_API_KEY`.
    pub openai_api_key: String,
}

/// `[vector_search]`: the vector indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct VectorSearchSettings {
    /// `P8_VECTOR_INDEX_TYPE`.
    pub index_type: String,
    /// `P8_VECTOR_QUANTIZATION`.
    pub quantization: String,
    /// `P8_HNSW_M`.
    pub hnsw_m: usize,
    /// `P8_HNSW_EF_CONSTRUCTION`.
    pub hnsw_ef_construction: usize,
    /// `P8_HNSW_EF_SEARCH`.
    pub hnsw_ef_search: usize,
}

/// `[export]`: Parquet files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct ExportSettings {
    /// `P8_PARQUET_ROW_GROUP_SIZE`.
    pub parquet_row_group_size: usize,
    /// `P8_PARQUET_COMPRESSION`.
    pub parquet_compression: String,
}

/// `[logging]`: what goes to stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
#[non_exhaustive]
pub struct LoggingSettings {
    /// `P8_LOG_LEVEL`.
    pub level: String,
    /// `P8_LOG_FORMAT`.
    pub format: String,
}

/// One effective configuration value.
#[derive(Debug, Clone)]
pub struct ConfigValue {
    /// Environment variable name (also the lookup key).
    pub env: &'static str,
    /// `section.key` in `config.toml`.
    pub file_key: String,
    /// Effective value.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// What it does.
    pub help: &'static str,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    home: (PathBuf, Source),
    settings: Settings,
    sources: BTreeMap<&'static str, Source>,
    /// `config.toml` keys no setting reads (shown by `rem config show`).
    unknown: Vec<String>,
    /// `OPENAI_API_KEY`, used when `P8_OPENAI_API_KEY` is empty.
    openai_api_key: Option<String>,
    /// The database password: `--password`, else `P8_PASSWORD` (environment only: a
    /// password is never read from `config.toml`).
    password: Option<rem::Password>,
}

/// `value` as the type of `default`; `name` says where it came from in errors.
fn coerce(value: &toml::Value, default: &toml::Value, name: &str) -> Result<toml::Value> {
    use toml::Value;
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    match default {
        Value::Integer(_) => match value {
            Value::Integer(_) => Ok(value.clone()),
            _ => text
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| Error::Config(format!("{name} must be a whole number, not '{text}'"))),
        },
        Value::Boolean(_) => match value {
            Value::Boolean(_) => Ok(value.clone()),
            _ => match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Value::Boolean(true)),
                "0" | "false" | "no" | "off" | "" => Ok(Value::Boolean(false)),
                _ => Err(Error::Config(format!(
                    "{name} must be true or false, not '{text}'"
                ))),
            },
        },
        _ => match value {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Integer(_) | Value::Float(_) | Value::Boolean(_) => Ok(Value::String(text)),
            _ => Err(Error::Config(format!("{name} must be text, not '{text}'"))),
        },
    }
}

/// Checks that `value` fits the type of setting `s` (a port fits in 16 bits, a size is
/// not negative), with an error naming the setting where it came from.
fn in_range(defaults: &toml::Table, s: &Setting, value: &toml::Value, name: &str) -> Result<()> {
    let mut table = defaults.clone();
    if let Some(toml::Value::Table(section)) = table.get_mut(s.section) {
        section.insert(s.key.to_string(), value.clone());
    }
    match toml::Value::Table(table).try_into::<Settings>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = e.message().to_string();
            let why = why
                .split(", expected")
                .nth(1)
                .map(str::trim)
                .unwrap_or(&why);
            let why = match why {
                "u16" => "a port number (0 to 65535)",
                "usize" | "u64" => "a number of 0 or more",
                "i32" => "a 32-bit number",
                other => other,
            };
            Err(Error::Config(format!(
                "{name} must be {why}, not {}",
                display(value)
            )))
        }
    }
}

/// A TOML value as `rem config show` prints it.
fn display(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Config {
    /// Loads from the process environment and `$P8_HOME/config.toml`.
    pub fn load() -> Result<Config> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("P8_") || k == "OPENAI_API_KEY")
            .collect();
        Config::load_from(&env)
    }

    /// Loads with `env` standing in for the environment (the `P8_*` variables and
    /// `OPENAI_API_KEY`).
    pub fn load_from(env: &BTreeMap<String, String>) -> Result<Config> {
        let home = match env.get("P8_HOME") {
            Some(h) => (expand_home(h), Source::Env),
            None => (expand_home("~/.p8"), Source::Default),
        };
        let file_path = home.0.join("config.toml");
        let file: toml::Table = match std::fs::read_to_string(&file_path) {
            Ok(text) => text.parse().map_err(|e: toml::de::Error| {
                Error::Config(format!(
                    "{} is not valid TOML: {}",
                    file_path.display(),
                    e.message()
                ))
            })?,
            Err(_) => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Settings::default())
            .map_err(|e| Error::Config(format!("the default settings: {e}")))?;
        let mut merged = defaults.clone();
        let mut sources = BTreeMap::new();
        for s in SETTINGS {
            let default = defaults
                .get(s.section)
                .and_then(|t| t.get(s.key))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{} has no default ({}.{})",
                        s.env, s.section, s.key
                    ))
                })?;
            let from_file = file.get(s.section).and_then(|t| t.get(s.key));
            let in_file = || format!("{}.{} in {}", s.section, s.key, file_path.display());
            let (value, source) = match (env.get(s.env), from_file) {
                (Some(v), _) => {
                    let value = coerce(&toml::Value::String(v.clone()), default, s.env)?;
                    in_range(&defaults, s, &value, s.env)?;
                    (value, Source::Env)
                }
                (None, Some(v)) => {
                    let value = coerce(v, default, &in_file())?;
                    in_range(&defaults, s, &value, &in_file())?;
                    (value, Source::File)
                }
                (None, None) => (default.clone(), Source::Default),
            };
            if let Some(toml::Value::Table(section)) = merged.get_mut(s.section) {
                section.insert(s.key.to_string(), value);
            }
            sources.insert(s.env, source);
        }
        let mut unknown = Vec::new();
        for (section, keys) in &file {
            let known = |key: &str| {
                SETTINGS
                    .iter()
                    .any(|s| s.section == section.as_str() && s.key == key)
            };
            match keys {
                toml::Value::Table(keys) => unknown.extend(
                    keys.keys()
                        .filter(|k| !known(k))
                        .map(|k| format!("{section}.{k}")),
                ),
                _ => unknown.push(section.clone()),
            }
        }
        let mut settings: Settings =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::Config(format!("the settings: {}", e.message()))
                })?;
        let home_text = home.0.display().to_string();
        for path in [
            &mut settings.database.path,
            &mut settings.embeddings.models_dir,
        ] {
            *path = path.replace("$P8_HOME", &home_text);
        }
        let config = Config {
            home,
            settings,
            sources,
            unknown,
            openai_api_key: env.get("OPENAI_API_KEY").filter(|k| !k.is_empty()).cloned(),
            password: env
                .get("P8_PASSWORD")
                .filter(|p| !p.is_empty())
                .map(|p| rem::Password::new(p.as_str())),
        };
        config.check()?;
        Ok(config)
    }

    /// Checks the values whose type alone does not make them valid.
    fn check(&self) -> Result<()> {
        self.store_options()?;
        self.embedding_options()?;
        self.parquet_row_group_size()?;
        self.batch_size()?;
        let logging = &self.settings.logging;
        let level = logging.level.trim().to_ascii_lowercase();
        let is_level = ["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str());
        let is_filter = level.contains('=') || level.contains(',');
        if !(is_level || is_filter) || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(Error::Config(format!(
                "P8_LOG_LEVEL must be error, warn, info, debug, trace or a filter such as 'rem=debug', not '{}'",
                logging.level
            )));
        }
        if !["text", "json"].contains(&logging.format.to_ascii_lowercase().as_str()) {
            return Err(Error::Config(format!(
                "P8_LOG_FORMAT must be text or json, not '{}'",
                logging.format
            )));
        }
        Ok(())
    }

    /// Overrides a value from a command-line flag.
    pub fn set_flag(&mut self, env: &str, value: &str) {
        let Some(s) = SETTINGS.iter().find(|s| s.env == env) else {
            return;
        };
        let Ok(mut table) = toml::Table::try_from(&self.settings) else {
            return;
        };
        let Some(toml::Value::Table(section)) = table.get_mut(s.section) else {
            return;
        };
        let Some(default) = section.get(s.key).cloned() else {
            return;
        };
        let Ok(value) = coerce(&toml::Value::String(value.to_string()), &default, env) else {
            return;
        };
        section.insert(s.key.to_string(), value);
        if let Ok(settings) = table.try_into() {
            self.settings = settings;
            self.sources.insert(s.env, Source::Flag);
        }
    }

    /// The typed settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `P8_HOME` (default `~/.p8`).
    pub fn home(&self) -> &Path {
        &self.home.0
    }

    /// A value by environment name, as text (`None` for unknown names).
    pub fn get(&self, env: &str) -> Option<String> {
        let s = SETTINGS.iter().find(|s| s.env == env)?;
        let table = toml::Table::try_from(&self.settings).ok()?;
        table.get(s.section)?.get(s.key).map(display)
    }

    /// The database path (`--path`, `P8_DB_PATH`, `$P8_HOME/db`).
    pub fn db_path(&self) -> PathBuf {
        expand_home(&self.settings.database.path)
    }

    /// The tenant (`--tenant`, `P8_DEFAULT_TENANT`, `default`).
    pub fn tenant(&self) -> &str {
        &self.settings.core.default_tenant
    }

    /// `config.toml` keys that no setting reads (misspelt or from a later version).
    pub fn unknown_keys(&self) -> &[String] {
        &self.unknown
    }

    /// Every value with its source, `P8_HOME` first.
    pub fn entries(&self) -> Vec<ConfigValue> {
        let table = toml::Table::try_from(&self.settings).unwrap_or_default();
        let mut out = vec![ConfigValue {
            env: "P8_HOME",
            file_key: "-".into(),
            value: self.home.0.display().to_string(),
            source: self.home.1,
            help: "home of the database, models and config.toml",
        }];
        let mut rest: Vec<ConfigValue> = SETTINGS
            .iter()
            .map(|s| {
                let mut value = table
                    .get(s.section)
                    .and_then(|t| t.get(s.key))
                    .map(display)
                    .unwrap_or_default();
                if (s.env.ends_with("_API_KEY") || s.env.ends_with("_TOKEN")) && !value.is_empty() {
                    value = "(set)".into();
                }
                ConfigValue {
                    env: s.env,
                    file_key: format!("{}.{}", s.section, s.key),
                    value,
                    source: self.sources.get(s.env).copied().unwrap_or(Source::Default),
                    help: s.help,
                }
            })
            .collect();
        rest.sort_by_key(|v| v.env);
        out.extend(rest);
        out
    }

    /// Rows per Parquet row group (`P8_PARQUET_ROW_GROUP_SIZE`, at least 1).
    pub fn parquet_row_group_size(&self) -> Result<usize> {
        at_least_one(
            self.settings.export.parquet_row_group_size,
            "P8_PARQUET_ROW_GROUP_SIZE",
        )
    }

    /// Records per atomic batch for streamed inserts.
    pub fn batch_size(&self) -> Result<usize> {
        at_least_one(self.settings.database.batch_size, "P8_BATCH_SIZE")
    }

    /// Embedding and vector-index settings.
    pub fn embedding_options(&self) -> Result<EmbeddingOptions> {
        let e = &self.settings.embeddings;
        let v = &self.settings.vector_search;
        let batch_size = at_least_one(e.batch_size, "P8_EMBEDDING_BATCH_SIZE")?;
        let index_type = match v.index_type.to_ascii_lowercase().as_str() {
            "hnsw" => VectorIndexType::Hnsw,
            "flat" => VectorIndexType::Flat,
            other => {
                return Err(Error::Config(format!(
                    "P8_VECTOR_INDEX_TYPE must be hnsw or flat, not '{other}'"
                )))
            }
        };
        let quantization = VectorQuantization::parse(&v.quantization).ok_or_else(|| {
            Error::Config(format!(
                "P8_VECTOR_QUANTIZATION must be bf16, f16 or f32, not '{}'",
                v.quantization
            ))
        })?;
        let local_engine = match e.local_engine.as_str() {
            "auto" => LocalEngine::Auto,
            "candle" => LocalEngine::Candle,
            other => {
                return Err(Error::Config(format!(
                    "P8_LOCAL_ENGINE must be auto or candle, not '{other}'"
                )))
            }
        };
        let api_key = match e.openai_api_key.as_str() {
            "" => self.openai_api_key.clone(),
            key => Some(key.to_string()),
        };
        let alt = e.alt_model.trim();
        Ok(EmbeddingOptions {
            default_model: e.default_model.clone(),
            alt_model: (!alt.is_empty()).then(|| alt.to_string()),
            batch_size,
            models_dir: expand_home(&e.models_dir),
            local_engine,
            openai_base_url: e.openai_base_url.clone(),
            openai_api_key: api_key,
            index_type,
            quantization,
            hnsw_m: v.hnsw_m,
            hnsw_ef_construction: v.hnsw_ef_construction,
            hnsw_ef_search: v.hnsw_ef_search,
        })
    }

    /// RocksDB options from the `P8_ROCKSDB_*` values.
    pub fn store_options(&self) -> Result<StoreOptions> {
        let d = &self.settings.database;
        let compression = Compression::parse(&d.rocksdb_compression).ok_or_else(|| {
            Error::Config(format!(
                "P8_ROCKSDB_COMPRESSION must be none, lz4, zstd or snappy, not '{}'",
                d.rocksdb_compression
            ))
        })?;
        Ok(StoreOptions {
            write_buffer_size: d.rocksdb_write_buffer_size.max(1) << 20,
            max_background_jobs: d.rocksdb_max_background_jobs,
            max_open_files: d.rocksdb_max_open_files,
            compression,
            block_cache_size: d.rocksdb_block_cache_size.max(1) << 20,
            sync_writes: d.rocksdb_sync,
            password: self.password.clone(),
            kdf: self.kdf_params(),
        })
    }

    /// The Argon2id parameters for a new password (`P8_ARGON2_*`). They are checked
    /// against OWASP's minimum where a password is set (a new encrypted database,
    /// `rem passwd`, `rem key-gen`), so weak values never break other commands.
    pub fn kdf_params(&self) -> rem::KdfParams {
        let d = &self.settings.database;
        rem::KdfParams {
            m_kib: d.argon2_memory_kib,
            t: d.argon2_iterations,
            p: d.argon2_parallelism,
        }
    }

    /// The database password, if one was given (`--password` or `P8_PASSWORD`).
    pub fn password(&self) -> Option<&rem::Password> {
        self.password.as_ref()
    }

    /// Sets the database password (a flag or a prompt).
    pub fn set_password(&mut self, password: rem::Password) {
        self.password = Some(password);
    }
}

/// `n`, or an error saying `name` must be at least 1.
fn at_least_one(n: usize, name: &str) -> Result<usize> {
    if n == 0 {
        return Err(Error::Config(format!("{name} must be at least 1")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_overrides_default() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            "[database]\nrocksdb_max_open_files = 500\nrocksdb_compression = \"zstd\"\n[core]\ndefault_tenant = \"acme\"\n",
        )
        .unwrap();
        let mut env = BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.path().display().to_string());
        env.insert("P8_ROCKSDB_COMPRESSION".to_string(), "snappy".to_string());
        let c = Config::load_from(&env).unwrap();
        let by = |k: &str| c.entries().into_iter().find(|e| e.env == k).unwrap();
        assert_eq!(
            (
                by("P8_ROCKSDB_MAX_OPEN_FILES").value,
                by("P8_ROCKSDB_MAX_OPEN_FILES").source
            ),
            ("500".into(), Source::File)
        );
        assert_eq!(
            (
                by("P8_ROCKSDB_COMPRESSION").value,
                by("P8_ROCKSDB_COMPRESSION").source
            ),
            ("snappy".into(), Source::Env)
        );
        assert_eq!(by("P8_ROCKSDB_WRITE_BUFFER_SIZE").source, Source::Default);
        assert_eq!(c.tenant(), "acme");
        assert_eq!(c.db_path(), home.path().join("db"));
    }

    #[test]
    fn bad_values_are_errors() {
        let home = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.path().display().to_string());
        env.insert("P8_ROCKSDB_COMPRESSION".to_string(), "rar".to_string());
        assert!(Config::load_from(&env)
            .unwrap_err()
            .to_string()
            .contains("P8_ROCKSDB_COMPRESSION"));
        std::fs::write(home.path().join("config.toml"), "[database\n").unwrap();
        env.remove("P8_ROCKSDB_COMPRESSION");
        assert!(Config::load_from(&env)
            .unwrap_err()
            .to_string()
            .contains("not valid TOML"));
    }

    #[test]
    fn local_engine_setting() {
        let home = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.path().display().to_string());
        let engine = |env: &BTreeMap<String, String>| {
            Config::load_from(env).and_then(|c| c.embedding_options())
        };
        assert_eq!(engine(&env).unwrap().local_engine, LocalEngine::Auto);
        env.insert("P8_LOCAL_ENGINE".to_string(), "candle".to_string());
        assert_eq!(engine(&env).unwrap().local_engine, LocalEngine::Candle);
        env.insert("P8_LOCAL_ENGINE".to_string(), "gpu".to_string());
        let err = engine(&env).unwrap_err().to_string();
        assert!(
            err.contains("P8_LOCAL_ENGINE must be auto or candle"),
            "{err}"
        );
    }

    #[test]
    fn values_are_typed_and_errors_name_the_setting() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            "[database]\nbatch_size = \"250\"\nrocksdb_sync = true\n[replication]\nport = 6000\n[logging]\nlevel = \"debug\"\nformat = \"json\"\n[llm]\nmodel = \"x\"\n",
        )
        .unwrap();
        let mut env = BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.path().display().to_string());
        env.insert("P8_HNSW_EF_SEARCH".to_string(), " 80 ".to_string());
        let c = Config::load_from(&env).unwrap();
        let s = c.settings();
        assert_eq!(s.database.batch_size, 250);
        assert!(s.database.rocksdb_sync);
        assert_eq!(s.replication.port, 6000);
        assert_eq!(s.vector_search.hnsw_ef_search, 80);
        assert_eq!(
            (s.logging.level.as_str(), s.logging.format.as_str()),
            ("debug", "json")
        );
        assert_eq!(c.unknown_keys(), ["llm.model".to_string()]);
        assert_eq!(c.get("P8_BATCH_SIZE").as_deref(), Some("250"));

        let error = |k: &str, v: &str| {
            let mut env = env.clone();
            env.insert(k.to_string(), v.to_string());
            Config::load_from(&env).unwrap_err().to_string()
        };
        assert!(error("P8_REPLICATION_PORT", "70000")
            .contains("P8_REPLICATION_PORT must be a port number"));
        assert!(error("P8_BATCH_SIZE", "0").contains("P8_BATCH_SIZE must be at least 1"));
        assert!(error("P8_HNSW_M", "-3").contains("P8_HNSW_M must be a number of 0 or more"));
        assert!(error("P8_ROCKSDB_SYNC", "maybe").contains("P8_ROCKSDB_SYNC must be true or false"));
        assert!(error("P8_LOG_FORMAT", "xml").contains("P8_LOG_FORMAT must be text or json"));
        assert!(error("P8_LOG_LEVEL", "verbose").contains("P8_LOG_LEVEL must be"));
        assert!(Config::load_from(&{
            let mut env = env.clone();
            env.insert("P8_LOG_LEVEL".into(), "rem=debug,warn".into());
            env
        })
        .is_ok());

        std::fs::write(
            home.path().join("config.toml"),
            "[replication]\nport = -5\n",
        )
        .unwrap();
        let err = Config::load_from(&env).unwrap_err().to_string();
        assert!(
            err.contains("replication.port in") && err.contains("config.toml"),
            "{err}"
        );
    }

    #[test]
    fn every_setting_has_a_typed_default() {
        let home = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("P8_HOME".to_string(), home.path().display().to_string());
        let c = Config::load_from(&env).unwrap();
        let entries = c.entries();
        for s in SETTINGS {
            let e = entries.iter().find(|e| e.env == s.env).unwrap();
            assert_eq!(e.source, Source::Default, "{}", s.env);
            assert!(c.get(s.env).is_some(), "{}", s.env);
        }
        assert_eq!(
            c.settings().database.path,
            home.path().join("db").display().to_string()
        );
        assert_eq!(
            c.settings().embeddings.models_dir,
            home.path().join("models").display().to_string()
        );
        // The flags of the command line are typed too.
        let mut c = c;
        c.set_flag("P8_DEFAULT_TENANT", "acme");
        assert_eq!(c.tenant(), "acme");
        assert_eq!(
            c.entries()
                .iter()
                .find(|e| e.env == "P8_DEFAULT_TENANT")
                .unwrap()
                .source,
            Source::Flag
        );
    }
}
