//! Entry points of the fuzz targets in `fuzz/` (`cargo fuzz`, see `scripts/fuzz.sh`);
//! the test suite replays the committed corpora through the same functions.
//!
//! Each one takes arbitrary bytes and must not panic. Where a round trip or an
//! invariant exists it is checked too, and a failed check panics: that is how a fuzzer
//! learns of it. Not part of the API.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::OnceLock;

use rem_storage::{KeyBuf, KeyReader};
use serde_json::{json, Value};

use crate::format::{changes, edges, entities, indexes, meta, vectors};
use crate::{Database, EmbeddingOptions, Entity, ReplicatedChange, Schema, VectorIndex};

/// Splits `data` in two where its first two bytes (a little-endian length) say: the
/// key and value of an entry, and the like. [`join`] is the inverse.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return (&[], &[]);
    };
    rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()))
}

/// `len(head) u16 LE | head | tail`: the input that [`split`]s into `head` and `tail`.
pub fn join(head: &[u8], tail: &[u8]) -> Vec<u8> {
    let len = u16::try_from(head.len()).expect("a fuzz input part fits 64 KiB");
    [&len.to_le_bytes()[..], head, tail].concat()
}

/// A stored entry (key and value from `data`) through every decoder of what is read
/// from disk or a peer: entity keys and encodings, change records, edge keys and values,
/// index values, stored vectors, replication role. Whatever decodes also encodes and
/// decodes to itself.
pub fn stored_entry(data: &[u8]) {
    let (key, value) = split(data);
    if let Some((tenant, table, Some(id))) = entities::parse_entity_key(key) {
        let again = entities::parse_entity_key(&entities::entity_key_bytes(&tenant, &table, &id));
        assert_eq!(
            again,
            Some((tenant, table, Some(id))),
            "entity key round trip"
        );
    }
    if let Ok(e) = Entity::decode("notes", value) {
        let again = Entity::decode("notes", &e.encode()).expect("re-encoded entity decodes");
        assert_eq!(again, e, "entity round trip");
    }
    let fields = ["n".to_string()];
    let _ = Entity::decode_with("notes", value, Some(&fields));
    let _ = Entity::raw_is_deleted(value);
    let _ = entities::is_deleted_encoded(value);
    let _ = entities::parse_entity_key_in_tenant(key);
    if let Some(seq) = changes::parse_change_key(key) {
        assert_eq!(
            changes::parse_change_key(&changes::change_key(seq)),
            Some(seq)
        );
    }
    let _ = changes::decode_change(value);
    let _ = changes::put_target(value);
    let _ = edges::parse_edge_key(key);
    let _ = edges::parse_reverse_key(key);
    let _ = edges::decode_edge(key, value);
    let _ = edges::parse_out_suffix(key);
    let _ = edges::parse_in_suffix(key);
    let _ = edges::parse_edge_entry(key, value);
    let _ = edges::parse_reverse_entry(key, value);
    let _ = edges::out_names(key, value);
    let _ = edges::in_names(key, value);
    let _ = indexes::parse_id_value(value.to_vec());
    let _ = indexes::parse_key_index_suffix(key);
    if let Ok(s) = vectors::StoredEmbedding::decode(value) {
        assert_eq!(s.encode(), value, "stored vector round trip");
    }
    let _ = vectors::parse_column_meta(value);
    let _ = meta::ReplicationRole::decode(value);
    let _ = crate::format::trailing_id(key);
}

/// One key component, as the key codec writes it.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Str(String),
    Bytes(Vec<u8>),
    Tag(u8),
    U64(u64),
    I64(i64),
    F64(f64),
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fn eight(data: &mut &[u8]) -> Option<[u8; 8]> {
    take(data, 8).and_then(|b| b.try_into().ok())
}

/// Key components read from `data`: an opcode byte, then its operand.
fn parts(mut data: &[u8]) -> Vec<Part> {
    let mut out = Vec::new();
    while let Some(op) = take(&mut data, 1).map(|b| b[0]) {
        let part = match op % 6 {
            0 | 1 => {
                let n = take(&mut data, 1).map_or(0, |b| b[0] as usize);
                let n = n.min(data.len());
                let Some(bytes) = take(&mut data, n) else {
                    break;
                };
                if op % 6 == 0 {
                    Part::Str(String::from_utf8_lossy(bytes).into_owned())
                } else {
                    Part::Bytes(bytes.to_vec())
                }
            }
            2 => match take(&mut data, 1) {
                Some(b) => Part::Tag(b[0]),
                None => break,
            },
            3 => match eight(&mut data) {
                Some(b) => Part::U64(u64::from_be_bytes(b)),
                None => break,
            },
            4 => match eight(&mut data) {
                Some(b) => Part::I64(i64::from_be_bytes(b)),
                None => break,
            },
            _ => match eight(&mut data) {
                Some(b) => Part::F64(f64::from_bits(u64::from_be_bytes(b))),
                None => break,
            },
        };
        out.push(part);
    }
    out
}

fn encode_part(buf: &mut KeyBuf, part: &Part) {
    match part {
        Part::Str(s) => buf.push_str(s),
        Part::Bytes(b) => buf.push_bytes_escaped(b),
        Part::Tag(t) => *buf = std::mem::take(buf).tag(*t),
        Part::U64(v) => *buf = std::mem::take(buf).u64(*v),
        Part::I64(v) => buf.push_i64(*v),
        Part::F64(v) => buf.push_f64(*v),
    }
}

fn read_part(r: &mut KeyReader<'_>, like: &Part) -> Option<Part> {
    Some(match like {
        Part::Str(_) => Part::Str(r.str().ok()?),
        Part::Bytes(_) => Part::Bytes(r.bytes_escaped().ok()?),
        Part::Tag(_) => Part::Tag(r.tag().ok()?),
        Part::U64(_) => Part::U64(r.u64().ok()?),
        Part::I64(_) => Part::I64(r.i64().ok()?),
        Part::F64(_) => Part::F64(r.f64().ok()?),
    })
}

fn same(a: &Part, b: &Part) -> bool {
    match (a, b) {
        (Part::F64(x), Part::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// The order a key component's encoding must keep (`None` across kinds).
fn value_order(a: &Part, b: &Part) -> Option<Ordering> {
    Some(match (a, b) {
        (Part::Str(x), Part::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Part::Bytes(x), Part::Bytes(y)) => x.cmp(y),
        (Part::Tag(x), Part::Tag(y)) => x.cmp(y),
        (Part::U64(x), Part::U64(y)) => x.cmp(y),
        (Part::I64(x), Part::I64(y)) => x.cmp(y),
        (Part::F64(x), Part::F64(y)) => x.total_cmp(y),
        _ => return None,
    })
}

/// The key codec: components described by `data` encode and read back to themselves;
/// two components of a kind encode in their value order; reading `data` itself as a key
/// with every reader fails cleanly or succeeds.
pub fn key_codec(data: &[u8]) {
    let parts = parts(data);
    let mut buf = KeyBuf::new();
    for p in &parts {
        encode_part(&mut buf, p);
    }
    let bytes = buf.into_bytes();
    let mut r = KeyReader::new(&bytes);
    for p in &parts {
        let got = read_part(&mut r, p).expect("an encoded component reads back");
        assert!(
            same(&got, p),
            "key component round trip: {p:?} read as {got:?}"
        );
    }
    assert!(r.rest().is_empty(), "nothing left after the last component");
    for pair in parts.windows(2) {
        if let Some(order) = value_order(&pair[0], &pair[1]) {
            let enc = |p: &Part| {
                let mut b = KeyBuf::new();
                encode_part(&mut b, p);
                b.into_bytes()
            };
            assert_eq!(
                enc(&pair[0]).cmp(&enc(&pair[1])),
                order,
                "order of {pair:?}"
            );
        }
    }
    for reader in 0..7 {
        let mut r = KeyReader::new(data);
        while !r.rest().is_empty() {
            let ok = match reader {
                0 => r.str().is_ok(),
                1 => r.bytes_escaped().is_ok(),
                2 => r.tag().is_ok(),
                3 => r.u64().is_ok(),
                4 => r.i64().is_ok(),
                5 => r.f64().is_ok(),
                _ => r.raw(3).is_ok(),
            };
            if !ok {
                break;
            }
        }
    }
}

/// A saved vector index whose three files (`.json`, `.keys`, `.usearch`) come from
/// `data`: loading gives `None` (the caller rebuilds) or an index that holds what its
/// files say, and that can be searched.
pub fn vector_index_load(data: &[u8]) {
    let (json_part, rest) = split(data);
    let (keys_part, index_part) = split(rest);
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("v");
    let write = |ext: &str, bytes: &[u8]| {
        std::fs::write(base.with_extension(ext), bytes).expect("write index file");
    };
    write("json", json_part);
    write("keys", keys_part);
    write("usearch", index_part);
    load_and_probe(&base);
}

fn load_and_probe(base: &Path) {
    let options = EmbeddingOptions::default();
    let Some(vi) = VectorIndex::load(base, "m", 3, &options, &rem_storage::PlainCodec) else {
        return;
    };
    assert_eq!(vi.dims(), 3);
    assert_eq!(vi.ids().count(), vi.len(), "one id per vector");
    let hits = vi
        .search(&[1.0, 0.0, 0.0], 5, None, None)
        .expect("a loaded index searches");
    assert!(hits.len() <= vi.len().min(5));
}

/// The files of a real saved index as one fuzz input (the corpus seed of
/// [`vector_index_load`]).
pub fn vector_index_seed() -> Vec<u8> {
    let mut vi = VectorIndex::new(3, "m", &EmbeddingOptions::default()).expect("index");
    for i in 0..20u8 {
        let id = crate::EntityId::from_key("t", "x", &i.to_string());
        let v = [f32::from(i), 1.0, f32::from(i % 3)];
        vi.upsert(id, &v).expect("upsert");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("v");
    vi.save(&base, &rem_storage::PlainCodec).expect("save");
    let read = |ext: &str| std::fs::read(base.with_extension(ext)).expect("read");
    let (json_part, keys_part, index_part) = (read("json"), read("keys"), read("usearch"));
    join(&json_part, &join(&keys_part, &index_part))
}

/// A schema document from `data`, as JSON or (when it is not JSON) YAML: it is accepted
/// or refused with an error; an accepted schema's document is accepted again as the
/// same schema.
pub fn schema_document(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    let Ok(schema) = Schema::from_document(doc) else {
        return;
    };
    let again = Schema::from_document(schema.document.clone())
        .expect("an accepted schema's own document is accepted");
    assert_eq!(again.name, schema.name);
    assert_eq!(again.document, schema.document);
}

/// A replica applying a change batch a primary could send: records and their sequence
/// numbers from `data` (per change: a flag byte, bit 0 = skip a sequence number, then a
/// record as [`join`] frames it). It applies them or refuses with an error, and stays
/// usable.
pub fn replica_apply(data: &[u8]) {
    static REPLICA: OnceLock<Database> = OnceLock::new();
    let replica = REPLICA.get_or_init(|| {
        let db = Database::in_memory().expect("in-memory database");
        db.become_replica("127.0.0.1:1").expect("replica");
        db
    });
    let mut changes = Vec::new();
    let mut rest = data;
    let mut seq = replica.last_seq();
    while let Some((&flags, tail)) = rest.split_first() {
        let (record, tail) = split(tail);
        seq += 1 + u64::from(flags & 1);
        changes.push(ReplicatedChange {
            seq,
            record: record.to_vec(),
            vectors: vec![],
        });
        rest = tail;
        if changes.len() == 16 {
            break;
        }
    }
    let before = replica.last_seq();
    if replica.apply_replicated(&changes).is_err() {
        assert!(
            replica.last_seq() >= before,
            "a refused batch never moves back"
        );
    }
    let _ = replica.scan("notes", &crate::Filter::All, &crate::ScanOptions::default());
}

/// The in-memory database the predicate fuzz target resolves columns against: a table
/// `notes` (`slug`, `n`, `body`, `tags`, `at`).
pub fn sample_database() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| {
        let db = Database::in_memory().expect("in-memory database");
        db.register_schema(json!({
            "name": "notes", "key_field": "slug", "indexed_fields": ["n"],
            "properties": {"slug": {"type": "string"}, "n": {"type": "integer"},
                           "body": {"type": "string"}, "tags": {"type": "array"},
                           "at": {"type": "string", "format": "date-time"}}
        }))
        .expect("schema");
        db.insert_batch(
            "notes",
            vec![
                json!({"slug": "a", "n": 1, "body": "x", "tags": ["t"], "at": "2025-01-02T03:04:05Z"}),
                json!({"slug": "b", "n": 2, "body": "y"}),
            ],
        )
        .expect("insert");
        db
    })
}

/// Seed inputs for the targets of this crate, from a real database: each stored entry
/// of every column family, key components, a saved vector index, schema documents in
/// JSON and YAML, and the change records of the sample writes.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let db = Database::in_memory().expect("in-memory database");
    db.register_schema(json!({
        "name": "notes", "key_field": "slug", "indexed_fields": ["n"],
        "embedding_fields": ["body"], "embedding_provider": "external:3",
        "properties": {"slug": {"type": "string"}, "n": {"type": "integer"},
                       "body": {"type": "string"}, "tags": {"type": "array"}}
    }))
    .expect("schema");
    db.insert_batch_with_vectors(
        "notes",
        vec![
            json!({"slug": "a", "n": 1, "body": "x", "tags": ["t"]}),
            json!({"slug": "b", "n": -2, "body": "y'z"}),
        ],
        vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]],
    )
    .expect("insert");
    db.add_edge("a", "b", "cites", &crate::EdgeOptions::default())
        .expect("edge");
    db.delete(&crate::EntityId::from_key("default", "notes", "a"))
        .expect("delete");
    let mut out = Vec::new();
    let mut batch = Vec::new();
    for cf in rem_storage::ColumnFamily::ALL {
        for item in db.store().scan_prefix(cf, b"").expect("scan") {
            let (k, v) = item.expect("entry");
            if cf == rem_storage::ColumnFamily::ChangeLog {
                batch.push(0u8);
                batch.extend(join(&v, &[]));
            }
            out.push(("stored_entry", join(&k, &v)));
        }
    }
    out.push(("replica_apply", batch));
    let mut key = Vec::new();
    for (op, bytes) in [
        (0u8, &b"\x05tenant"[..]),
        (1, b"\x03\x00\x01\xff"),
        (2, b"\x07"),
        (3, &42u64.to_be_bytes()),
        (4, &(-7i64).to_be_bytes()),
        (5, &(-0.5f64).to_bits().to_be_bytes()),
    ] {
        key.push(op);
        key.extend_from_slice(bytes);
    }
    out.push(("key_codec", key));
    out.push(("vector_index_load", vector_index_seed()));
    for doc in crate::builtin_schemas() {
        out.push(("schema_document", doc.to_string().into_bytes()));
        let yaml = serde_yaml::to_string(&doc).expect("yaml");
        out.push(("schema_document", yaml.into_bytes()));
    }
    out
}

/// Every input of `target`'s committed corpus (`fuzz/corpus/<target>/`), with its name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("corpus file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// Writes `seeds` into the corpus folders as `seed-N` files (see `scripts/fuzz.sh`).
pub fn write_seeds(seeds: &[(&str, Vec<u8>)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut n = std::collections::HashMap::new();
    for (target, bytes) in seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        let i = n.entry(*target).or_insert(0);
        std::fs::write(dir.join(format!("seed-{i}")), bytes).expect("seed file");
        *i += 1;
    }
}

/// Runs `f` on the seeds of `target` (there must be some) and on its committed corpus:
/// the suite's replay of a fuzz target.
pub fn replay(target: &str, seeds: &[(&str, Vec<u8>)], f: fn(&[u8])) {
    let mine: Vec<_> = seeds.iter().filter(|(t, _)| *t == target).collect();
    assert!(!mine.is_empty(), "{target} has seeds");
    for (_, bytes) in mine {
        f(bytes);
    }
    for (_, bytes) in corpus(target) {
        f(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, f: fn(&[u8])) {
        replay(target, &seeds(), f);
    }

    /// The seeds and the committed corpus of every target of this crate run clean.
    #[test]
    fn fuzz_corpora_replay_clean() {
        run("stored_entry", stored_entry);
        run("key_codec", key_codec);
        run("vector_index_load", vector_index_load);
        run("schema_document", schema_document);
        run("replica_apply", replica_apply);
    }

    #[test]
    fn join_is_the_inverse_of_split() {
        let joined = join(b"key", b"value");
        assert_eq!(split(&joined), (&b"key"[..], &b"value"[..]));
        assert_eq!(split(b""), (&b""[..], &b""[..]));
        assert_eq!(split(b"\x09\x00ab"), (&b"ab"[..], &b""[..]));
    }

    /// `scripts/fuzz.sh` runs this to write the seed inputs into `fuzz/corpus/`.
    #[test]
    #[ignore = "writes files into fuzz/corpus; run by scripts/fuzz.sh"]
    fn write_seed_corpora() {
        write_seeds(&seeds());
    }
}
