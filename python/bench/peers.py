"""Side-by-side benchmark of rem_db against embedded vector stores on the same data.

    python python/bench/peers.py --n 10000 [--n 100000] [--queries 200]

Every store gets the same precomputed 384-dimension vectors (a mixture of Gaussian
clusters, unit length) with a `category` field (100 categories: a filter on one is 1%
selectivity); embedding functions that would download models are never used. Figures:
batch insert records/s, top-10 search p50/p99 and QPS, recall@10 against exact results,
filtered search (1%) recall and p50, get by id p50, open time and disk size. Peers that
are not installed are reported as such. Run it from a release build of the package for
figures worth recording (`scripts/bench-python.sh` does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

DIMS = 384
CATEGORIES = 100


def make_data(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(64, DIMS)).astype(np.float32)
    assign = rng.integers(0, 64, size=n)
    vecs = centers[assign] + 0.6 * rng.normal(size=(n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cats = [f"c{i % CATEGORIES}" for i in range(n)]
    qa = rng.integers(0, 64, size=queries)
    q = centers[qa] + 0.6 * rng.normal(size=(queries, DIMS)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return vecs, cats, q.astype(np.float32)


def exact(vecs: np.ndarray, q: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> list[set[int]]:
    out = []
    for row in q:
        s = vecs @ row
        if mask is not None:
            s = np.where(mask, s, -np.inf)
        out.append(set(np.argsort(-s)[:k].tolist()))
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def disk(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


class Store:
    name = "?"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> None: ...
    def close(self) -> None: ...
    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None: ...
    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]: ...
    def get(self, id_: str) -> Any: ...


class Rem(Store):
    name = "rem_db"

    def open(self) -> None:
        import rem_db

        self.db = rem_db.Database(self.path)
        self.db.register_schema(
            {
                "title": "items",
                "type": "object",
                "key_field": "key",
                "indexed_fields": ["category"],
                "embedding_fields": ["key"],
                "embedding_provider": f"external:{DIMS}",
                "properties": {"key": {"type": "string"}, "category": {"type": "string"}},
            }
        )
        self.ids: dict[str, str] = getattr(self, "ids", {})

    def close(self) -> None:
        self.db.close()

    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None:
        step = 1000
        for s in range(0, len(ids), step):
            recs = [{"key": ids[i], "category": cats[i]} for i in range(s, min(s + step, len(ids)))]
            got = self.db.insert_batch("items", recs, vectors=vecs[s : s + step])
            for k, v in zip(ids[s : s + step], got):
                self.ids[k] = v

    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]:
        where = None if category is None else f"category = '{category}'"
        return [h["key"] for h in self.db.search(q, table="items", top_k=k, where=where)]

    def get(self, id_: str) -> Any:
        return self.db.get(self.ids[id_])


class Chroma(Store):
    name = "chromadb"

    def open(self) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(path=str(self.path))
        self.col = self.client.get_or_create_collection(
            "items", metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def close(self) -> None:
        del self.col
        del self.client

    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None:
        step = 1000
        for s in range(0, len(ids), step):
            self.col.add(
                ids=ids[s : s + step],
                embeddings=vecs[s : s + step],
                metadatas=[{"category": c} for c in cats[s : s + step]],
            )

    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]:
        r = self.col.query(query_embeddings=[q], n_results=k, where=None if category is None else {"category": category})
        return r["ids"][0]

    def get(self, id_: str) -> Any:
        return self.col.get(ids=[id_])


class Lance(Store):
    name = "lancedb"

    def open(self) -> None:
        import lancedb

        self.db = lancedb.connect(str(self.path))
        self.table = self.db.open_table("items") if "items" in self.db.table_names() else None

    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None:
        import pyarrow as pa

        data = pa.table(
            {
                "id": ids,
                "category": cats,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIMS),
            }
        )
        self.table = self.db.create_table("items", data=data, mode="overwrite")
        self.table.create_scalar_index("id")
        self.table.create_scalar_index("category", index_type="BITMAP")
        if len(ids) >= 50_000:
            self.table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ")

    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]:
        s = self.table.search(q).metric("cosine").limit(k)
        if category is not None:
            s = s.where(f"category = '{category}'", prefilter=True)
        return s.select(["id"]).to_arrow().column("id").to_pylist()

    def get(self, id_: str) -> Any:
        return self.table.search().where(f"id = '{id_}'").limit(1).to_arrow()


class Qdrant(Store):
    name = "qdrant-client (local)"

    def open(self) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=str(self.path))
        if not self.client.collection_exists("items"):
            self.client.create_collection(
                "items", vectors_config=models.VectorParams(size=DIMS, distance=models.Distance.COSINE)
            )

    def close(self) -> None:
        self.client.close()

    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None:
        step = 1000
        for s in range(0, len(ids), step):
            self.client.upsert(
                "items",
                points=[
                    self.models.PointStruct(id=s + j, vector=vecs[s + j].tolist(), payload={"key": ids[s + j], "category": cats[s + j]})
                    for j in range(min(step, len(ids) - s))
                ],
            )

    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]:
        m = self.models
        flt = None if category is None else m.Filter(must=[m.FieldCondition(key="category", match=m.MatchValue(value=category))])
        r = self.client.query_points("items", query=q.tolist(), limit=k, query_filter=flt).points
        return [p.payload["key"] for p in r]

    def get(self, id_: str) -> Any:
        return self.client.retrieve("items", ids=[int(id_[1:])])


class SqliteVec(Store):
    name = "sqlite-vec"

    def open(self) -> None:
        import sqlite3

        import sqlite_vec

        if not hasattr(sqlite3.Connection, "enable_load_extension"):
            # This Python's sqlite3 was built without extension loading; pysqlite3-binary
            # (the same module over a bundled SQLite) has it.
            import pysqlite3 as sqlite3  # type: ignore[no-redef]

        self.path.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path / "db.sqlite"))
        self.conn.enable_load_extension(True)
        sqlite_vec.load(self.conn)
        self.conn.enable_load_extension(False)
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS items USING vec0(key TEXT PRIMARY KEY, embedding float[{DIMS}] distance_metric=cosine, category TEXT)"
        )

    def close(self) -> None:
        self.conn.close()

    def insert(self, ids: list[str], vecs: np.ndarray, cats: list[str]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT INTO items(key, embedding, category) VALUES (?, ?, ?)",
                [(ids[i], vecs[i].tobytes(), cats[i]) for i in range(len(ids))],
            )

    def search(self, q: np.ndarray, k: int, category: Optional[str] = None) -> list[str]:
        if category is None:
            rows = self.conn.execute(
                "SELECT key FROM items WHERE embedding MATCH ? AND k = ? ORDER BY distance", (q.tobytes(), k)
            )
        else:
            rows = self.conn.execute(
                "SELECT key FROM items WHERE embedding MATCH ? AND k = ? AND category = ? ORDER BY distance",
                (q.tobytes(), k, category),
            )
        return [r[0] for r in rows]

    def get(self, id_: str) -> Any:
        return self.conn.execute("SELECT key, category FROM items WHERE key = ?", (id_,)).fetchone()


STORES = [Rem, Chroma, Lance, Qdrant, SqliteVec]


def run(cls: type, n: int, vecs: np.ndarray, cats: list[str], q: np.ndarray, truth: list[set[int]], ftruth: list[set[int]], fcat: str, root: Path) -> Optional[dict]:
    path = root / cls.name.split()[0]
    store = cls(path)
    ids = [f"k{i}" for i in range(n)]
    try:
        store.open()
    except ImportError as e:
        print(f"  {cls.name}: not installed ({e.name})", file=sys.stderr)
        return None
    except AttributeError as e:
        print(f"  {cls.name}: cannot run here ({e})", file=sys.stderr)
        return None
    t = time.perf_counter()
    store.insert(ids, vecs, cats)
    insert_s = time.perf_counter() - t
    k = 10
    for row in q[:5]:  # warm-up (loads indexes)
        store.search(row, k)
    lat, rec = [], []
    t_all = time.perf_counter()
    for qi, row in enumerate(q):
        t = time.perf_counter()
        got = store.search(row, k)
        lat.append(time.perf_counter() - t)
        rec.append(len({int(g[1:]) for g in got} & truth[qi]) / k)
    qps = len(q) / (time.perf_counter() - t_all)
    flat, frec = [], []
    for qi, row in enumerate(q):
        t = time.perf_counter()
        got = store.search(row, k, category=fcat)
        flat.append(time.perf_counter() - t)
        frec.append(len({int(g[1:]) for g in got} & ftruth[qi]) / k)
    gl = []
    rng = np.random.default_rng(3)
    for i in rng.integers(0, n, size=500):
        t = time.perf_counter()
        store.get(ids[i])
        gl.append(time.perf_counter() - t)
    store.close()
    t = time.perf_counter()
    store.open()
    store.search(q[0], k)
    open_s = time.perf_counter() - t
    store.close()
    return {
        "insert/s": n / insert_s,
        "p50 ms": pct(lat, 50) * 1e3,
        "p99 ms": pct(lat, 99) * 1e3,
        "QPS": qps,
        "recall@10": statistics.mean(rec),
        "filt recall": statistics.mean(frec),
        "filt p50 ms": pct(flat, 50) * 1e3,
        "get p50 µs": pct(gl, 50) * 1e6,
        "open ms": open_s * 1e3,
        "disk MB": disk(path) / 1e6,
    }


def overhead(rust_bench: str, vecs: np.ndarray, q: np.ndarray, cats: list[str], truth, ftruth, fcat: str, reps: int) -> None:
    """The same insert/search/get through the Rust API (rem-bench vectors), beside rem_db.

    Both sides run ``reps`` times, alternating, each on a fresh database; the medians are
    compared (one run of each swings by 2x on two shared cores: HNSW insertion and
    RocksDB's background flushes compete for them)."""
    import json as _json
    import subprocess

    py_runs, rust_runs = [], []
    with tempfile.TemporaryDirectory() as d:
        vecs.astype("<f4").tofile(os.path.join(d, "vectors.f32"))
        q.astype("<f4").tofile(os.path.join(d, "queries.f32"))
        for _ in range(reps):
            root = Path(tempfile.mkdtemp(prefix="rem-bench-"))
            try:
                r = run(Rem, len(vecs), vecs, cats, q, truth, ftruth, fcat, root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            assert r is not None
            py_runs.append(r)
            out = subprocess.run([rust_bench, "vectors", "--data", d, "--dims", str(DIMS)], capture_output=True, text=True, check=True)
            rust_runs.append(_json.loads(out.stdout.strip().splitlines()[-1]))

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    py_ins, rs_ins = med(py_runs, "insert/s"), med(rust_runs, "insert_per_s")
    py_s, rs_s = med(py_runs, "p50 ms"), med(rust_runs, "search_p50_ms")
    py_g, rs_g = med(py_runs, "get p50 µs"), med(rust_runs, "get_p50_us")
    print(f"Python layer vs the Rust API (same data, same operations; medians of {reps} alternating runs each):")
    print(f"  batch insert: {py_ins:.0f}/s vs {rs_ins:.0f}/s  -> {rs_ins / py_ins:.2f}x the Rust time")
    print(f"  search p50:   {py_s:.3f} ms vs {rs_s:.3f} ms -> {py_s / rs_s:.2f}x")
    print(f"  get p50:      {py_g:.1f} µs vs {rs_g:.1f} µs -> {py_g / rs_g:.2f}x")
    spread = lambda runs, key: ", ".join(f"{r[key]:.3g}" for r in runs)  # noqa: E731
    print(f"  (runs: Python insert/s {spread(py_runs, 'insert/s')}; Rust {spread(rust_runs, 'insert_per_s')};"
          f" Python search ms {spread(py_runs, 'p50 ms')}; Rust {spread(rust_runs, 'search_p50_ms')})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, action="append")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5, help="alternating runs of rem_db and the Rust API for the overhead figures")
    ap.add_argument("--only", action="append", help="run only these stores (by name)")
    ap.add_argument("--rust-bench", help="a rem-bench binary: also run its `vectors` scenario on the same data for the Python layer's overhead")
    args = ap.parse_args()
    for n in args.n or [10_000]:
        vecs, cats, q = make_data(n, args.queries)
        fcat = "c7"
        mask = np.array([c == fcat for c in cats])
        truth = exact(vecs, q, 10)
        ftruth = exact(vecs, q, 10, mask)
        print(f"\n{n:,} records, {DIMS} dims, {args.queries} queries, filter {fcat} = {mask.mean():.0%} of rows")
        rows = {}
        root = Path(tempfile.mkdtemp(prefix="rem-bench-"))
        try:
            for cls in STORES:
                if args.only and cls.name.split()[0] not in args.only:
                    continue
                r = run(cls, n, vecs, cats, q, truth, ftruth, fcat, root)
                if r is not None:
                    rows[cls.name] = r
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if args.rust_bench and "rem_db" in rows:
            overhead(args.rust_bench, vecs, q, cats, truth, ftruth, fcat, args.reps)
        cols = list(next(iter(rows.values())).keys()) if rows else []
        print(f"{'store':24}" + "".join(f"{c:>13}" for c in cols))
        for name, r in rows.items():
            print(f"{name:24}" + "".join(f"{r[c]:>13.3f}" if r[c] < 10 else f"{r[c]:>13.1f}" for c in cols))


if __name__ == "__main__":
    main()
