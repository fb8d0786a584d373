"""Nearest neighbours by inner product over the index's unit vectors (= cosine), through faiss.

Up to EXACT_LIMIT originals every search is exact: `faiss.knn` (the search of `IndexFlatIP`) run on the
memory-mapped array as it lies, so loading stays a memory map and results are exactly today's. Past it, a
scan of every float32 row costs what memory bandwidth allows (100,000 x 2048 x 4 bytes = 800 MB a query), so
`CompactIndex` answers instead: an IVF over a compact copy of the vectors (4-bit product quantisation of each pair
of dimensions, scanned by faiss's SIMD "fast scan", after PCA to COMPACT_DIM dimensions when the embedding is wider
than the model's) proposes CANDIDATES rows from a share of its lists (PROBE_SHARE), and they are re-ranked exactly
from the float32 rows. Scores are therefore exact cosines; only which rows get proposed is approximate (recall@10
against the exact search: bench/search.py).

Where a query's time goes (bench/search.py, profile_ms): scanning the probed lists dominates (with 8-bit scalar
codes a query at 1,000,000 spent 40 of its 42 ms there and still missed recall@10 0.99), so the codes are the
fast-scan kind, a quarter of 8-bit codes' bytes and compared 32 at a time through lookup tables; the coarse
quantiser (one product with every list's centre) and the exact re-score of CANDIDATES rows cost about a millisecond.

For unit vectors the L2 order is the inner-product order, and L2 survives PCA's centring, which an inner
product does not: the compact index is built with the L2 metric. Any embedding width works.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

EXACT_LIMIT = 50_000  # originals searched exactly (every row scanned); past it, CompactIndex
COMPACT_DIM = 512     # the model's embedding width, kept whole; a wider embedding is PCA'd to it
LISTS_PER_ROOT = 4    # IVF lists: LISTS_PER_ROOT x sqrt(n), faiss's guideline (1,264 at 100,000; 4,000 at 1,000,000)
TRAIN_PER_LIST = 40   # training points per IVF list (faiss warns below 39)
# Share of the IVF lists a query reads (at least MIN_PROBES lists), and rows it proposes for the exact re-rank
# (at least 2 k; 4-bit codes rank coarsely): chosen by bench/search.py's measured recall@10 >= 0.99 at 1,000,000
# clustered synthetic embeddings (0.9945 reading 20% of the lists, 0.995 reading 25%, with 800 candidates; 300
# candidates cap it near 0.985 however many lists are read).
PROBE_SHARE = 0.25
MIN_PROBES = 16
CANDIDATES = 800


@dataclass
class CompactIndex:
    """A trained faiss IVF (ids = rows of the stored vectors) over a compact copy of the unit vectors."""

    index: faiss.Index

    def search(self, queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (q, k), best first: candidates from the IVF, their exact inner products from
        `vectors`; -inf / -1 where fewer than k rows were proposed."""
        _, proposed = self.index.search(queries, max(CANDIDATES, 2 * k))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, candidates) in enumerate(zip(queries, proposed)):
            candidates = np.sort(candidates[candidates >= 0])  # row order: the memory map is read front to back
            exact = np.asarray(vectors[candidates], dtype=np.float32) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, :len(best)], rows[row, :len(best)] = exact[best], candidates[best]
        return scores, rows

    def to_bytes(self) -> np.ndarray:
        return faiss.serialize_index(self.index)

    @classmethod
    def from_bytes(cls, data: np.ndarray, dim: int, count: int) -> "CompactIndex":
        """The index of `to_bytes`; ValueError when the bytes are not one for `count` vectors of width `dim`."""
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise ValueError(f"not a faiss index ({str(exc).splitlines()[0] if str(exc) else exc})") from None
        if index.d != dim or index.ntotal > count:
            raise ValueError(f"a faiss index of {index.ntotal} vectors of width {index.d}, for {count} of {dim}")
        _check_layout(index)
        _probe(index)  # decided by this version, not by the file
        return cls(index)


def compact_index(vectors: np.ndarray, usable: np.ndarray, seed: int = 0) -> CompactIndex | None:
    """The CompactIndex of the usable rows of `vectors` (unit rows); None up to EXACT_LIMIT of them, where the
    exact search is both affordable and exact. Deterministic for a `seed`."""
    if not wants_compact(usable):
        return None
    rows = np.flatnonzero(usable)
    count, dim = len(rows), vectors.shape[1]
    lists = _lists(count)
    compact = f"PCA{COMPACT_DIM}," if dim > COMPACT_DIM else ""
    index = faiss.index_factory(dim, f"{compact}IVF{lists},PQ{_subquantisers(min(dim, COMPACT_DIM))}x4fs",
                                faiss.METRIC_L2)
    faiss.extract_index_ivf(index).cp.seed = seed
    faiss.extract_index_ivf(index).cp.niter = 10
    sample = np.sort(np.random.default_rng(seed).choice(rows, size=min(count, TRAIN_PER_LIST * lists), replace=False))
    index.train(np.asarray(vectors[sample], dtype=np.float32))
    for start in range(0, count, 50_000):
        block = rows[start:start + 50_000]
        index.add_with_ids(np.asarray(vectors[block], dtype=np.float32), block.astype(np.int64))
    _probe(index)
    return CompactIndex(index)


def wants_compact(usable: np.ndarray) -> bool:
    """Whether these usable rows are searched through a CompactIndex: past EXACT_LIMIT of them."""
    return int(np.count_nonzero(usable)) > EXACT_LIMIT


def _lists(count: int) -> int:
    return max(1, int(LISTS_PER_ROOT * math.sqrt(count)))


def _subquantisers(width: int) -> int:
    """One 4-bit code per pair of dimensions (per dimension for an odd width)."""
    return width // 2 if width % 2 == 0 else width


def _ivf(index: faiss.Index) -> faiss.IndexIVF:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        raise ValueError("not an IVF index") from None


def _check_layout(index: faiss.Index) -> None:
    """ValueError unless `index` is laid out as compact_index builds it now (one of an older version, e.g. with
    fewer and longer lists, would not reach the recall PROBE_SHARE was chosen for): searched exactly, rebuilt."""
    ivf, lists, width = _ivf(index), _lists(index.ntotal), min(index.d, COMPACT_DIM)
    codes = faiss.downcast_index(ivf)
    kind = f"{codes.pq.M}x4 fast-scan codes" if isinstance(codes, faiss.IndexIVFPQFastScan) else "other codes"
    wanted = f"{_subquantisers(width)}x4 fast-scan codes"
    if ivf.nlist != lists or ivf.d != width or kind != wanted:
        raise ValueError(f"an IVF of {ivf.nlist} lists over {ivf.d} dimensions with {kind}, this version builds "
                         f"{lists} over {width} with {wanted} (written by another version)")


def _probe(index: faiss.Index) -> None:
    """How many IVF lists a query reads (PROBE_SHARE)."""
    ivf = _ivf(index)
    ivf.nprobe = min(ivf.nlist, max(MIN_PROBES, math.ceil(PROBE_SHARE * ivf.nlist)))


def top_inner_products(queries: np.ndarray, vectors: np.ndarray, k: int, compact: CompactIndex | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (q, k), best first: the k largest inner products of each query row, exact without
    `compact`, proposed by it and scored exactly with it."""
    k = min(k, len(vectors))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if compact is not None:
        return compact.search(queries, vectors, k)
    return faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)


def recall_at_k(exact_rows: np.ndarray, approximate_rows: np.ndarray) -> float:
    """Share of the exact top-k rows the approximate search also returns (averaged over queries)."""
    hits = [len(set(e) & set(a)) / max(1, len(e)) for e, a in zip(exact_rows.tolist(), approximate_rows.tolist())]
    return float(np.mean(hits)) if hits else 1.0
