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
