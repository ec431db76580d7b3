//! Vector indexes: one per tenant × table × embedding column, over the vectors stored in
//! the `embeddings` column family (the truth).
//!
//! The index is usearch's HNSW (cosine metric, f32), or exact search when
//! `P8_VECTOR_INDEX_TYPE=flat`. Entity ids map to sequential u64 keys. An index is saved
//! under `<db>/vectors/` with the change-log sequence number it reflects (its
//! watermark); on load it replays the change log after the watermark, so it is never
//! silently stale, even after a crash. A missing or unreadable index is rebuilt from
//! the `embeddings` column family.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rem_storage::ValueCodec;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::options::{VectorIndexType, VectorQuantization};
use crate::{EmbeddingOptions, EntityId, Error, Result};

/// An in-memory vector index (HNSW or exact) over entity ids, as the engine keeps one
/// per tenant × table × embedding column. Public for benchmarks and tools.
pub struct VectorIndex {
    index: Index,
    keys: HashMap<u64, EntityId>,
    by_id: HashMap<EntityId, u64>,
    next_key: u64,
    dims: usize,
    exact: bool,
    /// Provider that made the vectors (saved with the index; a different one means rebuild).
    model: String,
    /// Vector precision inside the index.
    quantization: VectorQuantization,
    /// Change-log sequence number this index reflects.
    pub(crate) watermark: u64,
}

fn index_error(e: impl std::fmt::Display) -> Error {
    Error::Embedding(format!("vector index: {e}"))
}

impl VectorIndex {
    /// An empty index for `dims`-dimensional vectors made by `model`, with the HNSW
    /// parameters and index type of `options`.
    pub fn new(dims: usize, model: &str, options: &EmbeddingOptions) -> Result<VectorIndex> {
        let index = Index::new(&IndexOptions {
            dimensions: dims,
            // Vectors are L2-normalised on the way in, so inner product ranks exactly as
            // cosine and skips the two norm computations per distance.
            metric: MetricKind::IP,
            quantization: match options.quantization {
                VectorQuantization::Bf16 => ScalarKind::BF16,
                VectorQuantization::F16 => ScalarKind::F16,
                VectorQuantization::F32 => ScalarKind::F32,
            },
            connectivity: options.hnsw_m,
            expansion_add: options.hnsw_ef_construction,
            expansion_search: options.hnsw_ef_search,
            multi: false,
        })
        .map_err(index_error)?;
        index.reserve(1024).map_err(index_error)?;
        Ok(VectorIndex {
            index,
            keys: HashMap::new(),
            by_id: HashMap::new(),
            next_key: 1,
            dims,
            exact: options.index_type == VectorIndexType::Flat,
            model: model.to_string(),
            quantization: options.quantization,
            watermark: 0,
        })
    }

    /// Vector length.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes used by the index (graph and vectors).
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }

    /// The SIMD kernels usearch uses on this CPU (e.g. `haswell`, or `serial` for none).
    pub fn hardware_acceleration(&self) -> String {
        self.index.hardware_acceleration()
    }

    /// Inserts or replaces the vector of `id`.
    pub fn upsert(&mut self, id: EntityId, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dims {
            return Err(Error::Embedding(format!(
                "a vector has {} dimensions but the index holds {}",
                vector.len(),
                self.dims
            )));
        }
        let unit = normalized(vector);
        if let Some(&key) = self.by_id.get(&id) {
            // The same vector again (a write that kept the stored one): replacing it
            // would only leave a tombstone in the graph.
            let mut buf = vec![0f32; self.dims];
            let same = self.index.get(key, &mut buf).ok().is_some_and(|n| n > 0)
                && buf
                    .iter()
                    .zip(&unit)
                    .all(|(a, b)| (a - b).abs() <= 1e-2 * b.abs().max(1e-2));
            if same {
                return Ok(());
            }
        }
        self.remove(&id)?;
        if self.index.size() + 1 > self.index.capacity() {
            // Grow by a quarter: usearch's memory use follows its capacity, so doubling
            // would leave up to half of it unused.
            let grown = (self.index.capacity() + self.index.capacity() / 4).max(1024);
            self.index.reserve(grown).map_err(index_error)?;
        }
        let key = self.next_key;
        self.next_key += 1;
        self.index.add(key, &unit).map_err(index_error)?;
        self.keys.insert(key, id);
        self.by_id.insert(id, key);
        Ok(())
    }

    /// Inserts or replaces many vectors at once, adding them on all cores (usearch's
    /// graph insertion is thread-safe once capacity and thread contexts are reserved).
    /// Used to build an index from stored vectors.
    pub fn upsert_many(&mut self, items: &[(EntityId, Vec<f32>)]) -> Result<()> {
        if let Some((_, v)) = items.iter().find(|(_, v)| v.len() != self.dims) {
            return Err(Error::Embedding(format!(
                "a vector has {} dimensions but the index holds {}",
                v.len(),
                self.dims
            )));
        }
        for (id, _) in items {
            self.remove(id)?;
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(items.len().div_ceil(256).max(1));
        let needed = self.index.size() + items.len();
        if needed > self.index.capacity() || threads > 1 {
            let capacity = needed.max(self.index.capacity());
            self.index
                .reserve_capacity_and_threads(capacity, threads)
                .map_err(index_error)?;
        }
        let first = self.next_key;
        self.next_key += items.len() as u64;
        let index = &self.index;
        let failed = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        for (i, (_, vector)) in items.iter().enumerate().skip(t).step_by(threads) {
                            index
                                .add(first + i as u64, &normalized(vector))
                                .map_err(|e| e.to_string())?;
                        }
                        Ok::<(), String>(())
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join()).find_map(|r| match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("an insert thread panicked".to_string()),
            })
        });
        // Keys are recorded even on failure so that `remove` can clean up what was added.
        for (i, (id, _)) in items.iter().enumerate() {
            let key = first + i as u64;
            if self.index.contains(key) {
                self.keys.insert(key, *id);
                self.by_id.insert(*id, key);
            }
        }
        match failed {
            Some(e) => Err(index_error(e)),
            None => Ok(()),
        }
    }

    /// Removes the vector of `id`, if any.
    pub fn remove(&mut self, id: &EntityId) -> Result<()> {
        if let Some(key) = self.by_id.remove(id) {
            self.keys.remove(&key);
            self.index.remove(key).map_err(index_error)?;
        }
        Ok(())
    }

    /// The `k` nearest entities to `query` by cosine similarity (score = 1 − cosine
    /// distance), restricted to `allowed` when given. A small allowed set is searched
    /// exactly; a large one filters inside the HNSW search.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<EntityId>>,
        ef: Option<usize>,
    ) -> Result<Vec<(EntityId, f32)>> {
        if query.len() != self.dims {
            return Err(Error::Embedding(format!(
                "the query vector has {} dimensions but the index holds {}",
                query.len(),
                self.dims
            )));
        }
        let k = k.min(self.keys.len());
        if k == 0 {
            return Ok(vec![]);
        }
        if let Some(ef) = ef {
            self.index.change_expansion_search(ef.max(k));
        }
        let query = &normalized(query)[..];
        let matches = match allowed {
            Some(allowed)
                if allowed.len() <= EXACT_LIMIT
                    || allowed.len() * EXACT_FRACTION <= self.keys.len()
                    || self.exact =>
            {
                return Ok(self.exact_subset(query, k, allowed));
            }
            Some(allowed) => self
                .index
                .filtered_search(query, k, |key| {
                    self.keys.get(&key).is_some_and(|id| allowed.contains(id))
                })
                .map_err(index_error)?,
            None if self.exact => self.index.exact_search(query, k).map_err(index_error)?,
            None => self.index.search(query, k).map_err(index_error)?,
        };
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .filter_map(|(key, d)| self.keys.get(key).map(|id| (*id, 1.0 - d)))
            .collect())
    }

    /// Exact top-k over a set of ids, reading their vectors back from the index.
    fn exact_subset(
        &self,
        query: &[f32],
        k: usize,
        allowed: &HashSet<EntityId>,
    ) -> Vec<(EntityId, f32)> {
        let mut buf = vec![0f32; self.dims];
        let mut scored: Vec<(EntityId, f32)> = allowed
            .iter()
            .filter_map(|id| {
                let key = *self.by_id.get(id)?;
                self.index.get(key, &mut buf).ok().filter(|n| *n > 0)?;
                // Stored vectors are unit length and so is the query.
                Some((*id, dot(&buf, query)))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }

    /// The ids the index holds.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &EntityId> {
        self.by_id.keys()
    }

    /// The (unit-length, possibly reduced-precision) vector the index holds for `id`.
    pub(crate) fn vector(&self, id: &EntityId) -> Option<Vec<f32>> {
        let key = *self.by_id.get(id)?;
        let mut buf = vec![0f32; self.dims];
        self.index.get(key, &mut buf).ok().filter(|n| *n > 0)?;
        Some(buf)
    }

    /// Saves the index beside the database: data files first, the metadata file (the
    /// commit point) last, each through a temporary name. `base` is a path without
    /// extension; the files are `base.{usearch,keys,json}`. With an encrypting `codec`
    /// the index and keys files are sealed (the graph holds the vectors); the metadata
    /// (model, size, count, watermark) stays readable.
    pub fn save(&self, base: &Path, codec: &dyn ValueCodec) -> Result<()> {
        let model = self.model.as_str();
        if let Some(dir) = base.parent() {
            std::fs::create_dir_all(dir).map_err(index_error)?;
        }
        let index_path = base.with_extension("usearch");
        let tmp = base.with_extension("usearch.tmp");
        if codec.is_encrypted() {
            let mut buf = vec![0u8; self.index.serialized_length()];
            self.index.save_to_buffer(&mut buf).map_err(index_error)?;
            let sealed = codec.seal_file(&file_name(&index_path), &buf)?;
            std::fs::write(&tmp, sealed).map_err(index_error)?;
        } else {
            self.index
                .save(&tmp.to_string_lossy())
                .map_err(index_error)?;
        }
        let checksum = file_checksum(&tmp).map_err(index_error)?;
        std::fs::rename(&tmp, &index_path).map_err(index_error)?;
        let mut keys = Vec::with_capacity(8 + self.keys.len() * 24);
        keys.extend_from_slice(&self.next_key.to_le_bytes());
        for (key, id) in &self.keys {
            keys.extend_from_slice(&key.to_le_bytes());
            keys.extend_from_slice(id.as_bytes());
        }
        let keys_path = base.with_extension("keys");
        let keys = codec.seal_file(&file_name(&keys_path), &keys)?;
        write_atomic(&keys_path, &keys)?;
        let meta = serde_json::json!({
            "format": 3, "model": model, "dims": self.dims, "count": self.keys.len(),
            "blake3": checksum,
            "quantization": self.quantization.name(),
            "watermark": self.watermark, "exact": self.exact,
            "sealed": codec.is_encrypted(),
        });
        write_atomic(&base.with_extension("json"), meta.to_string().as_bytes())
    }

    /// Loads a saved index; `None` when there is none, it does not match (`model`,
    /// `dims`, index type, sealed or not by `codec`) or its data file is not the one the
    /// metadata describes — the caller then rebuilds. The checksum comes first:
    /// usearch's loader trusts its file, and a damaged one could crash the process. A
    /// sealed file is authenticated before usearch sees it.
    pub fn load(
        base: &Path,
        model: &str,
        dims: usize,
        options: &EmbeddingOptions,
        codec: &dyn ValueCodec,
    ) -> Option<VectorIndex> {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(base.with_extension("json")).ok()?).ok()?;
        let exact = options.index_type == VectorIndexType::Flat;
        if meta["format"] != 3
            || meta["model"] != model
            || meta["dims"].as_u64()? as usize != dims
            || meta["exact"] != exact
            || meta["quantization"] != options.quantization.name()
            || meta["sealed"].as_bool().unwrap_or(false) != codec.is_encrypted()
        {
            return None;
        }
        let index_path = base.with_extension("usearch");
        if meta["blake3"].as_str()? != file_checksum(&index_path).ok()? {
            tracing::warn!(path = %index_path.display(), "vector index file damaged; rebuilding it");
            return None;
        }
        let mut vi = VectorIndex::new(dims, model, options).ok()?;
        if codec.is_encrypted() {
            let sealed = std::fs::read(&index_path).ok()?;
            let plain = codec
                .open_file(&file_name(&index_path), &sealed)
                .map_err(|e| tracing::warn!("{e}; rebuilding the vector index"))
                .ok()?;
            vi.index.load_from_buffer(&plain).ok()?;
        } else {
            vi.index.load(&index_path.to_string_lossy()).ok()?;
        }
        vi.index.change_expansion_search(options.hnsw_ef_search);
        let keys_path = base.with_extension("keys");
        let keys = std::fs::read(&keys_path).ok()?;
        let keys = codec.open_file(&file_name(&keys_path), &keys).ok()?;
        vi.next_key = u64::from_le_bytes(keys.get(..8)?.try_into().ok()?);
        for chunk in keys.get(8..)?.chunks(24) {
            let key = u64::from_le_bytes(chunk.get(..8)?.try_into().ok()?);
            let id = EntityId::from_slice(chunk.get(8..24)?)?;
            vi.keys.insert(key, id);
            vi.by_id.insert(id, key);
        }
        if vi.keys.len() != meta["count"].as_u64()? as usize || vi.index.size() != vi.keys.len() {
            return None;
        }
        vi.watermark = meta["watermark"].as_u64()?;
        Some(vi)
    }
}

/// The name a sealed file is bound to: its path under the database directory
/// (`vectors/<file>`), so a file renamed to stand for another index fails to open.
fn file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("vectors/{name}")
}

/// Allowed sets up to this size are searched exactly (perfect recall, cheap).
const EXACT_LIMIT: usize = 2048;

/// Allowed sets of at most 1/`EXACT_FRACTION` of the index are searched exactly too:
/// a filtered graph walk slows down as the allowed share shrinks (at 1M vectors, 1% took
/// 43 ms in the graph), while an exact pass costs about 1 µs per allowed vector.
const EXACT_FRACTION: usize = 50;

/// `v` scaled to unit length (unchanged when it is zero).
pub(crate) fn normalized(v: &[f32]) -> Vec<f32> {
    let n = norm(v);
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it
/// (a plain `sum()` is a serial chain of float additions).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Cosine similarity of two vectors.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (norm(a) * norm(b)).max(1e-12)
}

/// The BLAKE3 hash of a file's bytes, in hex.
fn file_checksum(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(index_error)?;
    std::fs::rename(&tmp, path).map_err(index_error)
}

/// File base name of an index: tenant and table are identifiers, so they are safe in a
/// file name once the tenant's dots and dashes are kept apart by the separator.
pub(crate) fn index_base(db_path: &Path, tenant: &str, table: &str, column: &str) -> PathBuf {
    db_path
        .join("vectors")
        .join(format!("{tenant}~{table}~{column}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rem_storage::PlainCodec;

    /// A deterministic pseudo-random unit-ish vector.
    fn vector(seed: u64, dims: usize) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..dims)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    /// A saved index loads back whole; one flipped byte anywhere in its data file (the
    /// fuzz finding: usearch's loader crashed on one) is refused before usearch reads it.
    #[test]
    fn a_damaged_index_file_is_refused_before_usearch_reads_it() {
        let options = EmbeddingOptions::default();
        let mut vi = VectorIndex::new(8, "m", &options).unwrap();
        for i in 0..50u64 {
            let id = EntityId::from_key("t", "x", &i.to_string());
            vi.upsert(id, &vector(i, 8)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("v");
        vi.save(&base, &PlainCodec).unwrap();
        let loaded = VectorIndex::load(&base, "m", 8, &options, &PlainCodec).unwrap();
        assert_eq!(loaded.len(), 50);
        let path = base.with_extension("usearch");
        let good = std::fs::read(&path).unwrap();
        for at in [0, good.len() / 3, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x5A;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                VectorIndex::load(&base, "m", 8, &options, &PlainCodec).is_none(),
                "byte {at}"
            );
        }
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(VectorIndex::load(&base, "m", 8, &options, &PlainCodec).is_none());
        std::fs::write(&path, &good).unwrap();
        assert_eq!(
            VectorIndex::load(&base, "m", 8, &options, &PlainCodec)
                .unwrap()
                .len(),
            50
        );
    }

    /// With an encrypting codec the saved index and keys files are sealed: a vector the
    /// index holds is in a plain file (which proves the scan) and in neither sealed
    /// file; the index loads back only through the codec that sealed it, not from a
    /// file renamed to stand for another index, and not from a sealed file with a
    /// flipped byte even when its checksum is made to match.
    #[test]
    fn sealed_index_files_hold_no_vector_and_open_only_with_their_key() {
        use rem_storage::{KdfParams, OpenMode, Password, Store, StoreOptions};
        let options = EmbeddingOptions::default();
        let mut vi = VectorIndex::new(8, "m", &options).unwrap();
        let ids: Vec<_> = (0..50u64)
            .map(|i| EntityId::from_key("t", "x", &i.to_string()))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            vi.upsert(*id, &vector(i as u64, 8)).unwrap();
        }
        // The index holds bf16 components: the upper halves of these f32s.
        let held = vi.vector(&ids[7]).unwrap();
        let needle: Vec<u8> = held
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let holds = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        vi.save(&plain, &PlainCodec).unwrap();
        let plain_index = std::fs::read(plain.with_extension("usearch")).unwrap();
        assert!(holds(&plain_index, &needle), "the scan finds the vector");
        let plain_keys = std::fs::read(plain.with_extension("keys")).unwrap();
        assert!(
            holds(&plain_keys, ids[7].as_bytes()),
            "the scan finds the id"
        );

        let store = Store::open(
            &dir.path().join("db"),
            OpenMode::Create,
            &StoreOptions {
                password: Some(Password::new("pw")),
                kdf: KdfParams {
                    m_kib: 7 * 1024,
                    t: 5,
                    p: 1,
                },
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let codec = store.codec();
        let sealed = dir.path().join("sealed");
        vi.save(&sealed, codec).unwrap();
        let index = std::fs::read(sealed.with_extension("usearch")).unwrap();
        assert!(!holds(&index, &needle));
        let keys = std::fs::read(sealed.with_extension("keys")).unwrap();
        assert!(!holds(&keys, ids[7].as_bytes()));
        let loaded = VectorIndex::load(&sealed, "m", 8, &options, codec).unwrap();
        assert_eq!(loaded.len(), 50);
        assert_eq!(loaded.vector(&ids[7]).unwrap(), held);
        let hits = loaded.search(&held, 1, None, None).unwrap();
        assert_eq!(hits[0].0, ids[7]);
        assert!(VectorIndex::load(&sealed, "m", 8, &options, &PlainCodec).is_none());
        assert!(VectorIndex::load(&plain, "m", 8, &options, codec).is_none());

        let other = dir.path().join("other");
        for ext in ["usearch", "keys", "json"] {
            std::fs::copy(sealed.with_extension(ext), other.with_extension(ext)).unwrap();
        }
        assert!(VectorIndex::load(&other, "m", 8, &options, codec).is_none());

        let mut bad = index.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x01;
        std::fs::write(sealed.with_extension("usearch"), &bad).unwrap();
        let json_path = sealed.with_extension("json");
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        meta["blake3"] = blake3::hash(&bad).to_hex().to_string().into();
        std::fs::write(&json_path, meta.to_string()).unwrap();
        assert!(VectorIndex::load(&sealed, "m", 8, &options, codec).is_none());
    }

    /// A small index updated thousands of times still finds each live vector.
    #[test]
    fn a_small_index_updated_many_times_still_finds_every_vector() {
        let dims = 16;
        let mut vi = VectorIndex::new(dims, "test", &EmbeddingOptions::default()).unwrap();
        let ids: Vec<EntityId> = (0..50).map(|_| EntityId::random()).collect();
        let mut last = HashMap::new();
        // Built the way a loaded index is (all at once), then updated one by one.
        let first: Vec<(EntityId, Vec<f32>)> =
            ids.iter().map(|id| (*id, vector(7, dims))).collect();
        vi.upsert_many(&first).unwrap();
        for round in 0..2000u64 {
            for (i, id) in ids.iter().enumerate() {
                let v = vector(i as u64 * 10 + round % 3, dims);
                vi.upsert(*id, &v).unwrap();
                last.insert(*id, v);
            }
        }
        assert_eq!(vi.len(), 50);
        for id in &ids {
            let hits = vi.search(&last[id], 1, None, None).unwrap();
            assert_eq!(hits[0].0, *id);
            assert!(hits[0].1 > 0.99, "{}", hits[0].1);
        }
    }

    /// The same with the updates coming from eight threads in turn (as writers do, each
    /// refreshing the index under the write lock).
    #[test]
    fn updates_from_many_threads_keep_every_vector_findable() {
        let dims = 16;
        let vi = std::sync::Mutex::new(
            VectorIndex::new(dims, "test", &EmbeddingOptions::default()).unwrap(),
        );
        let ids: Vec<EntityId> = (0..50).map(|_| EntityId::random()).collect();
        let first: Vec<(EntityId, Vec<f32>)> =
            ids.iter().map(|id| (*id, vector(7, dims))).collect();
        vi.lock().unwrap().upsert_many(&first).unwrap();
        let last = std::sync::Mutex::new(HashMap::new());
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (vi, last, ids) = (&vi, &last, &ids);
                s.spawn(move || {
                    for round in 0..300u64 {
                        for (i, id) in ids
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| (*i as u64 + round + t).is_multiple_of(4))
                        {
                            let v = vector(t * 1_000_000 + round * 1000 + i as u64, dims);
                            let mut g = vi.lock().unwrap();
                            g.upsert(*id, &v).unwrap();
                            last.lock().unwrap().insert(*id, v);
                        }
                    }
                });
            }
        });
        let vi = vi.into_inner().unwrap();
        let last = last.into_inner().unwrap();
        assert_eq!(vi.len(), 50);
        for id in &ids {
            let hits = vi.search(&last[id], 1, None, None).unwrap();
            assert_eq!(hits[0].0, *id);
        }
    }
}
