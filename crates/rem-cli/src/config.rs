//! Configuration: `P8_*` environment variables over `$P8_HOME/config.toml` over
//! defaults, each value remembering where it came from (`rem config show`). Loaded here,
//! in the top layer; the engine receives [`rem::OpenOptions`] built from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// One setting: its environment name, its place in `config.toml` and its default.
struct Setting {
    env: &'static str,
    section: &'static str,
    key: &'static str,
    default: &'static str,
    help: &'static str,
}

/// The settings in effect so far. Later features add theirs here.
const SETTINGS: &[Setting] = &[
    Setting {
        env: "P8_DB_PATH",
        section: "database",
        key: "path",
        default: "$P8_HOME/db",
        help: "database directory",
    },
    Setting {
        env: "P8_DEFAULT_TENANT",
        section: "core",
        key: "default_tenant",
        default: "default",
        help: "tenant of every operation",
    },
    Setting {
        env: "P8_ROCKSDB_WRITE_BUFFER_SIZE",
        section: "database",
        key: "rocksdb_write_buffer_size",
        default: "64",
        help: "memtable size per column family, MB",
    },
    Setting {
        env: "P8_ROCKSDB_MAX_BACKGROUND_JOBS",
        section: "database",
        key: "rocksdb_max_background_jobs",
        default: "2",
        help: "flush and compaction threads",
    },
    Setting {
        env: "P8_ROCKSDB_MAX_OPEN_FILES",
        section: "database",
        key: "rocksdb_max_open_files",
        default: "1000",
        help: "open file limit (-1: unlimited)",
    },
    Setting {
        env: "P8_ROCKSDB_COMPRESSION",
        section: "database",
        key: "rocksdb_compression",
        default: "lz4",
        help: "none, lz4, zstd or snappy",
    },
    Setting {
        env: "P8_ROCKSDB_BLOCK_CACHE_SIZE",
        section: "database",
        key: "rocksdb_block_cache_size",
        default: "128",
        help: "block cache, MB",
    },
    Setting {
        env: "P8_ROCKSDB_SYNC",
        section: "database",
        key: "rocksdb_sync",
        default: "false",
        help: "fsync the log on every commit (power-loss safety)",
    },
    Setting {
        env: "P8_BATCH_SIZE",
        section: "database",
        key: "batch_size",
        default: "1000",
        help: "records per atomic batch for `rem insert --batch`",
    },
    Setting {
        env: "P8_REPLICATION_MODE",
        section: "replication",
        key: "mode",
        default: "standalone",
        help: "standalone, primary or replica (`rem serve` follows P8_PRIMARY_HOST when replica)",
    },
    Setting {
        env: "P8_REPLICATION_HOST",
        section: "replication",
        key: "host",
        default: "127.0.0.1",
        help: "address `rem serve` listens on",
    },
    Setting {
        env: "P8_REPLICATION_PORT",
        section: "replication",
        key: "port",
        default: "50051",
        help: "port of `rem serve`",
    },
    Setting {
        env: "P8_PRIMARY_HOST",
        section: "replication",
        key: "primary_host",
        default: "",
        help: "host:port of the primary a replica follows",
    },
    Setting {
        env: "P8_REPLICATION_TOKEN",
        section: "replication",
        key: "token",
        default: "",
        help: "token of a server (every RPC needs one; empty: a random one in <db>/TOKEN) and of the primary a replica follows",
    },
    Setting {
        env: "P8_SERVER",
        section: "server",
        key: "address",
        default: "",
        help: "host:port of a server to send commands to (like --server)",
    },
    Setting {
        env: "P8_SERVER_TOKEN",
        section: "server",
        key: "token",
        default: "",
        help: "token of the server (default: P8_REPLICATION_TOKEN, else the served database's TOKEN file)",
    },
    Setting {
        env: "P8_PYTHON",
        section: "core",
        key: "python",
        default: "python3",
        help: "interpreter that turns models.py::Class into a JSON Schema (runs on the client)",
    },
    Setting {
        env: "P8_REPLICATION_TLS_CERT",
        section: "replication",
        key: "tls_cert",
        default: "",
        help: "PEM certificate chain: `rem serve` / `rem replicate --follow` serve TLS only (with _KEY)",
    },
    Setting {
        env: "P8_REPLICATION_TLS_KEY",
        section: "replication",
        key: "tls_key",
        default: "",
        help: "PEM private key of P8_REPLICATION_TLS_CERT",
    },
    Setting {
        env: "P8_REPLICATION_TLS_CA",
        section: "replication",
        key: "tls_ca",
        default: "",
        help: "PEM CA certificate: clients (replicas, commands) connect with TLS and trust it",
    },
    Setting {
        env: "P8_REPLICATION_TLS_DOMAIN",
        section: "replication",
        key: "tls_domain",
        default: "",
        help: "name the server's TLS certificate must carry (default: the host connected to)",
    },
    Setting {
        env: "P8_WAL_RETENTION_SIZE",
        section: "replication",
        key: "wal_retention_size",
        default: "1000000",
        help: "change-log records a primary keeps for replicas (0: all)",
    },
    Setting {
        env: "P8_WAL_BATCH_SIZE",
        section: "replication",
        key: "wal_batch_size",
        default: "1000",
        help: "change records per streamed batch",
    },
    Setting {
        env: "P8_DEFAULT_EMBEDDING",
        section: "embeddings",
        key: "default_model",
        default: "all-MiniLM-L6-v2",
        help: "provider of `default` embedded fields: a local model name, local:<m>, openai:<m> or text-embedding-*",
    },
    Setting {
        env: "P8_ALT_EMBEDDING",
        section: "embeddings",
        key: "alt_model",
        default: "",
        help: "second provider filling embedding_alt (empty: none)",
    },
    Setting {
        env: "P8_EMBEDDING_BATCH_SIZE",
        section: "embeddings",
        key: "batch_size",
        default: "32",
        help: "texts per provider call",
    },
    Setting {
        env: "P8_MODELS_DIR",
        section: "embeddings",
        key: "models_dir",
        default: "$P8_HOME/models",
        help: "where local models are looked for first",
    },
    Setting {
        env: "P8_LOCAL_ENGINE",
        section: "embeddings",
        key: "local_engine",
        default: "auto",
        help: "local model engine: auto (bf16 on AVX-512 BF16 CPUs) or candle (f32)",
    },
    Setting {
        env: "P8_OPENAI_BASE_URL",
        section: "embeddings",
        key: "openai_base_url",
        default: "https://api.openai.com/v1",
        help: "OpenAI-compatible endpoint",
    },
    Setting {
        env: "P8_OPENAI_API_KEY",
        section: "embeddings",
        key: "openai_api_key",
        default: "",
        help: "API key (else OPENAI_API_KEY)",
    },
    Setting {
        env: "P8_VECTOR_INDEX_TYPE",
        section: "vector_search",
        key: "index_type",
        default: "hnsw",
        help: "hnsw (approximate) or flat (exact)",
    },
    Setting {
        env: "P8_VECTOR_QUANTIZATION",
        section: "vector_search",
        key: "quantization",
        default: "bf16",
        help: "how the index stores vectors: bf16, f16 or f32",
    },
    Setting {
        env: "P8_HNSW_M",
        section: "vector_search",
        key: "hnsw_m",
        default: "16",
        help: "HNSW connections per node",
    },
    Setting {
        env: "P8_HNSW_EF_CONSTRUCTION",
        section: "vector_search",
        key: "hnsw_ef_construction",
        default: "200",
        help: "HNSW build beam width",
    },
    Setting {
        env: "P8_HNSW_EF_SEARCH",
        section: "vector_search",
        key: "hnsw_ef_search",
        default: "50",
        help: "HNSW search beam width",
    },
    Setting {
        env: "P8_PARQUET_ROW_GROUP_SIZE",
        section: "export",
        key: "parquet_row_group_size",
        default: "65536",
        help: "rows per Parquet row group (export streams one group at a time)",
    },
    Setting {
        env: "P8_PARQUET_COMPRESSION",
        section: "export",
        key: "parquet_compression",
        default: "zstd",
        help: "snappy, gzip, brotli, lz4, zstd or none",
    },
    Setting {
        env: "P8_LOG_LEVEL",
        section: "logging",
        key: "level",
        default: "warn",
        help: "error, warn, info, debug or trace",
    },
    Setting {
        env: "P8_LOG_FORMAT",
        section: "logging",
        key: "format",
        default: "text",
        help: "text or json",
    },
];

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
    values: BTreeMap<&'static str, ConfigValue>,
    /// `OPENAI_API_KEY`, used when `P8_OPENAI_API_KEY` is empty.
    openai_api_key: Option<String>,
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
        let mut values = BTreeMap::new();
        for s in SETTINGS {
            let from_file = file
                .get(s.section)
                .and_then(|t| t.get(s.key))
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            let (value, source) = match (env.get(s.env), from_file) {
                (Some(v), _) => (v.clone(), Source::Env),
                (None, Some(v)) => (v, Source::File),
                (None, None) => (
                    s.default.replace("$P8_HOME", &home.0.display().to_string()),
                    Source::Default,
                ),
            };
            values.insert(
                s.env,
                ConfigValue {
                    env: s.env,
                    file_key: format!("{}.{}", s.section, s.key),
                    value,
                    source,
                    help: s.help,
                },
            );
        }
        let config = Config {
            home,
            values,
            openai_api_key: env.get("OPENAI_API_KEY").filter(|k| !k.is_empty()).cloned(),
        };
        config.store_options()?;
        config.embedding_options()?;
        Ok(config)
    }

    /// Overrides a value from a command-line flag.
    pub fn set_flag(&mut self, env: &str, value: &str) {
        if let Some(v) = self.values.get_mut(env) {
            v.value = value.to_string();
            v.source = Source::Flag;
        }
    }

    /// `P8_HOME` (default `~/.p8`).
    pub fn home(&self) -> &Path {
        &self.home.0
    }

    /// A value by environment name (`None` for unknown names).
    pub fn get(&self, env: &str) -> Option<&str> {
        self.values.get(env).map(|v| v.value.as_str())
    }

    /// The database path (`--path`, `P8_DB_PATH`, `$P8_HOME/db`).
    pub fn db_path(&self) -> PathBuf {
        expand_home(self.get("P8_DB_PATH").unwrap_or("~/.p8/db"))
    }

    /// The tenant (`--tenant`, `P8_DEFAULT_TENANT`, `default`).
    pub fn tenant(&self) -> &str {
        self.get("P8_DEFAULT_TENANT").unwrap_or("default")
    }

    /// Every value with its source, `P8_HOME` first.
    pub fn entries(&self) -> Vec<ConfigValue> {
        let mut out = vec![ConfigValue {
            env: "P8_HOME",
            file_key: "-".into(),
            value: self.home.0.display().to_string(),
            source: self.home.1,
            help: "home of the database, models and config.toml",
        }];
        out.extend(self.values.values().cloned().map(|mut v| {
            if (v.env.ends_with("_API_KEY") || v.env.ends_with("_TOKEN")) && !v.value.is_empty() {
                v.value = "(set)".into();
            }
            v
        }));
        out
    }

    /// Rows per Parquet row group (`P8_PARQUET_ROW_GROUP_SIZE`, at least 1).
    pub fn parquet_row_group_size(&self) -> Result<usize> {
        let n: usize = self.number("P8_PARQUET_ROW_GROUP_SIZE")?;
        if n == 0 {
            return Err(Error::Config(
                "P8_PARQUET_ROW_GROUP_SIZE must be at least 1".into(),
            ));
        }
        Ok(n)
    }

    fn number<T: std::str::FromStr>(&self, env: &str) -> Result<T> {
        let raw = self.get(env).unwrap_or_default();
        raw.trim()
            .parse()
            .map_err(|_| Error::Config(format!("{env} must be a number, not '{raw}'")))
    }

    fn boolean(&self, env: &str) -> Result<bool> {
        match self
            .get(env)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            other => Err(Error::Config(format!(
                "{env} must be true or false, not '{other}'"
            ))),
        }
    }

    /// Records per atomic batch for streamed inserts.
    pub fn batch_size(&self) -> Result<usize> {
        let n: usize = self.number("P8_BATCH_SIZE")?;
        if n == 0 {
            return Err(Error::Config("P8_BATCH_SIZE must be at least 1".into()));
        }
        Ok(n)
    }

    /// Embedding and vector-index settings.
    pub fn embedding_options(&self) -> Result<EmbeddingOptions> {
        let batch_size: usize = self.number("P8_EMBEDDING_BATCH_SIZE")?;
        if batch_size == 0 {
            return Err(Error::Config(
                "P8_EMBEDDING_BATCH_SIZE must be at least 1".into(),
            ));
        }
        let index_type = match self
            .get("P8_VECTOR_INDEX_TYPE")
            .unwrap_or("hnsw")
            .to_ascii_lowercase()
            .as_str()
        {
            "hnsw" => VectorIndexType::Hnsw,
            "flat" => VectorIndexType::Flat,
            other => {
                return Err(Error::Config(format!(
                    "P8_VECTOR_INDEX_TYPE must be hnsw or flat, not '{other}'"
                )))
            }
        };
        let raw = self.get("P8_VECTOR_QUANTIZATION").unwrap_or("bf16");
        let quantization = VectorQuantization::parse(raw).ok_or_else(|| {
            Error::Config(format!(
                "P8_VECTOR_QUANTIZATION must be bf16, f16 or f32, not '{raw}'"
            ))
        })?;
        let local_engine = match self.get("P8_LOCAL_ENGINE").unwrap_or("auto") {
            "auto" => LocalEngine::Auto,
            "candle" => LocalEngine::Candle,
            other => {
                return Err(Error::Config(format!(
                    "P8_LOCAL_ENGINE must be auto or candle, not '{other}'"
                )))
            }
        };
        let api_key = match self.get("P8_OPENAI_API_KEY").unwrap_or_default() {
            "" => self.openai_api_key.clone(),
            key => Some(key.to_string()),
        };
        let alt = self
            .get("P8_ALT_EMBEDDING")
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(EmbeddingOptions {
            default_model: self
                .get("P8_DEFAULT_EMBEDDING")
                .unwrap_or("all-MiniLM-L6-v2")
                .to_string(),
            alt_model: (!alt.is_empty()).then_some(alt),
            batch_size,
            models_dir: expand_home(self.get("P8_MODELS_DIR").unwrap_or("~/.p8/models")),
            local_engine,
            openai_base_url: self
                .get("P8_OPENAI_BASE_URL")
                .unwrap_or("https://api.openai.com/v1")
                .to_string(),
            openai_api_key: api_key,
            index_type,
            quantization,
            hnsw_m: self.number("P8_HNSW_M")?,
            hnsw_ef_construction: self.number("P8_HNSW_EF_CONSTRUCTION")?,
            hnsw_ef_search: self.number("P8_HNSW_EF_SEARCH")?,
        })
    }

    /// RocksDB options from the `P8_ROCKSDB_*` values.
    pub fn store_options(&self) -> Result<StoreOptions> {
        let compression_raw = self.get("P8_ROCKSDB_COMPRESSION").unwrap_or("lz4");
        let compression = Compression::parse(compression_raw).ok_or_else(|| {
            Error::Config(format!(
                "P8_ROCKSDB_COMPRESSION must be none, lz4, zstd or snappy, not '{compression_raw}'"
            ))
        })?;
        Ok(StoreOptions {
            write_buffer_size: self.number::<usize>("P8_ROCKSDB_WRITE_BUFFER_SIZE")?.max(1) << 20,
            max_background_jobs: self.number("P8_ROCKSDB_MAX_BACKGROUND_JOBS")?,
            max_open_files: self.number("P8_ROCKSDB_MAX_OPEN_FILES")?,
            compression,
            block_cache_size: self.number::<usize>("P8_ROCKSDB_BLOCK_CACHE_SIZE")?.max(1) << 20,
            sync_writes: self.boolean("P8_ROCKSDB_SYNC")?,
        })
    }
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
}
