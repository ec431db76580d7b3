#!/usr/bin/env python3
"""Computes golden embeddings with sentence-transformers itself, for rem-embed's test.

    HF_HUB_OFFLINE=1 python3 scripts/golden_vectors.py ~/.p8/models/all-MiniLM-L6-v2 \
        > crates/rem-embed/tests/golden/all-MiniLM-L6-v2.json

Needs `pip install sentence-transformers` (run once by a developer; the test only reads the
JSON). The sentences cover short and long text (past the 256-token window, so truncation is
checked), punctuation, digits, accents, CJK and emoji.
"""
import json
import sys

import sentence_transformers
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Rust is a systems programming language focused on safety and speed.",
    "RocksDB is an embeddable persistent key-value store.",
    "What happened in sprint 42?",
    "TAP-1234: fix the flaky replication test (retry with backoff, 3x).",
    "Café crème brûlée à la carte — naïve façade.",
    "東京は日本の首都です。",
    "I love this 🎉🚀!",
    "a",
    " ".join(f"word{i} is part of a very long document about databases" for i in range(80)),
]

model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(SENTENCES, normalize_embeddings=False, convert_to_numpy=True)
json.dump(
    {
        "model": "all-MiniLM-L6-v2",
        "produced_by": f"sentence-transformers {sentence_transformers.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    },
    sys.stdout,
)
