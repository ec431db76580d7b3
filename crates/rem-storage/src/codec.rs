//! The value codec: every value written to or read from the store passes through it.
//!
//! Encryption at rest plugs in here as a second implementation; the engine never
//! touches stored bytes directly.

use crate::StorageError;

/// Turns plain values into stored bytes and back.
pub trait ValueCodec: Send + Sync + std::fmt::Debug {
    /// Encodes a plain value for storage.
    fn encode(&self, plain: &[u8]) -> Vec<u8>;
    /// Decodes stored bytes. Fails on bytes this codec did not produce.
    fn decode(&self, stored: &[u8]) -> Result<Vec<u8>, StorageError>;
}

/// Tag byte of values written by [`PlainCodec`].
const PLAIN_TAG: u8 = 0x00;

/// The unencrypted codec: one tag byte (`0x00`) followed by the value.
///
/// The tag lets a later codec (encryption uses `0x01`) refuse values it cannot read
/// instead of misreading them.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainCodec;

impl ValueCodec for PlainCodec {
    fn encode(&self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + 1);
        out.push(PLAIN_TAG);
        out.extend_from_slice(plain);
        out
    }

    fn decode(&self, stored: &[u8]) -> Result<Vec<u8>, StorageError> {
        match stored.split_first() {
            Some((&PLAIN_TAG, rest)) => Ok(rest.to_vec()),
            Some((tag, _)) => Err(StorageError::Corrupt(format!(
                "value has codec tag {tag:#04x}; this database may be encrypted"
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
        let stored = codec.encode(b"hello");
        assert_eq!(stored, b"\x00hello");
        assert_eq!(codec.decode(&stored).unwrap(), b"hello");
        assert!(codec.decode(b"\x01abc").is_err());
        assert!(codec.decode(b"").is_err());
    }
}
