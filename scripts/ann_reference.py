#!/usr/bin/env python3
"""Reference run for `rem-bench ann`: hnswlib on the same vectors, parameters and truth.

    python3 scripts/ann_reference.py DIR N DIMS NQ M EF_CONSTRUCTION EF1,EF2,... THREADS

DIR holds data.f32, queries.f32 and truth.f32 (little-endian f32) written by rem-bench.
Prints build time, memory estimate and markdown rows like rem-bench's. Needs
`pip install hnswlib numpy`.
"""
import sys
import time

import hnswlib
import numpy as np

d, n, dims, nq, m, efc, efs = sys.argv[1], *map(int, sys.argv[2:7]), [int(x) for x in sys.argv[7].split(",")]
threads = int(sys.argv[8]) if len(sys.argv) > 8 else 1
data = np.fromfile(f"{d}/data.f32", dtype="<f4").reshape(n, dims)
queries = np.fromfile(f"{d}/queries.f32", dtype="<f4").reshape(nq, dims)
truth = np.fromfile(f"{d}/truth.f32", dtype="<f4").reshape(nq, 10).astype(np.int64)

index = hnswlib.Index(space="cosine", dim=dims)
index.init_index(max_elements=n, ef_construction=efc, M=m)
index.set_num_threads(threads)
t = time.perf_counter()
index.add_items(data, np.arange(n))
build = time.perf_counter() - t
print(f"hnswlib build: {build:.1f} s on {threads} thread(s) ({n / build:.0f} vectors/s)")
index.set_num_threads(1)
for ef in efs:
    index.set_ef(ef)
    lat = []
    hits = 0
    t0 = time.perf_counter()
    for i in range(nq):
        s = time.perf_counter()
        labels, _ = index.knn_query(queries[i : i + 1], k=10)
        lat.append(time.perf_counter() - s)
        hits += len(set(labels[0].tolist()) & set(truth[i].tolist()))
    qps = nq / (time.perf_counter() - t0)
    lat.sort()
    p50, p99 = lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    print(f"| hnswlib (Python API) | {ef} | {hits / (nq * 10):.3f} | {qps:.0f} | {p50:.3f} | {p99:.3f} |")
