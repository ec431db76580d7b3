//! The BERT encoder forward pass for sentence embeddings, written for throughput on CPUs
//! with AVX-512 BF16 (see `bf16_gemm`). Used by [`crate::LocalBert`] when the CPU and
//! the model's configuration allow it; candle runs the model otherwise.
//!
//! Why not candle here: at the batch sizes the engine embeds (32 short texts), candle
//! spends most of its time outside the matrix products (one tensor allocation per
//! operation, strided copies for attention heads, a serial GELU), and its CPU matrix
//! products are f32 only. This pass works on unpadded token rows (the sequences of a
//! batch laid end to end, so no work is spent on padding and no mask is needed),
//! reuses its buffers across layers, and runs the linear layers — 95% of the arithmetic
//! — in bf16 with f32 sums. Everything else (embeddings, layer norms, attention scores,
//! softmax, GELU, pooling) is f32, as in the reference model.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::bf16_gemm::{to_pairs, PackedLinear};

/// The parts of a Hugging Face BERT `config.json` this pass reads.
#[derive(Debug, Deserialize)]
pub(crate) struct BertConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_position")]
    position_embedding_type: String,
    max_position_embeddings: usize,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Why this pass cannot run the model, if it cannot.
    pub(crate) fn unsupported(&self) -> Option<String> {
        if self.hidden_act != "gelu" {
            return Some(format!("activation {}", self.hidden_act));
        }
        if self.position_embedding_type != "absolute" {
            return Some(format!(
                "position embeddings {}",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Some("hidden size not divisible by the number of heads".into());
        }
        None
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections in one product (3 × hidden outputs).
    qkv: PackedLinear,
    attn_out: PackedLinear,
    attn_norm: LayerNorm,
    intermediate: PackedLinear,
    output: PackedLinear,
    out_norm: LayerNorm,
}

/// A loaded model.
pub(crate) struct FastBert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
    /// Buffers of finished passes, reused by the next ones (one per concurrent pass):
    /// fresh multi-megabyte buffers per call cost page faults.
    scratch: std::sync::Mutex<Vec<Scratch>>,
}

/// Buffers reused across the layers of one forward pass.
#[derive(Default)]
struct Scratch {
    xb: Vec<u32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    proj: Vec<f32>,
    inter: Vec<f32>,
    attention: AttentionScratch,
}

impl FastBert {
    /// Loads the weights of `config` from `tensors` (names as `BertModel` saves them,
    /// with or without a `bert.` prefix; f32, f16 or bf16).
    pub(crate) fn load(tensors: &SafeTensors, config: &BertConfig) -> Result<FastBert, String> {
        let names: HashMap<String, String> = tensors
            .names()
            .into_iter()
            .map(|n| {
                (
                    n.strip_prefix("bert.").unwrap_or(n).to_string(),
                    n.to_string(),
                )
            })
            .collect();
        let get = |name: &str, len: usize| -> Result<Vec<f32>, String> {
            let full = names
                .get(name)
                .ok_or_else(|| format!("tensor {name} is missing"))?;
            let view = tensors.tensor(full).map_err(|e| format!("{name}: {e}"))?;
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => return Err(format!("{name}: unsupported type {other:?}")),
            };
            if values.len() != len {
                return Err(format!(
                    "{name} has {} values, expected {len}",
                    values.len()
                ));
            }
            Ok(values)
        };
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        let norm = |prefix: &str| -> Result<LayerNorm, String> {
            // Old checkpoints name the layer-norm parameters gamma and beta.
            let pick = |a: &str, b: &str| {
                get(&format!("{prefix}.{a}"), h).or_else(|_| get(&format!("{prefix}.{b}"), h))
            };
            Ok(LayerNorm {
                weight: pick("weight", "gamma")?,
                bias: pick("bias", "beta")?,
            })
        };
        let linear = |prefix: &str, n: usize, k: usize| -> Result<PackedLinear, String> {
            Ok(PackedLinear::new(
                &get(&format!("{prefix}.weight"), n * k)?,
                &get(&format!("{prefix}.bias"), n)?,
                n,
                k,
            ))
        };
        let word_name = "embeddings.word_embeddings.weight";
        let vocab = names
            .get(word_name)
            .and_then(|full| tensors.tensor(full).ok())
            .and_then(|t| t.shape().first().copied())
            .ok_or_else(|| format!("tensor {word_name} is missing"))?;
        let types = names
            .get("embeddings.token_type_embeddings.weight")
            .and_then(|full| tensors.tensor(full).ok())
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut w = get(&format!("{p}.attention.self.query.weight"), h * h)?;
            w.extend(get(&format!("{p}.attention.self.key.weight"), h * h)?);
            w.extend(get(&format!("{p}.attention.self.value.weight"), h * h)?);
            let mut b = get(&format!("{p}.attention.self.query.bias"), h)?;
            b.extend(get(&format!("{p}.attention.self.key.bias"), h)?);
            b.extend(get(&format!("{p}.attention.self.value.bias"), h)?);
            layers.push(Layer {
                qkv: PackedLinear::new(&w, &b, 3 * h, h),
                attn_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&format!("{p}.intermediate.dense"), inter, h)?,
                output: linear(&format!("{p}.output.dense"), h, inter)?,
                out_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(FastBert {
            word: get(word_name, vocab * h)?,
            position: get(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings * h,
            )?,
            token_type: if types > 0 {
                get("embeddings.token_type_embeddings.weight", types * h)?
            } else {
                Vec::new()
            },
            emb_norm: norm("embeddings.LayerNorm")?,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            max_positions: config.max_position_embeddings,
            scratch: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Mean-pooled, L2-normalised vectors of tokenised sequences (token ids and token
    /// type ids, special tokens included, no padding), as sentence-transformers'
    /// `Pooling(mean)` and `Normalize` compute them.
    pub(crate) fn embed(&self, seqs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>, String> {
        if !crate::bf16_gemm::supported() {
            return Err("this CPU has no AVX-512 BF16".into());
        }
        // SAFETY: the only requirement of a `target_feature` function is that the CPU
        // has the features, checked just above.
        #[allow(unsafe_code)]
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.embed_avx512(seqs)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Err("the fast engine runs on x86-64 only".into())
    }

    /// The pass compiled for AVX-512: the element-wise loops (layer norm, GELU,
    /// attention) are inlined here and vectorised 16 lanes wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    fn embed_avx512(&self, seqs: &[(&[u32], &[u32])]) -> Result<Vec<Vec<f32>>, String> {
        let h = self.hidden;
        let vocab = self.word.len() / h;
        let types = self.token_type.len() / h;
        let total: usize = seqs.iter().map(|(ids, _)| ids.len()).sum();
        // Embeddings: word + position + token type, then layer norm.
        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for (ids, type_ids) in seqs {
            if ids.len() > self.max_positions {
                return Err(format!(
                    "a sequence of {} tokens is longer than the model's {} positions",
                    ids.len(),
                    self.max_positions
                ));
            }
            for (pos, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= vocab {
                    return Err(format!("token id {id} is outside the vocabulary"));
                }
                let out = &mut x[row * h..(row + 1) * h];
                out.copy_from_slice(&self.word[id * h..(id + 1) * h]);
                add(out, &self.position[pos * h..(pos + 1) * h]);
                let t = type_ids.get(pos).copied().unwrap_or(0) as usize;
                if t < types {
                    add(out, &self.token_type[t * h..(t + 1) * h]);
                }
                row += 1;
            }
        }
        layer_norm(&mut x, h, &self.emb_norm, self.eps);
        let lens: Vec<usize> = seqs.iter().map(|(ids, _)| ids.len()).collect();
        let mut s = self
            .scratch
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        for layer in &self.layers {
            self.layer(layer, &mut x, total, &lens, &mut s);
        }
        if let Ok(mut pool) = self.scratch.lock() {
            pool.push(s);
        }
        // Mean pooling over each sequence's tokens, then L2 normalisation.
        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        for &len in &lens {
            let mut v = vec![0f32; h];
            for r in start..start + len {
                add(&mut v, &x[r * h..(r + 1) * h]);
            }
            let inv = 1.0 / len.max(1) as f32;
            v.iter_mut().for_each(|e| *e *= inv);
            let norm = v.iter().map(|e| e * e).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|e| *e /= norm);
            out.push(v);
            start += len;
        }
        Ok(out)
    }

    /// One encoder layer over all token rows, in place.
    #[inline(always)]
    fn layer(&self, l: &Layer, x: &mut [f32], rows: usize, lens: &[usize], s: &mut Scratch) {
        let h = self.hidden;
        // Self-attention.
        to_pairs(x, rows, h, &mut s.xb);
        l.qkv.forward(&s.xb, rows, &mut s.qkv);
        s.ctx.resize(rows * h, 0.0);
        self.attention(&s.qkv, lens, &mut s.ctx, &mut s.attention);
        to_pairs(&s.ctx, rows, h, &mut s.xb);
        l.attn_out.forward(&s.xb, rows, &mut s.proj);
        add(x, &s.proj);
        layer_norm(x, h, &l.attn_norm, self.eps);
        // Feed-forward.
        to_pairs(x, rows, h, &mut s.xb);
        let inter = l.intermediate.out_features();
        l.intermediate.forward(&s.xb, rows, &mut s.inter);
        gelu(&mut s.inter[..rows * inter]);
        to_pairs(&s.inter, rows, inter, &mut s.xb);
        l.output.forward(&s.xb, rows, &mut s.proj);
        add(x, &s.proj);
        layer_norm(x, h, &l.out_norm, self.eps);
    }

    /// Scaled dot-product attention of every sequence with itself, per head. The keys
    /// of a head are first transposed (one row per dimension), so a query's scores are
    /// built by whole-row multiply-adds across all keys at once rather than by one
    /// horizontal dot product per key.
    #[inline(always)]
    fn attention(&self, qkv: &[f32], lens: &[usize], ctx: &mut [f32], s: &mut AttentionScratch) {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let stride = 3 * h;
        ctx.fill(0.0);
        let mut start = 0;
        for &len in lens {
            s.scores.resize(len, 0.0);
            s.keys_t.resize(dh * len, 0.0);
            for head in 0..self.heads {
                let (qo, ko, vo) = (head * dh, h + head * dh, 2 * h + head * dh);
                for j in 0..len {
                    let k = &qkv[(start + j) * stride + ko..][..dh];
                    for (d, kd) in k.iter().enumerate() {
                        s.keys_t[d * len + j] = *kd;
                    }
                }
                for i in 0..len {
                    let q = &qkv[(start + i) * stride + qo..][..dh];
                    let scores = &mut s.scores[..len];
                    scores.fill(0.0);
                    for (d, qd) in q.iter().enumerate() {
                        let w = qd * scale;
                        let kt = &s.keys_t[d * len..(d + 1) * len];
                        scores.iter_mut().zip(kt).for_each(|(sc, k)| *sc += w * k);
                    }
                    let max = scores.iter().fold(f32::MIN, |m, v| m.max(*v));
                    scores.iter_mut().for_each(|sc| *sc = exp_neg(max - *sc));
                    let inv = 1.0 / sum(scores);
                    let out = &mut ctx[(start + i) * h + head * dh..][..dh];
                    for (j, sc) in scores.iter().enumerate() {
                        let v = &qkv[(start + j) * stride + vo..][..dh];
                        let w = sc * inv;
                        out.iter_mut().zip(v).for_each(|(o, v)| *o += w * v);
                    }
                }
            }
            start += len;
        }
    }
}

/// Buffers of the attention step.
#[derive(Default)]
struct AttentionScratch {
    scores: Vec<f32>,
    /// One head's keys, transposed: `dh` rows of the sequence's length.
    keys_t: Vec<f32>,
}

/// Sum with sixteen independent partial sums (vectorisable).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn add(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// Layer norm of every `h`-wide row, in place.
#[inline(always)]
fn layer_norm(x: &mut [f32], h: usize, norm: &LayerNorm, eps: f32) {
    for row in x.chunks_exact_mut(h) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// GELU with the exact (erf) form, as BERT's `gelu` is: x · ½ · (1 + erf(x / √2)).
#[inline(always)]
fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7, below f32's resolution
/// of the GELU output), branch-free so the loop vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_neg(a * a);
    y.copysign(x)
}

/// e^(−z) for z ≥ 0 (Cephes' expf polynomial after reduction by powers of two;
/// relative error ~1e-7), branch-free.
#[inline(always)]
fn exp_neg(z: f32) -> f32 {
    let x = (-z).max(-87.0);
    // Round x·log2(e) to an integer n without a libm call (the 1.5·2²³ trick).
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in 0..=4000 {
            let x = -8.0 + i as f64 * 0.004;
            let got = erf(x as f32) as f64;
            // std has no erf: check its range here and known values below.
            assert!(got.abs() <= 1.0 + 1e-6, "erf({x}) = {got}");
            let z = (x * x) as f32;
            let e = exp_neg(z) as f64;
            let want = (-(z as f64)).exp();
            assert!(
                (e - want).abs() <= 3e-7 * want.max(1e-30) + 1e-37,
                "exp(-{}) = {e} vs {want}",
                x * x
            );
        }
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (-1.0, -0.842_700_792_9),
        ] {
            assert!((erf(x as f32) as f64 - want).abs() < 1e-6, "erf({x})");
        }
    }
}
