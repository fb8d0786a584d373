"""Nearest neighbours by inner product over the index's unit vectors (= cosine), through faiss.

`faiss.knn` is the exact search of `IndexFlatIP` run on the memory-mapped array as it lies (no copy
into an index object, so loading stays a memory map). Exact search is what the index uses up to
EXACT_LIMIT originals; `approximate_index` (HNSW) is for collections beyond, its recall against the
exact search measured by bench/search.py.
"""
from __future__ import annotations

import faiss
import numpy as np

EXACT_LIMIT = 1_000_000


def top_inner_products(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (q, k), best first: the exact k largest inner products of each query row."""
    k = min(k, len(vectors))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores, rows = faiss.knn(
        np.ascontiguousarray(queries, dtype=np.float32), vectors, k, metric=faiss.METRIC_INNER_PRODUCT
    )
    return scores, rows


def approximate_index(vectors: np.ndarray, neighbours: int = 32, ef_search: int = 128) -> "faiss.IndexHNSWFlat":
    """An HNSW graph over the vectors (inner product): sub-linear queries for collections past EXACT_LIMIT."""
    index = faiss.IndexHNSWFlat(vectors.shape[1], neighbours, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = ef_search
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def recall_at_k(exact_rows: np.ndarray, approximate_rows: np.ndarray) -> float:
    """Share of the exact top-k rows the approximate search also returns (averaged over queries)."""
    hits = [len(set(e) & set(a)) / max(1, len(e)) for e, a in zip(exact_rows.tolist(), approximate_rows.tolist())]
    return float(np.mean(hits)) if hits else 1.0
