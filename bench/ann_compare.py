"""What bench/search.py measures the compact index with: clustered synthetic embeddings and variant queries, another
commit's artsim/index/ann.py to compare against in the same run, and where one query's time goes.

The synthetic embeddings are clustered as a trunk's are (an artist's or a style's works lie near each other, with
most of the variance in few directions), and not trivially easy: clusters overlap (each member's cosine to its
centre 0.58-0.82), so a query's nearest ten are its source and members of its cluster spread over several IVF
lists; bench/search.py reports the recall@10 of reading one list only, which stays far below the goal.
"""
from __future__ import annotations

import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from artsim.index.ann import recall_at_k
from artsim.index.query import unit_rows

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SIZE = 100            # originals per cluster on average
SPREAD = (0.7, 1.4)           # a cluster's spread: the noise's length against its unit centre
QUERY_NOISE = 0.5             # a variant's noise against its unit source: cosine ~0.9


def decaying(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """Unit rows whose coordinate i has scale (1 + i) ** -0.5: most of the variance in few directions."""
    scales = (1.0 + np.arange(dim, dtype=np.float32)) ** -0.5
    return unit_rows(rng.standard_normal((count, dim), dtype=np.float32) * scales)


@dataclass(frozen=True)
class ClusteredEmbeddings:
    """Unit rows around count / CLUSTER_SIZE centres, each cluster with its own spread; drawn a block at a time
    (memory stays one block's)."""

    centres: np.ndarray
    spreads: np.ndarray

    @classmethod
    def for_count(cls, rng: np.random.Generator, count: int, dim: int) -> "ClusteredEmbeddings":
        clusters = max(1, count // CLUSTER_SIZE)
        return cls(decaying(rng, clusters, dim), rng.uniform(*SPREAD, clusters).astype(np.float32))

    def rows(self, rng: np.random.Generator, count: int) -> np.ndarray:
        cluster = rng.integers(0, len(self.centres), count)
        noise = decaying(rng, count, self.centres.shape[1])
        return unit_rows(self.centres[cluster] + self.spreads[cluster, None] * noise).astype(np.float32)


def variant_queries(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Unit queries near stored rows (cosine ~0.9 to their source), as a variant is near its original."""
    rng = np.random.default_rng(seed)
    sources = np.asarray(vectors[np.sort(rng.choice(len(vectors), size=count, replace=False))], dtype=np.float32)
    return np.ascontiguousarray(unit_rows(sources + QUERY_NOISE * decaying(rng, count, vectors.shape[1])))


def ann_module_at(revision: str) -> types.ModuleType:
    """artsim/index/ann.py as it is at git `revision`, as a module of its own (this checkout's stays as it is)."""
    source = subprocess.run(["git", "show", f"{revision}:artsim/index/ann.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"ann_at_{revision}")
    module.__file__ = f"{revision}:artsim/index/ann.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def baseline_compact(module: types.ModuleType, folder: Path, vectors: np.ndarray, revision: str):
    """`module`'s compact index of `vectors` (all usable), built once per --work folder."""
    saved = folder / f"baseline-{revision}.faiss"
    if not saved.exists():
        saved.write_bytes(module.compact_index(vectors, np.ones(len(vectors), dtype=bool)).to_bytes().tobytes())
    return module.CompactIndex.from_bytes(np.frombuffer(saved.read_bytes(), dtype=np.uint8), *vectors.shape[::-1])


def one_list_recall(compact, vectors: np.ndarray, queries: np.ndarray, exact_rows: np.ndarray, k: int) -> float:
    """recall@10 when a query reads only its nearest list: how far from trivial the collection is."""
    ivf = faiss.extract_index_ivf(compact.index)
    probes, ivf.nprobe = ivf.nprobe, 1
    try:
        found = [compact.search(q[None, :], vectors, k)[1][0][:10] for q in queries]
    finally:
        ivf.nprobe = probes
    return recall_at_k(exact_rows, np.array(found))


def _coarse_input(index: faiss.Index, query: np.ndarray) -> np.ndarray:
    """The query as the IVF sees it (after a PCA, when the index has one)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        for step in range(index.chain.size()):
            query = index.chain.at(step).apply(query)
    return query


def profile(compact, vectors: np.ndarray, queries: np.ndarray, k: int, candidates: int) -> dict[str, float]:
    """Median ms per query of each part of a compact search: the transform (PCA), the coarse quantiser, the
    list scan, the exact re-score, and what the whole call costs beyond them (Python)."""
    ivf = faiss.extract_index_ivf(compact.index)
    parts: dict[str, list[float]] = {"transform": [], "coarse": [], "lists": [], "rescore": [], "whole": []}
    for query in queries:
        query = query[None, :]
        marks = [time.perf_counter()]
        seen = _coarse_input(compact.index, query)
        marks.append(time.perf_counter())
        distances, lists = ivf.quantizer.search(seen, ivf.nprobe)
        marks.append(time.perf_counter())
        _, proposed = ivf.search_preassigned(seen, candidates, lists, distances)
        marks.append(time.perf_counter())
        rows = np.sort(proposed[0][proposed[0] >= 0])
        exact = np.asarray(vectors[rows], dtype=np.float32) @ query[0]
        np.argsort(-exact, kind="stable")[:k]
        marks.append(time.perf_counter())
        compact.search(query, vectors, k)
        marks.append(time.perf_counter())
        for name, start, end in zip(parts, marks, marks[1:]):
            parts[name].append(end - start)
    medians = {name: 1000 * float(np.median(seconds)) for name, seconds in parts.items()}
    medians["python"] = max(0.0, medians["whole"] - sum(v for n, v in medians.items() if n != "whole"))
    return medians


def read_per_query_mb(compact, vectors: np.ndarray, candidates: int) -> float:
    """MB a compact query reads on average: every list centre, its probed lists' codes, its candidates' rows."""
    ivf = faiss.extract_index_ivf(compact.index)
    centres = ivf.nlist * ivf.d * 4
    lists = ivf.nprobe / ivf.nlist * ivf.ntotal * ivf.code_size
    return (centres + lists + candidates * vectors.shape[1] * 4) / 1e6
