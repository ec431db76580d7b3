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

/// bf16 bits of `x`, rounded to nearest even (as `vcvtne2ps2bf16` does; the model's
/// values are finite, so NaN needs no care).
#[inline(always)]
fn bf16_bits(x: f32) -> u32 {
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1))) >> 16
}

/// Number of feature pairs for `k` input features.
pub(crate) fn pairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// Rows of `x` rounded up to whole kernel blocks: the row count activation and output
/// buffers are sized for.
pub(crate) fn padded_rows(rows: usize) -> usize {
    rows.div_ceil(MR) * MR
}

/// Rounds `rows` rows of `k` features to bf16 pairs in the kernel's layout: blocks of 8
/// rows, within a block feature pair by feature pair, the 8 rows' pairs side by side.
/// Missing rows of the last block are zero; an odd last feature is paired with zero.
#[inline(always)]
pub(crate) fn to_pairs(x: &[f32], rows: usize, k: usize, out: &mut Vec<u32>) {
    let kp = pairs(k);
    out.clear();
    out.resize(padded_rows(rows) * kp, 0);
    for (t, row) in x[..rows * k].chunks_exact(k).enumerate() {
        let block = &mut out[(t / MR) * MR * kp..][..MR * kp];
        let r = t % MR;
        let mut it = row.chunks_exact(2);
        for (p, pair) in (&mut it).enumerate() {
            block[p * MR + r] = bf16_bits(pair[0]) | (bf16_bits(pair[1]) << 16);
        }
        if let [last] = it.remainder() {
            block[(kp - 1) * MR + r] = bf16_bits(*last);
        }
    }
}

/// A linear layer with packed bf16 weights.
pub(crate) struct PackedLinear {
    /// Output columns.
    n: usize,
    /// Input features.
    k: usize,
    /// Groups of up to three panels of 16 columns; within a group, feature pair by
    /// feature pair, the panels' 16 words side by side.
    packed: Vec<u32>,
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
        let mut packed = vec![0u32; np * kp * LANES];
        for col in 0..n {
            let panel = col / LANES;
            let (group, in_group) = (panel / NP, panel % NP);
            let width = (np - group * NP).min(NP);
            let base = group * NP * kp * LANES;
            let w = &weight[col * k..(col + 1) * k];
            for p in 0..kp {
                let lo = bf16_bits(w[2 * p]);
                let hi = w.get(2 * p + 1).map_or(0, |&v| bf16_bits(v));
                packed[base + (p * width + in_group) * LANES + col % LANES] = lo | (hi << 16);
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(np * LANES, 0.0);
        PackedLinear {
            n,
            k,
            packed,
            bias: padded,
        }
    }

    /// Output columns.
    pub(crate) fn out_features(&self) -> usize {
        self.n
    }

    /// `out[t] = x[t] · Wᵀ + b` for `rows` rows; `xb` holds the rows as [`to_pairs`] laid
    /// them out. `out` gets `padded_rows(rows) × n` values (rows past `rows` hold the bias).
    pub(crate) fn forward(&self, xb: &[u32], rows: usize, out: &mut Vec<f32>) {
        let kp = pairs(self.k);
        let rows = padded_rows(rows);
        assert!(xb.len() >= rows * kp, "activation rows");
        out.resize(rows * self.n, 0.0);
        assert!(supported(), "the bf16 kernel needs AVX-512 BF16");
        // SAFETY: the CPU features are checked above. The kernel reads `kp × 8` words
        // of `xb` per block of 8 rows (within `rows × kp`), `kp × 16 × width` words of
        // `packed` per group and 16 × width values of `bias` (both sized for whole
        // panels), and writes 8 rows of `out` at stride `n`, masking the columns of the
        // last panel past `n`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.forward_avx512(xb, rows, out)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn forward_avx512(&self, xb: &[u32], rows: usize, out: &mut [f32]) {
        let kp = pairs(self.k);
        let np = self.n.div_ceil(LANES);
        let mut panel = 0;
        while panel < np {
            let width = (np - panel).min(NP);
            let w = self.packed.as_ptr().add(panel * kp * LANES);
            let bias = self.bias.as_ptr().add(panel * LANES);
            let mut r0 = 0;
            while r0 < rows {
                let x = xb.as_ptr().add(r0 * kp);
                let o = out.as_mut_ptr().add(r0 * self.n + panel * LANES);
                let last = (self.n - (panel + width - 1) * LANES).min(LANES);
                match width {
                    1 => kernel::<1>(x, w, kp, o, self.n, bias, last),
                    2 => kernel::<2>(x, w, kp, o, self.n, bias, last),
                    _ => kernel::<3>(x, w, kp, o, self.n, bias, last),
                }
                r0 += MR;
            }
            panel += width;
        }
    }
}

/// An 8-row × `P`-panel block: `x` points at the rows' packed pairs, `w` at the panel
/// group, `out` at the block's first value (row stride `ldo`); `last` columns of the
/// last panel are stored (16 for a full panel).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline(never)]
// Register blocking reads clearest as indexed loops over the fixed block shape.
#[allow(clippy::needless_range_loop)]
unsafe fn kernel<const P: usize>(
    x: *const u32,
    w: *const u32,
    kp: usize,
    out: *mut f32,
    ldo: usize,
    bias: *const f32,
    last: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); P]; MR];
    for p in 0..kp {
        let wp = w.add(p * P * LANES);
        let mut b = [_mm512_setzero_ps(); P];
        for c in 0..P {
            b[c] = _mm512_loadu_ps(wp.add(c * LANES) as *const f32);
        }
        let xp = x.add(p * MR);
        for r in 0..MR {
            let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(*xp.add(r) as i32));
            for c in 0..P {
                acc[r][c] =
                    _mm512_dpbf16_ps(acc[r][c], a, std::mem::transmute::<__m512, __m512bh>(b[c]));
            }
        }
    }
    for r in 0..MR {
        let orow = out.add(r * ldo);
        for c in 0..P {
            let v = _mm512_add_ps(acc[r][c], _mm512_loadu_ps(bias.add(c * LANES)));
            if c + 1 < P || last == LANES {
                _mm512_storeu_ps(orow.add(c * LANES), v);
            } else {
                _mm512_mask_storeu_ps(orow.add(c * LANES), ((1u32 << last) - 1) as u16, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
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
        for &(rows, n, k) in &[
            (1, 16, 2),
            (13, 40, 7),
            (21, 384, 384),
            (9, 1536, 384),
            (17, 100, 1536),
        ] {
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let b: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
            let lin = PackedLinear::new(&w, &b, n, k);
            let mut xb = Vec::new();
            to_pairs(&x, rows, k, &mut xb);
            let mut out = Vec::new();
            lin.forward(&xb, rows, &mut out);
            let r = |v: f32| half::bf16::from_f32(v).to_f32() as f64;
            for t in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| r(x[t * k + i]) * r(w[c * k + i]))
                        .sum::<f64>()
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
