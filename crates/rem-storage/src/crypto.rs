//! Encryption at rest: the password-wrapped data key (the `ENCRYPTION` header file) and
//! the encrypting value codec.
//!
//! - A database's **data key** is 32 random bytes made at `rem init --password`. It never
//!   changes, so changing the password rewrites only the header, never the data.
//! - The **header** (`<db>/ENCRYPTION`, plaintext, 0600) holds the Argon2id parameters,
//!   the salt, a key id, and the data key wrapped by XChaCha20-Poly1305 under the
//!   key-encryption key that Argon2id derives from the password. The wrap's associated
//!   data covers the parameters and the salt, so a downgraded header does not open.
//! - **Values** are compressed (LZ4, when it helps) and then sealed with
//!   XChaCha20-Poly1305 under a subkey of the data key (HKDF-SHA256), with a random
//!   24-byte nonce. The associated data is the column family's name and the value's key:
//!   a value copied under another key, or into another family, fails to open.
//!
//! Primitives are RustCrypto's (`argon2`, `chacha20poly1305`, `hkdf`, `sha2`); nothing
//! here is hand-written cryptography.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{ColumnFamily, Result, StorageError, ValueCodec};

/// File name of the encryption header inside a database directory.
pub const HEADER_FILE: &str = "ENCRYPTION";
const HEADER_MAGIC: &str = "percolate-rocks encryption 1";
const WRAP_CONTEXT: &str = "percolate-rocks data key 1";

/// Tag byte of a value sealed by [`EncryptedCodec`].
pub(crate) const SEALED_TAG: u8 = 0x01;
/// Tag byte of an empty value in an encrypted database (index entries carry no value;
/// sealing them would add 41 bytes each and hide nothing).
pub(crate) const EMPTY_TAG: u8 = 0x02;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Values shorter than this are not worth an LZ4 attempt.
const COMPRESS_MIN: usize = 64;

/// A password (or passphrase), wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(Zeroizing::new(password.into()))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: above every OWASP configuration, and about 0.2–0.4 s
    /// on one core of a server CPU.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

impl KdfParams {
    /// Refuses parameters below OWASP's minimum for Argon2id (its equivalent
    /// configurations run from 46 MiB × 1 pass to 7 MiB × 5 passes: at least 7 MiB and
    /// at least ~35 MiB·passes).
    pub fn check(&self) -> Result<()> {
        let work = u64::from(self.m_kib) * u64::from(self.t);
        if self.m_kib < 7 * 1024 || work < 35 * 1024 || self.p == 0 {
            return Err(StorageError::KdfParams(format!(
                "Argon2id parameters m={} KiB, t={}, p={} are below OWASP's minimum \
                 (at least 7168 KiB, and memory × passes ≥ 35840 KiB, e.g. m=19456 t=2)",
                self.m_kib, self.t, self.p
            )));
        }
        if self.m_kib > 1024 * 1024 || self.t > 20 || self.p > 16 {
            return Err(StorageError::KdfParams(format!(
                "Argon2id parameters m={} KiB, t={}, p={} are out of range \
                 (at most 1 GiB, 20 passes, 16 lanes)",
                self.m_kib, self.t, self.p
            )));
        }
        Ok(())
    }

    fn derive(&self, password: &Password, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| StorageError::Encryption(format!("Argon2id parameters: {e}")))?;
        let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        kdf.hash_password_into(password.bytes(), salt, out.as_mut())
            .map_err(|e| StorageError::Encryption(format!("Argon2id: {e}")))?;
        Ok(out)
    }
}

/// The 32-byte data key of an encrypted database, wiped when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(id {})", hex(&self.id()))
    }
}

impl DataKey {
    fn random() -> Result<DataKey> {
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(DataKey(key))
    }

    /// A subkey for one purpose (HKDF-SHA256 with `info` as the purpose).
    fn subkey(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, self.0.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        if hk.expand(info, out.as_mut()).is_err() {
            unreachable!("HKDF output length is fixed at 32 bytes");
        }
        out
    }

    /// A public fingerprint of the key (16 bytes of a subkey): two databases with the
    /// same id share a data key (a primary and its replicas).
    pub fn id(&self) -> [u8; 16] {
        let sub = self.subkey(b"percolate-rocks key id 1");
        let mut id = [0u8; 16];
        id.copy_from_slice(&sub[..16]);
        id
    }
}

/// The parsed `ENCRYPTION` header of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Argon2id parameters of the key-encryption key.
    pub params: KdfParams,
    salt: [u8; 16],
    key_id: [u8; 16],
    /// Nonce followed by the sealed data key and its tag.
    wrapped: Vec<u8>,
}

impl Header {
    /// Wraps `key` under `password` with fresh salt.
    fn wrap(key: &DataKey, password: &Password, params: KdfParams) -> Result<Header> {
        params.check()?;
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let kek = params.derive(password, &salt)?;
        let mut header = Header {
            params,
            salt,
            key_id: key.id(),
            wrapped: Vec::new(),
        };
        let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&kek[..]));
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut buf = Zeroizing::new(key.0.to_vec());
        let tag = cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                header.wrap_aad().as_bytes(),
                &mut buf,
            )
            .map_err(|_| StorageError::Encryption("cannot wrap the data key".into()))?;
        header.wrapped = [&nonce[..], &buf, tag.as_slice()].concat();
        Ok(header)
    }

    /// The data key, if `password` is the right one.
    pub fn unwrap_key(&self, password: &Password, path: &Path) -> Result<DataKey> {
        self.params.check()?;
        let kek = self.params.derive(password, &self.salt)?;
        let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&kek[..]));
        if self.wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(self.corrupt(path, "wrapped key has the wrong length"));
        }
        let (nonce, rest) = self.wrapped.split_at(NONCE_LEN);
        let (sealed, tag) = rest.split_at(32);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(sealed);
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                self.wrap_aad().as_bytes(),
                key.as_mut(),
                Tag::from_slice(tag),
            )
            .map_err(|_| StorageError::WrongPassword {
                path: path.to_path_buf(),
            })?;
        let key = DataKey(key);
        if key.id() != self.key_id {
            return Err(self.corrupt(path, "key id does not match the data key"));
        }
        Ok(key)
    }

    /// The fingerprint of the data key this header wraps.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }

    fn wrap_aad(&self) -> String {
        format!(
            "{WRAP_CONTEXT}|m={}|t={}|p={}|salt={}|key_id={}",
            self.params.m_kib,
            self.params.t,
            self.params.p,
            hex(&self.salt),
            hex(&self.key_id)
        )
    }

    fn corrupt(&self, path: &Path, what: &str) -> StorageError {
        StorageError::Corrupt(format!("{}: {what}", path.join(HEADER_FILE).display()))
    }

    fn to_text(&self) -> String {
        format!(
            "{HEADER_MAGIC}\nkdf=argon2id\nm_kib={}\nt={}\np={}\nsalt={}\nkey_id={}\nwrapped_key={}\n",
            self.params.m_kib,
            self.params.t,
            self.params.p,
            hex(&self.salt),
            hex(&self.key_id),
            hex(&self.wrapped)
        )
    }

    /// Parses a header file's text. Any deviation is an error naming the file.
    pub fn parse(text: &str, path: &Path) -> Result<Header> {
        let file = path.join(HEADER_FILE);
        let bad = |what: &str| {
            StorageError::Corrupt(format!(
                "{} is not a valid encryption header: {what}",
                file.display()
            ))
        };
        let fields = Fields::parse(text, HEADER_MAGIC, "unknown first line", &bad)?;
        let fixed16 = |k: &str| -> Result<[u8; 16]> {
            <[u8; 16]>::try_from(fields.hex(k)?)
                .map_err(|_| bad(&format!("'{k}' is not 16 bytes of hex")))
        };
        Ok(Header {
            params: fields.kdf_params()?,
            salt: fixed16("salt")?,
            key_id: fixed16("key_id")?,
            wrapped: fields.hex("wrapped_key")?,
        })
    }
}

/// The `key=value` lines of a header or a sealed secret, after their first line. A line
/// without `=`, a key given twice, a missing key or a malformed value is an error made
/// by `bad`, which names the file.
struct Fields<'a, B: Fn(&str) -> StorageError> {
    map: std::collections::BTreeMap<&'a str, &'a str>,
    bad: B,
}

impl<'a, B: Fn(&str) -> StorageError> Fields<'a, B> {
    fn parse(text: &'a str, first_line: &str, wrong_first: &str, bad: B) -> Result<Self> {
        let mut lines = text.lines();
        if lines.next() != Some(first_line) {
            return Err(bad(wrong_first));
        }
        let mut map = std::collections::BTreeMap::new();
        for line in lines {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad("a line without '='"))?;
            if map.insert(k, v).is_some() {
                return Err(bad(&format!("'{k}' appears twice")));
            }
        }
        Ok(Fields { map, bad })
    }

    fn get(&self, k: &str) -> Result<&'a str> {
        self.map
            .get(k)
            .copied()
            .ok_or_else(|| (self.bad)(&format!("no '{k}'")))
    }

    fn num(&self, k: &str) -> Result<u32> {
        self.get(k)?
            .parse()
            .map_err(|_| (self.bad)(&format!("'{k}' is not a number")))
    }

    fn hex(&self, k: &str) -> Result<Vec<u8>> {
        unhex(self.get(k)?).ok_or_else(|| (self.bad)(&format!("'{k}' is not hex")))
    }

    /// `kdf=argon2id` and its `m_kib`, `t` and `p` (not yet checked against the floor).
    fn kdf_params(&self) -> Result<KdfParams> {
        if self.get("kdf")? != "argon2id" {
            return Err((self.bad)("kdf is not argon2id"));
        }
        Ok(KdfParams {
            m_kib: self.num("m_kib")?,
            t: self.num("t")?,
            p: self.num("p")?,
        })
    }
}

/// Reads `<dir>/ENCRYPTION`, if there is one.
pub fn read_header(dir: &Path) -> Result<Option<Header>> {
    let file = dir.join(HEADER_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => Header::parse(&text, dir).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::Backend(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
    }
}

/// Writes `<dir>/ENCRYPTION` atomically: a temporary file, fsynced, renamed over the old
/// header, then the directory fsynced. A crash leaves the old header or the new one,
/// never a mix. `step` is told `staged` (new file durable, old header still in place)
/// and `swapped` (renamed; the directory not yet fsynced).
fn write_header(dir: &Path, header: &Header, step: &dyn Fn(&str)) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        StorageError::Backend(format!("cannot {what} in {}: {e}", dir.display()))
    };
    let tmp = dir.join(format!("{HEADER_FILE}.new"));
    write_private_file(&tmp, header.to_text().as_bytes())
        .map_err(|e| fail("write the encryption header", e))?;
    step("staged");
    std::fs::rename(&tmp, dir.join(HEADER_FILE))
        .map_err(|e| fail("replace the encryption header", e))?;
    step("swapped");
    sync_dir(dir).map_err(|e| fail("sync the directory", e))
}

/// Writes `bytes` to a new or truncated file at `path`, readable and writable by its
/// owner only (Unix mode 0600, set at creation, so no other user can open it even
/// briefly), and fsyncs it. Renaming or linking it into place is the caller's step.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a rename in `dir` durable (Unix: fsync the directory; elsewhere a no-op).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

/// Makes a new data key for the (not yet created) database at `dir` and writes its
/// header, which must not exist: the header is linked into place, so of two processes
/// creating one database only one key wins (the other unwraps the winner's with its
/// password). Returns the codec to open the database with.
pub(crate) fn create_key(
    dir: &Path,
    password: &Password,
    params: KdfParams,
) -> Result<EncryptedCodec> {
    let key = DataKey::random()?;
    let header = Header::wrap(&key, password, params)?;
    let tmp = dir.join(format!("{HEADER_FILE}.create-{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| {
        StorageError::Backend(format!("cannot {what} in {}: {e}", dir.display()))
    };
    write_private_file(&tmp, header.to_text().as_bytes())
        .map_err(|e| fail("write the encryption header", e))?;
    let linked = std::fs::hard_link(&tmp, dir.join(HEADER_FILE));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir).map_err(|e| fail("sync the directory", e))?;
            Ok(EncryptedCodec::new(&key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let winner = read_header(dir)?.ok_or_else(|| fail("read the encryption header", e))?;
            open_key(dir, &winner, password)
        }
        Err(e) => Err(fail("write the encryption header", e)),
    }
}

/// Opens the header of `dir` with `password`: the codec, or `WrongPassword`.
pub(crate) fn open_key(dir: &Path, header: &Header, password: &Password) -> Result<EncryptedCodec> {
    Ok(EncryptedCodec::new(&header.unwrap_key(password, dir)?))
}

/// Re-wraps the data key of the database at `dir` under `new` (fresh salt, `params`).
/// O(1): only the header changes. At every moment either `old` or `new` opens the
/// database. The caller holds the database open (its lock), so no other process
/// changes the header meanwhile. `step` sees `staged` and `swapped` (kill points).
pub fn change_password(
    dir: &Path,
    old: &Password,
    new: &Password,
    params: KdfParams,
    step: &dyn Fn(&str),
) -> Result<()> {
    let header = read_header(dir)?.ok_or_else(|| StorageError::NotEncrypted {
        path: dir.to_path_buf(),
    })?;
    let key = header.unwrap_key(old, dir)?;
    let new_header = Header::wrap(&key, new, params)?;
    write_header(dir, &new_header, step)
}

/// Seals `plain` under a key derived from `password` (Argon2id with fresh salt), for
/// small secrets kept in files (a private key). The output is self-describing text.
pub fn seal_with_password(
    plain: &[u8],
    password: &Password,
    params: KdfParams,
    context: &str,
) -> Result<String> {
    params.check()?;
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let kek = params.derive(password, &salt)?;
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&kek[..]));
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let aad = format!(
        "{context}|m={}|t={}|p={}|salt={}",
        params.m_kib,
        params.t,
        params.p,
        hex(&salt)
    );
    let mut buf = Zeroizing::new(plain.to_vec());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad.as_bytes(), &mut buf)
        .map_err(|_| StorageError::Encryption("cannot seal the secret".into()))?;
    let sealed = [&nonce[..], &buf, tag.as_slice()].concat();
    Ok(format!(
        "{context}\nkdf=argon2id\nm_kib={}\nt={}\np={}\nsalt={}\nsealed={}\n",
        params.m_kib,
        params.t,
        params.p,
        hex(&salt),
        hex(&sealed)
    ))
}

/// Opens what [`seal_with_password`] wrote. A wrong password, or text altered in any
/// way, fails.
pub fn open_with_password(
    text: &str,
    password: &Password,
    context: &str,
    file: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |what: &str| StorageError::Corrupt(format!("{}: {what}", file.display()));
    let fields = Fields::parse(text, context, "not a sealed secret of this kind", &bad)?;
    let params = fields.kdf_params()?;
    params.check()?;
    let salt = fields.hex("salt")?;
    let sealed = fields.hex("sealed")?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(bad("sealed secret is too short"));
    }
    let kek = params.derive(password, &salt)?;
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&kek[..]));
    let aad = format!(
        "{context}|m={}|t={}|p={}|salt={}",
        params.m_kib,
        params.t,
        params.p,
        hex(&salt)
    );
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            aad.as_bytes(),
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| StorageError::WrongPassword {
            path: file.to_path_buf(),
        })?;
    Ok(buf)
}

/// The encrypting codec: LZ4 (when it shrinks the value), then XChaCha20-Poly1305 with a
/// random nonce; the associated data binds the value to its column family and key.
///
/// Stored form: `01 | nonce (24) | sealed(flag | body) | tag (16)`, where flag 0 is a
/// raw body and 1 an LZ4 block with its size prepended. Empty values are `02`.
pub struct EncryptedCodec {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256 key of the values inside keys ([`ValueCodec::blind`]).
    blind_key: Zeroizing<[u8; 32]>,
    key_id: [u8; 16],
}

impl fmt::Debug for EncryptedCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedCodec(key id {})", hex(&self.key_id))
    }
}

impl EncryptedCodec {
    fn new(key: &DataKey) -> EncryptedCodec {
        let sub = key.subkey(b"percolate-rocks values 1");
        EncryptedCodec {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&sub[..])),
            blind_key: key.subkey(b"percolate-rocks key values 1"),
            key_id: key.id(),
        }
    }
}

/// Families whose values are always empty (index entries): their values are one tag byte.
/// Anywhere else an unsealed empty value is tampering.
fn holds_empty_values(cf: ColumnFamily) -> bool {
    matches!(
        cf,
        ColumnFamily::KeyIndex
            | ColumnFamily::FieldIndex
            | ColumnFamily::EdgesRev
            | ColumnFamily::Trigrams
    )
}

fn aad(cf: ColumnFamily, key: &[u8]) -> Vec<u8> {
    let name = cf.name().as_bytes();
    let mut out = Vec::with_capacity(name.len() + 1 + key.len());
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(key);
    out
}

/// Associated data of a file written beside the database (its name inside the
/// directory); no column family is named `file`, so a file never opens as a value.
fn file_aad(name: &str) -> Vec<u8> {
    [b"file\0".as_slice(), name.as_bytes()].concat()
}

impl EncryptedCodec {
    /// `01 | nonce | sealed(flag | body) | tag` of `plain` under `aad`.
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let compressed = if plain.len() >= COMPRESS_MIN {
            let c = lz4_flex::block::compress_prepend_size(plain);
            (c.len() < plain.len()).then_some(c)
        } else {
            None
        };
        let (flag, body) = match &compressed {
            Some(c) => (1u8, c.as_slice()),
            None => (0u8, plain),
        };
        let mut out = Vec::with_capacity(1 + NONCE_LEN + 1 + body.len() + TAG_LEN);
        out.push(SEALED_TAG);
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        out.extend_from_slice(&nonce);
        out.push(flag);
        out.extend_from_slice(body);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[1 + NONCE_LEN..])
            .map_err(|_| StorageError::Encryption("cannot seal a value".into()))?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    /// The plain bytes of what [`Self::seal`] made under `aad`; `tampered` when `stored`
    /// fails authentication.
    fn open(
        &self,
        aad: &[u8],
        stored: &[u8],
        tampered: impl Fn() -> StorageError,
    ) -> Result<Vec<u8>> {
        if stored.first() != Some(&SEALED_TAG) || stored.len() < 1 + NONCE_LEN + 1 + TAG_LEN {
            return Err(tampered());
        }
        let nonce = &stored[1..1 + NONCE_LEN];
        let (sealed, tag) =
            stored[1 + NONCE_LEN..].split_at(stored.len() - 1 - NONCE_LEN - TAG_LEN);
        let mut buf = sealed.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                aad,
                &mut buf,
                Tag::from_slice(tag),
            )
            .map_err(|_| tampered())?;
        match buf.first() {
            Some(0) => {
                buf.remove(0);
                Ok(buf)
            }
            Some(1) => lz4_flex::block::decompress_size_prepended(&buf[1..]).map_err(|e| {
                StorageError::Corrupt(format!("an authenticated value does not decompress: {e}"))
            }),
            _ => Err(StorageError::Corrupt(
                "an authenticated value has an unknown flag".into(),
            )),
        }
    }
}

impl ValueCodec for EncryptedCodec {
    fn encode(&self, cf: ColumnFamily, key: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        if plain.is_empty() && holds_empty_values(cf) {
            return Ok(vec![EMPTY_TAG]);
        }
        self.seal(&aad(cf, key), plain)
    }

    fn decode(&self, cf: ColumnFamily, key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
        match stored.first() {
            Some(&EMPTY_TAG) if stored.len() == 1 && holds_empty_values(cf) => {
                return Ok(Vec::new())
            }
            Some(&crate::codec::PLAIN_TAG) => {
                return Err(StorageError::Integrity(format!(
                    "a plaintext value in {} of an encrypted database",
                    cf.name()
                )))
            }
            _ => {}
        }
        self.open(&aad(cf, key), stored, || {
            StorageError::Integrity(format!(
                "a value in {} fails authentication (tampered, moved from another key, or damaged)",
                cf.name()
            ))
        })
    }

    fn seal_file(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
        self.seal(&file_aad(name), plain)
    }

    fn open_file(&self, name: &str, stored: &[u8]) -> Result<Vec<u8>> {
        self.open(&file_aad(name), stored, || {
            StorageError::Integrity(format!(
                "the file {name} fails authentication (tampered, renamed, or damaged)"
            ))
        })
    }

    fn blind(&self, parts: &[&[u8]]) -> Option<[u8; 16]> {
        use hmac::Mac as _;
        let Ok(mut mac) =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.blind_key[..])
        else {
            unreachable!("HMAC takes keys of any length");
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Some(out)
    }

    fn is_encrypted(&self) -> bool {
        true
    }
}

fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf)
        .map_err(|e| StorageError::Encryption(format!("the OS random source failed: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Where the header of the database at `dir` lives.
pub fn header_path(dir: &Path) -> PathBuf {
    dir.join(HEADER_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OWASP's smallest configuration: fast enough for unit tests.
    const FAST: KdfParams = KdfParams {
        m_kib: 7 * 1024,
        t: 5,
        p: 1,
    };

    #[test]
    fn weak_parameters_are_refused() {
        assert!(KdfParams {
            m_kib: 4096,
            t: 10,
            p: 1
        }
        .check()
        .is_err());
        assert!(KdfParams {
            m_kib: 19456,
            t: 1,
            p: 1
        }
        .check()
        .is_err());
        assert!(KdfParams {
            m_kib: 19456,
            t: 2,
            p: 1
        }
        .check()
        .is_ok());
        assert!(KdfParams::default().check().is_ok());
        assert!(FAST.check().is_ok());
    }

    #[test]
    fn the_header_opens_with_its_password_only_and_survives_a_text_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pw = Password::new("correct horse");
        let key = DataKey::random().unwrap();
        let header = Header::wrap(&key, &pw, FAST).unwrap();
        let parsed = Header::parse(&header.to_text(), dir.path()).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(parsed.unwrap_key(&pw, dir.path()).unwrap().id(), key.id());
        let err = parsed
            .unwrap_key(&Password::new("wrong"), dir.path())
            .unwrap_err();
        assert!(matches!(err, StorageError::WrongPassword { .. }), "{err}");
        // A downgraded header (parameters edited) does not open either.
        let edited = header.to_text().replace("t=5", "t=6");
        let downgraded = Header::parse(&edited, dir.path()).unwrap();
        assert!(downgraded.unwrap_key(&pw, dir.path()).is_err());
        assert!(Header::parse("garbage", dir.path()).is_err());
    }

    #[test]
    fn change_password_rewraps_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Password::new("old"), Password::new("new"));
        let codec = create_key(dir.path(), &old, FAST).unwrap();
        let sealed = codec
            .encode(ColumnFamily::Entities, b"k", b"value")
            .unwrap();
        let steps = std::sync::Mutex::new(Vec::new());
        change_password(dir.path(), &old, &new, FAST, &|s| {
            steps.lock().unwrap().push(s.to_string())
        })
        .unwrap();
        assert_eq!(*steps.lock().unwrap(), ["staged", "swapped"]);
        let header = read_header(dir.path()).unwrap().unwrap();
        assert!(header.unwrap_key(&old, dir.path()).is_err());
        let reopened = open_key(dir.path(), &header, &new).unwrap();
        assert_eq!(
            reopened
                .decode(ColumnFamily::Entities, b"k", &sealed)
                .unwrap(),
            b"value"
        );
        assert!(!dir.path().join("ENCRYPTION.new").exists());
    }

    #[test]
    fn values_are_bound_to_their_family_and_key_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let codec = create_key(dir.path(), &Password::new("pw"), FAST).unwrap();
        let text = "a value that repeats, a value that repeats, a value that repeats".repeat(4);
        for plain in [b"short".to_vec(), text.into_bytes(), Vec::new()] {
            let sealed = codec
                .encode(ColumnFamily::Entities, b"key1", &plain)
                .unwrap();
            assert_eq!(
                codec
                    .decode(ColumnFamily::Entities, b"key1", &sealed)
                    .unwrap(),
                plain
            );
            if plain.is_empty() {
                continue;
            }
            assert!(!sealed.windows(5).any(|w| w == &plain[..5]));
            // Another key, another family, a flipped byte: all refused.
            assert!(codec
                .decode(ColumnFamily::Entities, b"key2", &sealed)
                .is_err());
            assert!(codec.decode(ColumnFamily::Edges, b"key1", &sealed).is_err());
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x40;
                assert!(
                    codec.decode(ColumnFamily::Entities, b"key1", &bad).is_err(),
                    "byte {i}"
                );
            }
            // Two encodings of one value differ (random nonces).
            assert_ne!(
                sealed,
                codec
                    .encode(ColumnFamily::Entities, b"key1", &plain)
                    .unwrap()
            );
        }
        // A long repetitive value is compressed before sealing.
        let long = vec![b'x'; 4096];
        assert!(
            codec
                .encode(ColumnFamily::Entities, b"k", &long)
                .unwrap()
                .len()
                < 200
        );
        // Another database's key cannot read this one's values.
        let other = tempfile::tempdir().unwrap();
        let other = create_key(other.path(), &Password::new("pw"), FAST).unwrap();
        let sealed = codec
            .encode(ColumnFamily::Entities, b"k", b"secret")
            .unwrap();
        assert!(other.decode(ColumnFamily::Entities, b"k", &sealed).is_err());
    }

    #[test]
    fn sealed_secrets_round_trip_and_refuse_the_wrong_password() {
        let file = Path::new("/keys/private_key_encrypted");
        let pw = Password::new("pw");
        let text = seal_with_password(
            b"0123456789abcdef0123456789abcdef",
            &pw,
            FAST,
            "test secret 1",
        )
        .unwrap();
        assert_eq!(
            open_with_password(&text, &pw, "test secret 1", file)
                .unwrap()
                .as_slice(),
            b"0123456789abcdef0123456789abcdef"
        );
        assert!(open_with_password(&text, &Password::new("no"), "test secret 1", file).is_err());
        assert!(open_with_password(&text, &pw, "other kind", file).is_err());
    }
}
