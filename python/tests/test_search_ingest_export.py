"""Semantic search with the local default model, ingestion of real files, exports read
back by pyarrow."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import rem_db

DOCS = {
    "title": "docs",
    "type": "object",
    "key_field": "slug",
    "indexed_fields": ["category"],
    "embedding_fields": ["body"],
    "embedding_provider": "default",
    "properties": {
        "slug": {"type": "string"},
        "category": {"type": "string"},
        "body": {"type": "string"},
    },
}

TEXTS = [
    ("rust", "lang", "Rust is a systems programming language focused on memory safety."),
    ("pasta", "food", "Boil the pasta in salted water for nine minutes, then drain."),
    ("rocks", "db", "RocksDB is an embeddable persistent key-value store for fast storage."),
    ("tennis", "sport", "She won the tennis match in three sets."),
    ("sqlite", "db", "SQLite is a small, fast, self-contained SQL database engine."),
]


@pytest.fixture
def docs(db: rem_db.Database) -> rem_db.Database:
    db.register_schema(DOCS)
    db.insert_batch("docs", [{"slug": s, "category": c, "body": b} for s, c, b in TEXTS])
    return db


def test_search_ranks_by_meaning(docs: rem_db.Database) -> None:
    hits = docs.search("which database stores keys and values?", table="docs", top_k=2)
    assert hits[0]["slug"] == "rocks"
    assert hits[0].score >= hits[1].score
    food = docs.search("cooking dinner", table="docs", top_k=1)
    assert food[0]["slug"] == "pasta"
    only_db = docs.search("programming", table="docs", where="category = 'db'", top_k=5)
    assert {h["slug"] for h in only_db} == {"rocks", "sqlite"}
    assert docs.search("memory safety", table="docs", top_k=5, min_score=0.99) == []
    with pytest.raises(rem_db.ValidationError):
        docs.search("x", table="docs", top_k=0)


def test_ingest_folder_and_export(docs: rem_db.Database, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Gardening\n\nTomatoes need full sun and deep watering.\n")
    (folder / "b.txt").write_text("Espresso is brewed by forcing hot water through coffee.\n")
    (folder / "empty.txt").write_text("")
    reports = {Path(r["uri"]).name: r for r in docs.ingest(folder)}
    assert reports["a.md"]["status"] == "completed" and reports["a.md"]["chunks"] >= 1
    assert reports["b.txt"]["status"] == "completed"
    again = {Path(r["uri"]).name: r["status"] for r in docs.ingest(folder)}
    assert again["a.md"] == "unchanged"
    hits = docs.search("how to grow tomatoes", table="resources", top_k=1)
    assert "Tomatoes" in hits[0]["content"]
    with pytest.raises(rem_db.RemError):
        docs.ingest(tmp_path / "missing")

    out = tmp_path / "docs.parquet"
    assert docs.export("docs", out, where="category = 'db'") == 2
    table = pq.read_table(out)
    assert sorted(table.column("slug").to_pylist()) == ["rocks", "sqlite"]
    csv_out = tmp_path / "docs.csv"
    assert docs.export("docs", csv_out) == len(TEXTS)
    with csv_out.open() as f:
        assert len(list(csv.DictReader(f))) == len(TEXTS)
    with pytest.raises(rem_db.ValidationError):
        docs.export("docs", tmp_path / "docs.unknown")
    with pytest.raises(rem_db.RemError):
        docs.export("docs", tmp_path / "no-such-dir" / "x.parquet")
    assert not (tmp_path / "no-such-dir").exists()


def test_own_vectors_on_an_external_table(db: rem_db.Database) -> None:
    np = pytest.importorskip("numpy")
    db.register_schema(
        {
            "title": "vecs",
            "type": "object",
            "key_field": "k",
            "indexed_fields": ["category"],
            "embedding_fields": ["k"],
            "embedding_provider": "external:16",
            "properties": {"k": {"type": "string"}, "category": {"type": "string"}},
        }
    )
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(300, 16)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    db.insert_batch("vecs", [{"k": f"v{i}", "category": f"c{i % 3}"} for i in range(300)], vectors=vecs)
    q = vecs[42]
    hits = db.search(q, table="vecs", top_k=5)
    assert hits[0]["k"] == "v42" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    exact = [f"v{i}" for i in np.argsort(-(vecs @ q))[:5]]
    assert [h["k"] for h in hits] == exact
    filtered = db.search(q, table="vecs", top_k=5, where="category = 'c1'")
    assert all(h["category"] == "c1" for h in filtered) and len(filtered) == 5
    # Wrong sizes, NaNs and text queries are refused with a reason; nothing is written.
    before = db.stats()["last_seq"]
    with pytest.raises(rem_db.EmbeddingError) as e:
        db.insert_batch("vecs", [{"k": "a"}, {"k": "b"}], vectors=[[0.0] * 16, [0.0] * 15])
    assert e.value.index == 1
    with pytest.raises(rem_db.EmbeddingError):
        db.insert("vecs", {"k": "nan"}, vector=[float("nan")] * 16)
    with pytest.raises(rem_db.ValidationError):
        db.insert_batch("vecs", [{"k": "a"}], vectors=[])
    with pytest.raises(rem_db.EmbeddingError):
        db.insert("vecs", {"k": "novector"})
    with pytest.raises(rem_db.ValidationError):
        db.search([0.1] * 3, table="vecs")
    with pytest.raises(rem_db.ValidationError):
        db.search(q)  # a vector search names its table
    assert db.stats()["last_seq"] == before
    # Vectors persist: reopen and search again.
    path = db.path
    db.close()
    with rem_db.Database(path) as again:
        assert again.search(q, table="vecs", top_k=1)[0]["k"] == "v42"


def test_own_vectors_on_a_model_table(docs: rem_db.Database) -> None:
    # A table embedded by the local model also takes vectors of its size (384).
    v = [0.0] * 384
    v[3] = 1.0
    docs.insert("docs", {"slug": "mine", "category": "x", "body": "my own vector"}, vector=v)
    assert docs.search(v, table="docs", top_k=1)[0]["slug"] == "mine"
    with pytest.raises(rem_db.EmbeddingError):
        docs.insert("docs", {"slug": "short", "body": "b"}, vector=[1.0] * 10)
