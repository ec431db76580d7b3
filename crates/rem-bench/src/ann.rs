//! ANN benchmark: the engine's vector index (usearch HNSW) against exact search and, in the
//! same run, a reference library (hnswlib, via `scripts/ann_reference.py`) on the same
//! vectors with the same parameters.
//!
//! Vectors are synthetic clustered unit vectors (seeded), as the issue allows; queries are
//! drawn from the same distribution. recall@10 is measured against exact top-10.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rem::{EmbeddingOptions, EntityId, VectorIndex, VectorQuantization};

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` unit vectors around `clusters` random centres (noise 0.5 per component relative
/// to unit-variance centres), flattened.
pub(crate) fn clustered(n: usize, dims: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dims).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let mut out = Vec::with_capacity(n * dims);
    for _ in 0..n {
        let c = &centres[rng.gen_range(0..clusters)];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.5 * gaussian(&mut rng)).collect();
        normalise(&mut v);
        out.extend(v);
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Exact top-k by brute force (all cores).
fn exact_topk(data: &[f32], dims: usize, queries: &[f32], k: usize) -> Vec<Vec<usize>> {
    let nq = queries.len() / dims;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut out = vec![Vec::new(); nq];
    std::thread::scope(|s| {
        for (t, chunk) in out.chunks_mut(nq.div_ceil(threads)).enumerate() {
            let start = t * nq.div_ceil(threads);
            s.spawn(move || {
                for (i, slot) in chunk.iter_mut().enumerate() {
                    let q = &queries[(start + i) * dims..(start + i + 1) * dims];
                    let mut scored: Vec<(f32, usize)> = data
                        .chunks_exact(dims)
                        .enumerate()
                        .map(|(j, v)| (dot(q, v), j))
                        .collect();
                    scored.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
                    scored.truncate(k);
                    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                    // A fresh vector: collecting in place would keep the 1M-entry
                    // allocation alive for every query.
                    let mut top = Vec::with_capacity(k);
                    top.extend(scored.iter().map(|(_, j)| *j));
                    *slot = top;
                }
            });
        }
    });
    out
}

fn id_of(i: usize) -> EntityId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(i as u64).to_be_bytes());
    EntityId::from_slice(&b).unwrap_or_else(EntityId::random)
}

fn index_of(id: &EntityId) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_be_bytes(b) as usize
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn write_f32(path: &Path, data: &[f32]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in data {
        f.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Options of the `ann` scenario.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Vectors.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Dimensions.
    #[arg(long, default_value_t = 384)]
    dims: usize,
    /// Queries.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// HNSW M.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// ef_search values to measure.
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,160")]
    ef_search: Vec<usize>,
    /// Vector precision inside the index: bf16, f16 or f32 (as P8_VECTOR_QUANTIZATION).
    #[arg(long, default_value = "bf16")]
    quantization: String,
    /// Build threads (0 = all cores); the reference uses the same number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// ef_search for the filtered-search table.
    #[arg(long, default_value_t = 128)]
    filtered_ef: usize,
    /// Also run the hnswlib reference (scripts/ann_reference.py; REM_BENCH_PYTHON picks the interpreter).
    #[arg(long)]
    reference: bool,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Keep the built index here (a path without extension) and load it on the next run
    /// with the same data options instead of building again (build time is then not measured).
    #[arg(long)]
    index_cache: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let &Args {
        n,
        dims,
        queries: nq,
        m,
        ef_construction: efc,
        seed,
        ..
    } = args;
    let efs = &args.ef_search;
    let threads = match args.threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        t => t,
    };
    let quantization = VectorQuantization::parse(&args.quantization)
        .with_context(|| format!("unknown quantization '{}'", args.quantization))?;
    println!("ANN benchmark: {n} clustered unit vectors of {dims} dims, {nq} queries, M={m}, ef_construction={efc}");
    let data = clustered(n, dims, (n / 1000).clamp(10, 1000), seed);
    let queries = clustered(nq, dims, (n / 1000).clamp(10, 1000), seed); // same centres: same seed
    let queries: Vec<f32> = {
        // Fresh points around the same centres: perturb the query draw.
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut q = queries;
        for v in q.chunks_exact_mut(dims) {
            v.iter_mut().for_each(|x| *x += 0.05 * gaussian(&mut rng));
            normalise(v);
        }
        q
    };
    let k = 10;

    let t = Instant::now();
    let truth = exact_topk(&data, dims, &queries, k);
    let exact_all_cores = t.elapsed();
    // Single-thread exact QPS on a sample of queries.
    let sample = nq.min(20);
    let t = Instant::now();
    for q in queries.chunks_exact(dims).take(sample) {
        let mut best = (f32::MIN, 0usize);
        for (j, v) in data.chunks_exact(dims).enumerate() {
            let s = dot(q, v);
            if s > best.0 {
                best = (s, j);
            }
        }
        std::hint::black_box(best);
    }
    let exact_qps = sample as f64 / t.elapsed().as_secs_f64();
    println!("exact search: {exact_qps:.1} QPS single-thread (truth for {nq} queries on all cores in {:.1} s)", exact_all_cores.as_secs_f64());

    let options = EmbeddingOptions {
        quantization,
        hnsw_m: m,
        hnsw_ef_construction: efc,
        hnsw_ef_search: efs[0],
        ..EmbeddingOptions::default()
    };
    let cache_model = format!("bench-n{n}-d{dims}-m{m}-efc{efc}-seed{seed}");
    if let Some(index) = args
        .index_cache
        .as_deref()
        .and_then(|base| VectorIndex::load(base, &cache_model, dims, &options, &rem::PlainCodec))
    {
        println!(
            "rem (usearch, {}) loaded from the cache: memory {:.1} MB",
            quantization.name(),
            index.memory_usage() as f64 / 1e6
        );
        return measure(args, &index, &data, &queries, &truth, exact_qps, threads);
    }
    let mut index = VectorIndex::new(dims, &cache_model, &options)?;
    let t = Instant::now();
    // The engine builds an index from stored vectors in chunks on all cores; do the same.
    let items: Vec<(EntityId, Vec<f32>)> = data
        .chunks_exact(dims)
        .enumerate()
        .map(|(i, v)| (id_of(i), v.to_vec()))
        .collect();
    for chunk in items.chunks(8192) {
        if threads == 1 {
            for (id, v) in chunk {
                index.upsert(*id, v)?;
            }
        } else {
            index.upsert_many(chunk)?;
        }
    }
    drop(items);
    let build = t.elapsed();
    let raw = n * dims * 4;
    println!("usearch SIMD kernels: {}", index.hardware_acceleration());
    println!(
        "rem (usearch, {}) build: {:.1} s on {threads} thread(s) ({:.0} vectors/s); memory {:.1} MB = {:.2}x the raw vectors ({:.1} MB)",
        quantization.name(),
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64(),
        index.memory_usage() as f64 / 1e6,
        index.memory_usage() as f64 / raw as f64,
        raw as f64 / 1e6
    );
    if let Some(base) = &args.index_cache {
        index.save(base, &rem::PlainCodec)?;
    }
    measure(args, &index, &data, &queries, &truth, exact_qps, threads)
}

/// Recall and latency at each ef, the reference run, then the filtered table.
fn measure(
    args: &Args,
    index: &VectorIndex,
    data: &[f32],
    queries: &[f32],
    truth: &[Vec<usize>],
    exact_qps: f64,
    threads: usize,
) -> Result<()> {
    let &Args {
        n, dims, m, seed, ..
    } = args;
    let (nq, efc) = (args.queries, args.ef_construction);
    let efs = &args.ef_search;
    let k = 10;
    println!("\n| library | ef_search | recall@10 | QPS (1 thread) | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| exact (brute force) | - | 1.000 | {exact_qps:.1} | {:.2} | - |",
        1e3 / exact_qps
    );
    for &ef in efs {
        let mut lat = Vec::with_capacity(nq);
        let mut hits = 0usize;
        let t = Instant::now();
        for (qi, q) in queries.chunks_exact(dims).enumerate() {
            let s = Instant::now();
            let found = index.search(q, k, None, Some(ef))?;
            lat.push(s.elapsed());
            let truth_set: HashSet<usize> = truth[qi].iter().copied().collect();
            hits += found
                .iter()
                .filter(|(id, _)| truth_set.contains(&index_of(id)))
                .count();
        }
        let qps = nq as f64 / t.elapsed().as_secs_f64();
        let recall = hits as f64 / (nq * k) as f64;
        println!(
            "| rem (usearch) | {ef} | {recall:.3} | {qps:.0} | {:.3} | {:.3} |",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
    }

    if args.reference {
        let dir = tempfile::tempdir()?;
        write_f32(&dir.path().join("data.f32"), data)?;
        write_f32(&dir.path().join("queries.f32"), queries)?;
        let truth_flat: Vec<f32> = truth.iter().flatten().map(|&j| j as f32).collect();
        write_f32(&dir.path().join("truth.f32"), &truth_flat)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ann_reference.py");
        let python = std::env::var("REM_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let efs_arg: Vec<String> = efs.iter().map(|e| e.to_string()).collect();
        let out = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .args([
                n.to_string(),
                dims.to_string(),
                nq.to_string(),
                m.to_string(),
                efc.to_string(),
                efs_arg.join(","),
                threads.to_string(),
            ])
            .output()
            .with_context(|| format!("running {python} {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "reference run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    filtered(index, data, queries, dims, args.filtered_ef, seed)
}

/// Recall and latency of filtered search at 50%, 10% and 1% selectivity: a random subset
/// of ids is allowed; the truth is exact search within that subset.
fn filtered(
    index: &VectorIndex,
    data: &[f32],
    queries: &[f32],
    dims: usize,
    ef: usize,
    seed: u64,
) -> Result<()> {
    let n = data.len() / dims;
    let k = 10;
    let nq = (queries.len() / dims).min(200);
    println!("\nFiltered search (ef_search {ef}, {nq} queries; sets of at most 2,048 ids or 2% of the index are searched exactly, larger ones inside HNSW)");
    println!("\n| selectivity | allowed ids | recall@10 | QPS (1 thread) | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut rng = StdRng::seed_from_u64(seed ^ 0xf11e);
    for pct_kept in [50u32, 10, 1] {
        let kept: Vec<usize> = (0..n)
            .filter(|_| rng.gen_range(0..100) < pct_kept)
            .collect();
        let allowed: HashSet<EntityId> = kept.iter().map(|&i| id_of(i)).collect();
        let subset: Vec<f32> = kept
            .iter()
            .flat_map(|&i| data[i * dims..(i + 1) * dims].iter().copied())
            .collect();
        let truth = exact_topk(&subset, dims, &queries[..nq * dims], k);
        let mut lat = Vec::with_capacity(nq);
        let mut hits = 0usize;
        let t = Instant::now();
        for (qi, q) in queries.chunks_exact(dims).take(nq).enumerate() {
            let s = Instant::now();
            let found = index.search(q, k, Some(&allowed), Some(ef))?;
            lat.push(s.elapsed());
            let truth_set: HashSet<usize> = truth[qi].iter().map(|&j| kept[j]).collect();
            hits += found
                .iter()
                .filter(|(id, _)| truth_set.contains(&index_of(id)))
                .count();
        }
        let qps = nq as f64 / t.elapsed().as_secs_f64();
        println!(
            "| {pct_kept}% | {} | {:.3} | {qps:.0} | {:.3} | {:.3} |",
            kept.len(),
            hits as f64 / (nq * k) as f64,
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
    }
    Ok(())
}
