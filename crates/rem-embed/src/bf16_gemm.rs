//! Linear layers in bf16 with f32 accumulation, for CPUs with AVX-512 BF16.
//!
//! A linear layer computes `out[t] = x[t] · Wᵀ + b` for every token row `t`. The weights
//! are rounded to bf16 once, at load, and packed in panels of 16 output columns; each
//! panel holds, for every pair of input features `(2i, 2i+1)`, the 16 columns' two
//! weights side by side, which is the operand layout of `vdpbf16ps` (16 lanes, each
//! adding `a₀·b₀ + a₁·b₁` to an f32 accumulator). Activations are rounded to bf16 pairs
//! per call. Sums stay in f32, so the only rounding is of the operands (8 significant
//! bits), which keeps sentence vectors within cosine 0.9999 of the f32 model (tested
//! against sentence-transformers' own vectors).
//!
//! The kernel keeps an 8-row × 48-column block of the output in 24 registers and walks
//! the shared dimension once per block: per pair of features it loads three weight
//! vectors and broadcasts eight activation pairs.
//!
//! This is the workspace's only `unsafe` code (`unsafe_code` is denied elsewhere): the
//! SIMD intrinsics and the raw pointers of the kernel.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output columns per panel (one 512-bit register of f32).
const LANES: usize = 16;
/// Rows of the output kept in registers by the kernel.
const MR: usize = 8;
/// Panels kept in registers by the kernel.
const NP: usize = 3;

/// True when this CPU runs the bf16 kernel (AVX-512 F and BF16).
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// bf16 bits of `x`, rounded to nearest even (as `vcvtne2ps2bf16` does).
fn bf16_bits(x: f32) -> u32 {
    half::bf16::from_f32(x).to_bits() as u32
}

/// Number of feature pairs for `k` input features.
pub(crate) fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// Rounds `rows` rows of `k` features to bf16 pairs (`pairs(k)` words per row; an odd
/// last feature is paired with zero).
pub(crate) fn to_pairs(x: &[f32], rows: usize, k: usize, out: &mut Vec<u32>) {
    let kp = pairs(k);
    out.clear();
    out.reserve(rows * kp);
    for row in x[..rows * k].chunks_exact(k) {
        let mut it = row.chunks_exact(2);
        for p in &mut it {
            out.push(bf16_bits(p[0]) | (bf16_bits(p[1]) << 16));
        }
        if let [last] = it.remainder() {
            out.push(bf16_bits(*last));
        }
    }
}

/// A linear layer with packed bf16 weights.
pub(crate) struct PackedLinear {
    /// Output columns.
    n: usize,
    /// Input features.
    k: usize,
    /// `ceil(n / 16)` panels of `pairs(k) × 16` words.
    panels: Vec<u32>,
    /// Bias, padded with zeros to a whole number of panels.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`n` rows of `k`, the PyTorch `Linear` layout) and `bias` (`n`).
    pub(crate) fn new(weight: &[f32], bias: &[f32], n: usize, k: usize) -> PackedLinear {
        assert_eq!(weight.len(), n * k, "weight shape");
        assert_eq!(bias.len(), n, "bias shape");
        let kp = pairs(k);
        let np = n.div_ceil(LANES);
        let mut panels = vec![0u32; np * kp * LANES];
        for col in 0..n {
            let (panel, lane) = (col / LANES, col % LANES);
            let w = &weight[col * k..(col + 1) * k];
            for p in 0..kp {
                let lo = bf16_bits(w[2 * p]);
                let hi = w.get(2 * p + 1).map_or(0, |&v| bf16_bits(v));
                panels[(panel * kp + p) * LANES + lane] = lo | (hi << 16);
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(np * LANES, 0.0);
        PackedLinear {
            n,
            k,
            panels,
            bias: padded,
        }
    }

    /// Output columns.
    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// `out[t] = x[t] · Wᵀ + b` for `rows` rows; `xb` holds the rows as [`to_pairs`] made
    /// them, `out` receives `rows × n` values.
    pub(crate) fn forward(&self, xb: &[u32], rows: usize, out: &mut [f32]) {
        let kp = pairs(self.k);
        assert!(xb.len() >= rows * kp, "activation rows");
        assert!(out.len() >= rows * self.n, "output rows");
        assert!(supported(), "the bf16 kernel needs AVX-512 BF16");
        // SAFETY: the CPU features are checked above; every pointer offset the kernel
        // forms stays inside `xb` (rows × kp), `panels` (np × kp × 16), `bias` (np × 16)
        // and `out` (rows × n, the last panel's columns masked to n).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.forward_avx512(xb, rows, out)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn forward_avx512(&self, xb: &[u32], rows: usize, out: &mut [f32]) {
        let np = self.n.div_ceil(LANES);
        let mut p0 = 0;
        while p0 < np {
            let panels = (np - p0).min(NP);
            let mut r0 = 0;
            while r0 < rows {
                let block_rows = (rows - r0).min(MR);
                let job = Block {
                    xb: xb.as_ptr(),
                    out: out.as_mut_ptr(),
                    r0,
                    p0,
                };
                macro_rules! dispatch {
                    ($($r:literal)*) => {
                        match (block_rows, panels) {
                            $(($r, 1) => self.block::<$r, 1>(&job),
                              ($r, 2) => self.block::<$r, 2>(&job),
                              ($r, _) => self.block::<$r, 3>(&job),)*
                            _ => unreachable!(),
                        }
                    };
                }
                dispatch!(1 2 3 4 5 6 7 8);
                r0 += block_rows;
            }
            p0 += panels;
        }
    }

    /// One `R`-row × `P`-panel block of the output.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn block<const R: usize, const P: usize>(&self, job: &Block) {
        let kp = pairs(self.k);
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let xrow = job.xb.add(job.r0 * kp);
        let wpanel = self.panels.as_ptr().add(job.p0 * kp * LANES);
        for p in 0..kp {
            let mut b = [_mm512_setzero_ps(); P];
            for (c, bc) in b.iter_mut().enumerate() {
                *bc = _mm512_castsi512_ps(_mm512_loadu_si512(
                    wpanel.add((c * kp + p) * LANES) as *const _,
                ));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(*xrow.add(r * kp + p) as i32));
                for (acc_rc, bc) in acc_r.iter_mut().zip(&b) {
                    *acc_rc = _mm512_dpbf16_ps(*acc_rc, a, std::mem::transmute::<__m512, __m512bh>(*bc));
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let orow = job.out.add((job.r0 + r) * self.n);
            for (c, acc_rc) in acc_r.iter().enumerate() {
                let col = (job.p0 + c) * LANES;
                let v = _mm512_add_ps(*acc_rc, _mm512_loadu_ps(self.bias.as_ptr().add(col)));
                let valid = (self.n - col).min(LANES);
                if valid == LANES {
                    _mm512_storeu_ps(orow.add(col), v);
                } else {
                    _mm512_mask_storeu_ps(orow.add(col), ((1u32 << valid) - 1) as u16, v);
                }
            }
        }
    }
}

/// Where one kernel block reads and writes.
#[cfg(target_arch = "x86_64")]
struct Block {
    xb: *const u32,
    out: *mut f32,
    r0: usize,
    p0: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The kernel agrees with an f64 product of the same bf16-rounded operands, for
    /// shapes with partial row blocks, partial panel groups and an odd feature count.
    #[test]
    fn matches_a_reference_product() {
        if !supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let mut seed = 7;
        for &(rows, n, k) in &[(1, 16, 2), (13, 40, 7), (21, 384, 384), (9, 1536, 384), (17, 100, 1536)] {
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let b: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
            let lin = PackedLinear::new(&w, &b, n, k);
            let mut xb = Vec::new();
            to_pairs(&x, rows, k, &mut xb);
            let mut out = vec![f32::NAN; rows * n];
            lin.forward(&xb, rows, &mut out);
            let r = |v: f32| half::bf16::from_f32(v).to_f32() as f64;
            for t in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k).map(|i| r(x[t * k + i]) * r(w[c * k + i])).sum::<f64>()
                        + b[c] as f64;
                    let got = out[t * n + c] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{rows}x{n}x{k} at ({t},{c}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
