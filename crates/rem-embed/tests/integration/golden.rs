//! The local provider reproduces sentence-transformers (cosine ≥ 0.9999 per sentence).

use std::path::PathBuf;

use rem_embed::{EmbeddingProvider, LocalBert, LocalEngine};

/// Where `scripts/install-model.sh` puts the model (the test setup runs it).
fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("P8_MODELS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("P8_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".p8"));
    home.join("models")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn local_model_matches_sentence_transformers() {
    let model = LocalBert::load("all-MiniLM-L6-v2", &models_dir()).unwrap_or_else(|e| {
        panic!("{e} (the test setup installs the model with scripts/install-model.sh)")
    });
    eprintln!("engine: {}", model.engine_name());
    matches_golden(&model);
}

/// The candle engine (the fallback on CPUs without AVX-512 BF16) reproduces the golden
/// vectors too, whichever engine the default picks on this machine.
#[test]
fn candle_engine_matches_sentence_transformers() {
    let dir = models_dir().join("all-MiniLM-L6-v2");
    let model = LocalBert::load_dir_with("all-MiniLM-L6-v2", &dir, LocalEngine::Candle)
        .unwrap_or_else(|e| panic!("{e} (the test setup installs the model)"));
    assert_eq!(model.engine_name(), "candle-f32");
    matches_golden(&model);
}

fn matches_golden(model: &LocalBert) {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../golden/all-MiniLM-L6-v2.json")).unwrap();
    let sentences: Vec<&str> = golden["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let expected: Vec<Vec<f32>> = golden["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(model.dims(), 384);
    assert_eq!(model.name(), "local:all-MiniLM-L6-v2");
    // One batch, as the engine calls it.
    let got = model.embed(&sentences).unwrap();
    assert_eq!(got.len(), sentences.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let c = cosine(g, e);
        eprintln!("{} sentence {i}: cosine {c:.7}", model.engine_name());
        assert!(
            c >= 0.9999,
            "sentence {i} ({:?}): cosine {c}",
            &sentences[i][..sentences[i].len().min(40)]
        );
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "sentence {i} is not unit length: {norm}"
        );
    }
    // Batching does not change results: each sentence alone gives the same vector.
    for (i, s) in sentences.iter().enumerate().take(3) {
        let alone = model.embed(&[s]).unwrap();
        assert!(
            cosine(&alone[0], &got[i]) > 0.99999,
            "sentence {i} differs when embedded alone"
        );
    }
    assert!(model.embed(&[]).unwrap().is_empty());
}

/// The two engines agree beyond the golden sentences: long texts (one past the model's
/// 256-token limit, so truncation is exercised), a mixed-length batch in one call (the
/// fast engine lays sequences end to end without padding), and a single word.
#[test]
fn fast_and_candle_engines_agree_on_long_and_mixed_batches() {
    let dir = models_dir().join("all-MiniLM-L6-v2");
    let auto = LocalBert::load_dir("all-MiniLM-L6-v2", &dir).unwrap();
    if auto.engine_name() == "candle-f32" {
        eprintln!("skipped: this CPU runs candle only (no AVX-512 BF16)");
        return;
    }
    let candle = LocalBert::load_dir_with("all-MiniLM-L6-v2", &dir, LocalEngine::Candle).unwrap();
    let words = [
        "replication",
        "the",
        "primary",
        "streams",
        "its",
        "change",
        "log",
        "to",
        "every",
        "replica",
        "which",
        "applies",
        "batches",
        "atomically",
        "and",
        "serves",
        "reads",
    ];
    let text = |n: usize, salt: usize| -> String {
        (0..n)
            .map(|i| words[(i * 7 + salt) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let texts: Vec<String> = vec![
        text(180, 1),
        "memory".to_string(),
        text(400, 3), // past 256 tokens: truncated
        text(12, 5),
        text(60, 2),
    ];
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    assert!(
        auto.token_count(refs[2]) == 256,
        "the long text is truncated to 256 tokens"
    );
    let fast = auto.embed(&refs).unwrap();
    let reference = candle.embed(&refs).unwrap();
    for (i, (f, c)) in fast.iter().zip(&reference).enumerate() {
        let cos = cosine(f, c);
        eprintln!(
            "text {i} ({} tokens): cosine {cos:.7}",
            auto.token_count(refs[i])
        );
        assert!(cos >= 0.9999, "text {i}: engines differ, cosine {cos}");
    }
}
