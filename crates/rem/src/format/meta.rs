//! `meta`: the database-wide keys and their values (docs/format.md, "meta").
//!
//! | key | value | written by |
//! |---|---|---|
//! | `format_version` | u32 BE | the store, when it creates a database ([`rem_storage::META_FORMAT_VERSION`]) |
//! | `last_seq` | u64 BE | the store, in every commit's batch ([`rem_storage::META_LAST_SEQ`]) |
//! | `replication_role` | [`ReplicationRole`] as text | [`META_ROLE`] |
//! | `vector_meta`, tenant, table, column | JSON | `vectors.rs` ([`super::vectors::column_meta_key`]) |
//! | `history` | JSON `{"id", "parent", "branch_seq"}` | [`META_HISTORY`] |

/// `meta` key of the replication role: `standalone`, `primary` or
/// `replica <host:port>`.
pub(crate) const META_ROLE: &[u8] = b"replication_role";

/// `meta` key of the database's history: a random id made when it is first opened for
/// writing, replaced by the primary's when a replica follows one, and renewed (with the
/// old id as parent and the branch point) when a replica is promoted.
pub(crate) const META_HISTORY: &[u8] = b"history";

/// What a database does in replication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReplicationRole {
    /// Neither primary nor replica (it may still be served).
    #[default]
    Standalone,
    /// A primary (a promoted replica is one).
    Primary,
    /// A replica of the primary at this address: local writes are refused.
    Replica {
        /// `host:port` of the primary.
        primary: String,
    },
}

impl ReplicationRole {
    /// `standalone`, `primary` or `replica`.
    pub fn mode(&self) -> &'static str {
        match self {
            ReplicationRole::Standalone => "standalone",
            ReplicationRole::Primary => "primary",
            ReplicationRole::Replica { .. } => "replica",
        }
    }

    /// The [`META_ROLE`] value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            ReplicationRole::Replica { primary } => format!("replica {primary}"),
            other => other.mode().to_string(),
        }
        .into_bytes()
    }

    /// Reads a [`META_ROLE`] value (anything unrecognised is standalone).
    pub(crate) fn decode(bytes: &[u8]) -> ReplicationRole {
        let text = String::from_utf8_lossy(bytes);
        match text.split_once(' ') {
            Some(("replica", primary)) => ReplicationRole::Replica {
                primary: primary.to_string(),
            },
            _ if text == "primary" => ReplicationRole::Primary,
            _ => ReplicationRole::Standalone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_keys_and_roles() {
        // These bytes are part of the on-disk format (docs/format.md, "meta").
        assert_eq!(rem_storage::META_FORMAT_VERSION, b"format_version");
        assert_eq!(rem_storage::META_LAST_SEQ, b"last_seq");
        assert_eq!(rem_storage::FORMAT_VERSION, 1);
        assert_eq!(META_ROLE, b"replication_role");
        let replica = ReplicationRole::Replica {
            primary: "10.0.0.1:7000".into(),
        };
        for (role, text) in [
            (ReplicationRole::Standalone, &b"standalone"[..]),
            (ReplicationRole::Primary, &b"primary"[..]),
            (replica, &b"replica 10.0.0.1:7000"[..]),
        ] {
            assert_eq!(role.encode(), text);
            assert_eq!(ReplicationRole::decode(text), role);
        }
        assert_eq!(ReplicationRole::decode(b"?"), ReplicationRole::Standalone);
    }
}
