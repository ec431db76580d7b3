//! Order-preserving binary key codecs.
//!
//! Keys are concatenations of components. Each component encoding preserves order, so
//! comparing encoded keys byte by byte compares the components in order; a prefix of
//! components is a byte prefix, which makes every "all entries with these leading
//! components" question one RocksDB prefix scan. The layouts are in `docs/format.md`.
//!
//! | component | encoding |
//! |---|---|
//! | string | bytes with `00` escaped as `00 FF`, then the terminator `00 01` |
//! | u64 | 8 bytes big-endian |
//! | i64 | 8 bytes big-endian with the sign bit flipped |
//! | f64 | 8 bytes big-endian; positive: sign bit flipped, negative: all bits flipped |
//! | fixed bytes (ids) | as is |
//! | tag | one byte |

use crate::StorageError;

const ESCAPE: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// Builds a key from components.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    /// An empty key.
    pub fn new() -> Self {
        KeyBuf(Vec::with_capacity(64))
    }

    /// Appends an escaped, terminated string.
    pub fn str(mut self, s: &str) -> Self {
        self.push_str(s);
        self
    }

    /// Appends an escaped, terminated string in place.
    pub fn push_str(&mut self, s: &str) {
        self.push_bytes_escaped(s.as_bytes());
    }

    /// Appends escaped, terminated bytes in place.
    pub fn push_bytes_escaped(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0.push(b);
            if b == 0 {
                self.0.push(ESCAPE);
            }
        }
        self.0.push(0);
        self.0.push(TERMINATOR);
    }

    /// Appends a one-byte tag.
    pub fn tag(mut self, tag: u8) -> Self {
        self.0.push(tag);
        self
    }

    /// Appends an unsigned integer.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a signed integer in an order-preserving form.
    pub fn i64(mut self, v: i64) -> Self {
        self.push_i64(v);
        self
    }

    /// Appends a signed integer in place.
    pub fn push_i64(&mut self, v: i64) {
        self.0
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    }

    /// Appends a float in an order-preserving form (total order; `-0.0` sorts before `0.0`).
    pub fn f64(mut self, v: f64) -> Self {
        self.push_f64(v);
        self
    }

    /// Appends a float in place.
    pub fn push_f64(&mut self, v: f64) {
        let bits = v.to_bits();
        let ordered = if bits >> 63 == 1 {
            !bits
        } else {
            bits ^ (1 << 63)
        };
        self.0.extend_from_slice(&ordered.to_be_bytes());
    }

    /// Appends raw bytes (fixed-width components such as 16-byte ids).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends raw bytes in place.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the builder, returning the key bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no component was appended.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads components back from a key, in the order they were written.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts reading at the beginning of `key`.
    pub fn new(key: &'a [u8]) -> Self {
        KeyReader { rest: key }
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Reads an escaped, terminated byte string.
    pub fn bytes_escaped(&mut self) -> Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rest.len() {
            let b = self.rest[i];
            if b == 0 {
                match self.rest.get(i + 1) {
                    Some(&ESCAPE) => {
                        out.push(0);
                        i += 2;
                    }
                    Some(&TERMINATOR) => {
                        self.rest = &self.rest[i + 2..];
                        return Ok(out);
                    }
                    _ => return Err(corrupt("bad string escape")),
                }
            } else {
                out.push(b);
                i += 1;
            }
        }
        Err(corrupt("unterminated string"))
    }

    /// Reads an escaped, terminated UTF-8 string.
    pub fn str(&mut self) -> Result<String, StorageError> {
        String::from_utf8(self.bytes_escaped()?).map_err(|_| corrupt("string is not UTF-8"))
    }

    /// Reads a one-byte tag.
    pub fn tag(&mut self) -> Result<u8, StorageError> {
        let (&t, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| corrupt("missing tag"))?;
        self.rest = rest;
        Ok(t)
    }

    /// Reads `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.rest.len() < n {
            return Err(corrupt("key too short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// Reads an unsigned integer.
    pub fn u64(&mut self) -> Result<u64, StorageError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.raw(8)?);
        Ok(u64::from_be_bytes(b))
    }

    /// Reads a signed integer.
    pub fn i64(&mut self) -> Result<i64, StorageError> {
        Ok((self.u64()? ^ (1 << 63)) as i64)
    }

    /// Reads a float.
    pub fn f64(&mut self) -> Result<f64, StorageError> {
        let ordered = self.u64()?;
        let bits = if ordered >> 63 == 1 {
            ordered ^ (1 << 63)
        } else {
            !ordered
        };
        Ok(f64::from_bits(bits))
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// when no such string exists (the prefix is all `FF`). Used as a scan's upper bound.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last != 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("malformed key: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_encodings() {
        // These bytes are part of the on-disk format (docs/format.md).
        assert_eq!(KeyBuf::new().str("ab").into_bytes(), b"ab\x00\x01");
        assert_eq!(
            KeyBuf::new().str("a\0b").into_bytes(),
            b"a\x00\xffb\x00\x01"
        );
        assert_eq!(
            KeyBuf::new().i64(-1).into_bytes(),
            [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            KeyBuf::new().i64(0).into_bytes(),
            [0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            KeyBuf::new().f64(1.0).into_bytes(),
            [0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            KeyBuf::new().f64(-1.0).into_bytes(),
            [0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }

    proptest! {
        #[test]
        fn strings_keep_order_and_round_trip(a in ".*", b in ".*", tail in any::<u64>()) {
            let ka = KeyBuf::new().str(&a).u64(tail).into_bytes();
            let kb = KeyBuf::new().str(&b).u64(tail).into_bytes();
            prop_assert_eq!(a.as_bytes().cmp(b.as_bytes()), ka.cmp(&kb));
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!(r.str().unwrap(), a);
            prop_assert_eq!(r.u64().unwrap(), tail);
            prop_assert!(r.rest().is_empty());
        }

        #[test]
        fn string_prefix_is_byte_prefix(a in ".*", b in ".*") {
            // A complete string component never is a byte prefix of a different one.
            let ka = KeyBuf::new().str(&a).into_bytes();
            let kb = KeyBuf::new().str(&b).into_bytes();
            prop_assert_eq!(kb.starts_with(&ka), a == b);
        }

        #[test]
        fn integers_keep_order(a in any::<i64>(), b in any::<i64>()) {
            let ka = KeyBuf::new().i64(a).into_bytes();
            let kb = KeyBuf::new().i64(b).into_bytes();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            prop_assert_eq!(KeyReader::new(&ka).i64().unwrap(), a);
        }

        #[test]
        fn floats_keep_order(a in any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
                             b in any::<f64>().prop_filter("no NaN", |f| !f.is_nan())) {
            let ka = KeyBuf::new().f64(a).into_bytes();
            let kb = KeyBuf::new().f64(b).into_bytes();
            prop_assert_eq!(a.total_cmp(&b), ka.cmp(&kb));
            prop_assert_eq!(KeyReader::new(&ka).f64().unwrap().to_bits(), a.to_bits());
        }
    }
}
