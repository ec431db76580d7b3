//! `embeddings`: the key and value of a stored vector, and the column metadata kept
//! in `meta` (docs/format.md, "embeddings"). The vector index files under
//! `<db>/vectors/` are derived data with their own format (`vector.rs`).

use rem_storage::KeyBuf;
use serde_json::Value;

use crate::{EntityId, Error, Result};

/// The embedding columns.
pub const EMBEDDING: &str = "embedding";
/// The alternative embedding column (filled when `P8_ALT_EMBEDDING` is set).
pub const EMBEDDING_ALT: &str = "embedding_alt";

/// `embeddings` key: `str(tenant) | str(table) | str(column) | id`.
pub(crate) fn embedding_key(tenant: &str, table: &str, column: &str, id: &EntityId) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(table)
        .str(column)
        .raw(id.as_bytes())
        .into_bytes()
}

/// Prefix of a column's embeddings.
pub(crate) fn embedding_prefix(tenant: &str, table: &str, column: &str) -> Vec<u8> {
    KeyBuf::new()
        .str(tenant)
        .str(table)
        .str(column)
        .into_bytes()
}

/// A stored embedding: the text hash and the vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEmbedding {
    pub(crate) text_hash: [u8; 16],
    pub(crate) vector: Vec<f32>,
}

impl StoredEmbedding {
    /// `hash[16] | dims u32 BE | f32 LE × dims`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + 4 * self.vector.len());
        out.extend_from_slice(&self.text_hash);
        out.extend_from_slice(&(self.vector.len() as u32).to_be_bytes());
        for x in &self.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StoredEmbedding> {
        let corrupt =
            || Error::Storage(rem_storage::StorageError::Corrupt("embedding value".into()));
        if bytes.len() < 20 {
            return Err(corrupt());
        }
        let mut text_hash = [0u8; 16];
        text_hash.copy_from_slice(&bytes[..16]);
        let dims = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
        let body = &bytes[20..];
        if body.len() != dims * 4 {
            return Err(corrupt());
        }
        let vector = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(StoredEmbedding { text_hash, vector })
    }
}

/// `meta` key recording which provider made a column's vectors, and their size:
/// `str("vector_meta") | str(tenant) | str(table) | str(column)`.
pub(crate) fn column_meta_key(tenant: &str, table: &str, column: &str) -> Vec<u8> {
    KeyBuf::new()
        .str("vector_meta")
        .str(tenant)
        .str(table)
        .str(column)
        .into_bytes()
}

/// Column metadata value: JSON `{"model": …, "dims": …}`.
pub(crate) fn column_meta_value(model: &str, dims: usize) -> Vec<u8> {
    serde_json::json!({"model": model, "dims": dims})
        .to_string()
        .into_bytes()
}

/// A column's metadata as read back; a member that is missing or of another JSON
/// type is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ColumnMeta {
    pub(crate) model: Option<String>,
    pub(crate) dims: Option<u64>,
}

/// Reads a column metadata value; `None` when it is not JSON.
pub(crate) fn parse_column_meta(value: &[u8]) -> Option<ColumnMeta> {
    let meta: Value = serde_json::from_slice(value).ok()?;
    Some(ColumnMeta {
        model: meta["model"].as_str().map(str::to_string),
        dims: meta["dims"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_key_and_values() {
        // These bytes are part of the on-disk format (docs/format.md, "embeddings").
        let id = EntityId::parse("2b8afd88-062a-960f-575f-889fe1f87678").unwrap();
        let prefix = b"t\x00\x01x\x00\x01embedding\x00\x01";
        assert_eq!(embedding_prefix("t", "x", EMBEDDING), prefix);
        assert_eq!(
            embedding_key("t", "x", EMBEDDING, &id),
            [prefix.as_slice(), id.as_bytes()].concat()
        );
        let stored = StoredEmbedding {
            text_hash: [7; 16],
            vector: vec![1.0, -2.0],
        };
        let mut want = vec![7; 16];
        want.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0]);
        assert_eq!(stored.encode(), want);
        assert_eq!(StoredEmbedding::decode(&want).unwrap(), stored);
        assert!(StoredEmbedding::decode(&want[..22]).is_err());
        assert_eq!(
            column_meta_key("t", "x", EMBEDDING_ALT),
            b"vector_meta\x00\x01t\x00\x01x\x00\x01embedding_alt\x00\x01"
        );
        let meta = column_meta_value("local:all-MiniLM-L6-v2", 384);
        assert_eq!(meta, br#"{"model":"local:all-MiniLM-L6-v2","dims":384}"#);
        assert_eq!(
            parse_column_meta(&meta),
            Some(ColumnMeta {
                model: Some("local:all-MiniLM-L6-v2".into()),
                dims: Some(384)
            })
        );
        assert_eq!(parse_column_meta(b"[]"), Some(ColumnMeta::default()));
        assert_eq!(parse_column_meta(b"not json"), None);
    }
}
