//! The REM database engine: an embedded store for AI agents' memory.
//!
//! A [`Database`] holds tables defined by JSON Schemas ([`Schema`]); records are
//! validated, given deterministic ids ([`EntityId`]), and stored as [`Entity`] values
//! with secondary indexes, a global key index ([`Database::lookup`]) and a change log.
//! Every write is one atomic batch. The API is synchronous and batch-first.
//!
//! See `ARCHITECTURE.md` for the map and `docs/format.md` for the on-disk layout.

mod change;
mod db;
mod edges;
mod embedding;
mod entity;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod graph;
mod id;
mod index;
mod kill_point;
#[doc(hidden)]
pub use kill_point::arm_kill_point;
mod nodes;
mod options;
mod query;
mod replica;
mod schema;
mod schema_cache;
mod search;
mod snapshot;
mod vector;
mod vector_indexes;
mod verify;
mod write;

pub use change::{decode_change, Change};
pub use db::{Database, OpenOptions, ScanResult, Stats};
pub use edges::{Edge, EdgeOptions, REFERENCES};
pub use embedding::{EMBEDDING, EMBEDDING_ALT, EXTERNAL};
pub use entity::{format_ts, parse_ts, Entity, SYSTEM_FIELDS};
pub use error::{Error, ErrorKind, Result};
pub use graph::{Direction, Node, TraverseOptions, MAX_DEPTH};
pub use id::EntityId;
pub use options::{expand_home, EmbeddingOptions, VectorIndexType, VectorQuantization};
pub use query::{AccessPath, Filter, ScanOptions};
pub use rem_embed::LocalEngine;
pub use rem_storage::{
    open_with_password, seal_with_password, write_private_file, Compression, KdfParams, Password,
    PlainCodec, StoreOptions, ValueCodec,
};
pub use replica::{History, LogStatus, ReplicatedChange, ReplicatedVector, ReplicationRole};
pub use schema::{
    builtin_schemas, canonical_table_name, load_pydantic_schema, template, FieldType, Schema,
    TEMPLATES,
};
pub use search::{SearchHit, SearchOptions, SearchResult};
pub use snapshot::{
    discard_staged_snapshot, install_snapshot, prepare_snapshot, recover_snapshot_install,
    snapshot_staging_path,
};
pub use vector::VectorIndex;
pub use verify::VerifyReport;
