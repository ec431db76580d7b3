//! Column families: one per concern, created together when a database is made.

/// A column family of the store. The set is fixed for format version 1; families that a
/// later feature fills (edges, embeddings, trigrams) exist from the start so that opening
/// an older database never needs to create them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ColumnFamily {
    /// `tenant, table, id` → encoded entity.
    Entities,
    /// `tenant, id` → table name: resolves a bare id to its table.
    Ids,
    /// `tenant, key value, table, id` → empty: the global (cross-table) key index.
    KeyIndex,
    /// `tenant, table, field, typed value, id` → empty: secondary field indexes.
    FieldIndex,
    /// `tenant, src, type, dst` → edge properties.
    Edges,
    /// `tenant, dst, type, src` → empty: reverse edges.
    EdgesRev,
    /// `tenant, table, column, id` → vector.
    Embeddings,
    /// `tenant, table, trigram, id` → empty.
    Trigrams,
    /// `seq (u64 big-endian)` → change record.
    ChangeLog,
    /// Database-wide metadata: format version, last sequence number.
    Meta,
}

impl ColumnFamily {
    /// Every column family, in creation order.
    pub const ALL: [ColumnFamily; 10] = [
        ColumnFamily::Entities,
        ColumnFamily::Ids,
        ColumnFamily::KeyIndex,
        ColumnFamily::FieldIndex,
        ColumnFamily::Edges,
        ColumnFamily::EdgesRev,
        ColumnFamily::Embeddings,
        ColumnFamily::Trigrams,
        ColumnFamily::ChangeLog,
        ColumnFamily::Meta,
    ];

    /// The RocksDB name of the family (part of the on-disk format).
    pub fn name(self) -> &'static str {
        match self {
            ColumnFamily::Entities => "entities",
            ColumnFamily::Ids => "ids",
            ColumnFamily::KeyIndex => "key_index",
            ColumnFamily::FieldIndex => "field_index",
            ColumnFamily::Edges => "edges",
            ColumnFamily::EdgesRev => "edges_rev",
            ColumnFamily::Embeddings => "embeddings",
            ColumnFamily::Trigrams => "trigrams",
            ColumnFamily::ChangeLog => "change_log",
            ColumnFamily::Meta => "meta",
        }
    }
}
