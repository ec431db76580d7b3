//! The value codec: every value written to or read from the store passes through it.
//!
//! Encryption at rest plugs in here as a second implementation; the engine never
//! touches stored bytes directly.

use crate::{ColumnFamily, StorageError};

/// Turns plain values into stored bytes and back. Both directions see the column family
/// and the key, so an encrypting codec can bind each value to its place.
pub trait ValueCodec: Send + Sync + std::fmt::Debug {
    /// Encodes a plain value for storage under `key` in `cf`.
    fn encode(&self, cf: ColumnFamily, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, StorageError>;
    /// Decodes stored bytes read from `key` in `cf`. Fails on bytes this codec did not
    /// produce for that place.
    fn decode(&self, cf: ColumnFamily, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, StorageError>;
    /// Seals the bytes of a file the engine writes beside the database (a saved vector
    /// index), bound to `name`, its path inside the database directory. The plain codec
    /// returns them as they are.
    fn seal_file(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, StorageError> {
        let _ = name;
        Ok(plain.to_vec())
    }
    /// The bytes [`ValueCodec::seal_file`] sealed for `name`; fails when they were altered
    /// or sealed for another name.
    fn open_file(&self, name: &str, stored: &[u8]) -> Result<Vec<u8>, StorageError> {
        let _ = name;
        Ok(stored.to_vec())
    }
    /// The keyed hash (16 bytes) that stands for a user's value inside a key (a key
    /// value, an indexed value, an edge type or target), so that keys reveal equality
    /// but not the value; `parts` are length-prefixed into the hash, the first naming
    /// what the value is. `None` for the plain codec: keys hold values as they are.
    fn blind(&self, parts: &[&[u8]]) -> Option<[u8; 16]> {
        let _ = parts;
        None
    }
    /// True for a codec that encrypts.
    fn is_encrypted(&self) -> bool {
        false
    }
}

/// Tag byte of values written by [`PlainCodec`].
pub(crate) const PLAIN_TAG: u8 = 0x00;

/// The unencrypted codec: one tag byte (`0x00`) followed by the value.
///
/// The tag lets a later codec (encryption uses `0x01`) refuse values it cannot read
/// instead of misreading them.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainCodec;

impl ValueCodec for PlainCodec {
    fn encode(
        &self,
        _cf: ColumnFamily,
        _key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(PLAIN_TAG);
        out.extend_from_slice(plain);
        Ok(out)
    }

    fn decode(
        &self,
        _cf: ColumnFamily,
        _key: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        match stored.split_first() {
            Some((&PLAIN_TAG, rest)) => Ok(rest.to_vec()),
            Some((tag, _)) => Err(StorageError::Corrupt(format!(
                "value has codec tag {tag:#04x}; this database may be encrypted (its ENCRYPTION header is missing)"
            ))),
            None => Err(StorageError::Corrupt("empty stored value".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trip_and_tag() {
        let codec = PlainCodec;
        let cf = ColumnFamily::Entities;
        let stored = codec.encode(cf, b"k", b"hello").unwrap();
        assert_eq!(stored, b"\x00hello");
        assert_eq!(codec.decode(cf, b"k", &stored).unwrap(), b"hello");
        assert!(codec.decode(cf, b"k", b"\x01abc").is_err());
        assert!(codec.decode(cf, b"k", b"").is_err());
    }
}
