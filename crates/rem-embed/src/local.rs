//! `local:<model>`: a BERT-family sentence-embedding model run in-process.
//!
//! Output matches sentence-transformers: tokens truncated to the model's
//! `max_seq_length` (from `sentence_bert_config.json`), mean pooling over the attention
//! mask, then L2 normalisation.
//!
//! Two engines run the model: [`crate::fast_bert`] (bf16 linear layers, unpadded token
//! rows) on CPUs with AVX-512 BF16 when the model is a standard BERT encoder, and candle
//! (f32) otherwise. [`LocalEngine`] picks one explicitly.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use safetensors::SafeTensors;

use crate::bf16_gemm;
use crate::fast_bert::{BertConfig, FastBert};
use crate::models::find_model_dir;
use crate::{EmbedError, EmbeddingProvider};

/// Which engine runs a local model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalEngine {
    /// The fast engine when this CPU and the model allow it, candle otherwise.
    #[default]
    Auto,
    /// candle, in f32, on any CPU.
    Candle,
}

enum Engine {
    Fast(FastBert),
    Candle(Box<BertModel>),
}

/// A loaded local model.
pub struct LocalBert {
    name: String,
    engine: Engine,
    /// Pads each batch to its longest text (candle needs rectangular input).
    tokenizer: Tokenizer,
    /// The same tokenizer without padding (the fast engine reads tokens unpadded).
    unpadded: Tokenizer,
    dims: usize,
    device: Device,
}

impl std::fmt::Debug for LocalBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBert")
            .field("name", &self.name)
            .field("dims", &self.dims)
            .field("engine", &self.engine_name())
            .finish()
    }
}

impl LocalBert {
    /// Finds model `model` (see [`find_model_dir`]) and loads it on the CPU.
    pub fn load(model: &str, models_dir: &Path) -> Result<LocalBert, EmbedError> {
        let location = find_model_dir(model, models_dir)?;
        Self::load_dir(model, location.dir())
    }

    /// Loads a model from a directory in Hugging Face layout, with the engine
    /// [`LocalEngine::Auto`] picks.
    pub fn load_dir(model: &str, dir: &Path) -> Result<LocalBert, EmbedError> {
        Self::load_dir_with(model, dir, LocalEngine::Auto)
    }

    /// Loads a model from a directory in Hugging Face layout with a chosen engine.
    pub fn load_dir_with(
        model: &str,
        dir: &Path,
        engine: LocalEngine,
    ) -> Result<LocalBert, EmbedError> {
        let load_err = |message: String| EmbedError::ModelLoad {
            model: model.to_string(),
            message,
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err(format!("config.json: {e}")))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| load_err(format!("config.json: {e}")))?;
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|n| n as usize)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let mut unpadded = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(format!("tokenizer.json: {e}")))?;
        unpadded.with_padding(None);
        unpadded
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_err(format!("truncation: {e}")))?;
        let mut tokenizer = unpadded.clone();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
        let fast_config: Option<BertConfig> = serde_json::from_str(&config_text).ok();
        let fast = match (&fast_config, engine) {
            (Some(c), LocalEngine::Auto) if bf16_gemm::supported() && c.unsupported().is_none() => {
                let tensors = SafeTensors::deserialize(&weights)
                    .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
                Some(FastBert::load(&tensors, c).map_err(|e| load_err(format!("weights: {e}")))?)
            }
            _ => None,
        };
        let device = Device::Cpu;
        let engine = match fast {
            Some(fast) => Engine::Fast(fast),
            None => {
                let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &device)
                    .map_err(|e| load_err(format!("model.safetensors: {e}")))?;
                let bert =
                    BertModel::load(vb, &config).map_err(|e| load_err(format!("weights: {e}")))?;
                Engine::Candle(Box::new(bert))
            }
        };
        Ok(LocalBert {
            name: format!("local:{model}"),
            engine,
            tokenizer,
            unpadded,
            dims: config.hidden_size,
            device,
        })
    }

    /// The engine running the model: `bf16-avx512` or `candle-f32`.
    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Fast(_) => "bf16-avx512",
            Engine::Candle(_) => "candle-f32",
        }
    }

    /// Tokens the model reads for `text` (special tokens included, after truncation).
    pub fn token_count(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .unwrap_or(0)
    }

    /// Runs one group of texts through the fast engine.
    fn run_fast(&self, model: &FastBert, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let encodings = self
            .unpadded
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let seqs: Vec<(&[u32], &[u32])> = encodings
            .iter()
            .map(|e| (e.get_ids(), e.get_type_ids()))
            .collect();
        model.embed(&seqs).map_err(EmbedError::Inference)
    }

    fn run(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match &self.engine {
            Engine::Fast(model) => self.run_fast(model, texts),
            Engine::Candle(model) => self
                .run_candle(model, texts)
                .map_err(|e| EmbedError::Inference(e.to_string())),
        }
    }

    fn run_candle(&self, model: &BertModel, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let inputs: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let rows = encodings.len();
        let cols = encodings.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| f(e).iter().copied())
                .collect()
        };
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, cols), &self.device)?;
        let type_ids = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, cols), &self.device)?;
        let mask = Tensor::from_vec(
            flat(&|e| e.get_attention_mask()),
            (rows, cols),
            &self.device,
        )?;
        let hidden = model.forward(&ids, &type_ids, Some(&mask))?; // (rows, cols, dims)
                                                                   // Mean pooling over real tokens, as sentence-transformers' Pooling(mean) does.
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, cols, 1)
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (rows, dims)
        let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        // L2 normalisation (sentence-transformers' Normalize module).
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

/// The vectors of one group of a batch, with the group's number.
type GroupResult = (usize, Vec<Vec<f32>>);

/// Texts per forward pass after sorting a batch by length.
const GROUP: usize = 8;

/// The same for the fast engine, whose matrix products gain from more rows.
const FAST_GROUP: usize = 16;

impl EmbeddingProvider for LocalBert {
    fn name(&self) -> &str {
        &self.name
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(vec![]);
        }
        // Every row of a forward pass is padded to its longest text: run texts of
        // similar length together (sorted, in groups) and put the results back in order.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        // candle runs matrix products on all cores but every other operation (GELU,
        // softmax, layer norm) on the calling thread: run groups side by side so those
        // use every core too. A small call is split evenly over the cores (9 texts on
        // 2 cores are groups of 5 and 4, not 8 and 1).
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let group = match self.engine {
            Engine::Fast(_) => FAST_GROUP,
            Engine::Candle(_) => GROUP,
        };
        let size = group.min(texts.len().div_ceil(cores)).max(1);
        let groups: Vec<&[usize]> = order.chunks(size).collect();
        let workers = cores.min(groups.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let run_groups = || -> Result<Vec<GroupResult>, EmbedError> {
            let mut done = Vec::new();
            loop {
                let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(group) = groups.get(g) else {
                    return Ok(done);
                };
                let batch: Vec<&str> = group.iter().map(|&i| texts[i]).collect();
                let vectors = self.run(&batch)?;
                done.push((g, vectors));
            }
        };
        let results: Vec<Result<Vec<GroupResult>, EmbedError>> = if workers <= 1 {
            vec![run_groups()]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(run_groups)).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(EmbedError::Inference("an embedding worker panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for result in results {
            for (g, vectors) in result? {
                for (&i, v) in groups[g].iter().zip(vectors) {
                    out[i] = v;
                }
            }
        }
        Ok(out)
    }
}
