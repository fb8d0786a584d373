"""Each query's shortlist of candidates, for the scorers too costly to score every (query, candidate) of a
collection: their exact scores are computed for the shortlist only (artsim.evaluate.source_retrieval.Shortlisted).

A shortlist is the `size` candidates of highest inner product between unit proxy vectors, by faiss
(artsim.index.query.shortlist_rows, the very call `artsim search` shortlists with); the proxy of the model is
its trunk embeddings (the search's cosine shortlist), that of the descriptor score its own descriptor vectors
(descriptor_proxy), that of SSIM its coarse thumbnails (artsim.evaluate.peers.ssim_proxy). A shortlist of at
least every candidate is every candidate, in order, and then the figures are those of scoring them all.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
from tqdm import tqdm

from artsim.describe.table import DescriptorRows
from artsim.evaluate.source_retrieval import Shortlisted
from artsim.index.query import shortlist_rows, unit_rows
from artsim.score.similarity import DescriptorSet, TextureStats, cross_scores

# Rows of a side made descriptor proxies at once: their float64 parts are the transient (~7 KB a row).
PROXY_ROWS = 8192
# exact(rows, columns) -> scores: the exact score of query rows[i] with candidate columns[i, j], shaped as columns.
ExactScores = Callable[[np.ndarray, np.ndarray], np.ndarray]


def shortlist_columns(query_units: np.ndarray, candidate_units: np.ndarray, size: int) -> np.ndarray:
    """(queries, min(size, candidates)) candidate columns of highest inner product per query, in column order."""
    n_candidates = len(candidate_units)
    if size >= n_candidates:
        return np.broadcast_to(np.arange(n_candidates), (len(query_units), n_candidates))
    found = shortlist_rows(query_units, candidate_units, size, np.ones(n_candidates, dtype=bool))
    return np.stack([np.sort(columns) for columns, _ in found]).reshape(len(query_units), size)


def shortlisted_blocks(exact: ExactScores, query_units: np.ndarray, candidate_units: np.ndarray, size: int,
                       rows: np.ndarray, rows_per_block: int, desc: str = "shortlists") -> Iterator[Shortlisted]:
    """Shortlisted blocks of the query `rows` (at most rows_per_block each): each row's shortlist, scored exactly."""
    for start in tqdm(range(0, len(rows), rows_per_block), desc=desc, unit="block", disable=None):
        block = rows[start:start + rows_per_block]
        columns = shortlist_columns(query_units[block], candidate_units, size)
        yield Shortlisted(block, columns, exact(block, columns))


def rows_per_block(pairs: int, width: int) -> int:
    """Query rows per block so that a block holds about `pairs` (query, candidate) scores."""
    return max(1, pairs // max(1, width))


def units(vectors: np.ndarray) -> np.ndarray:
    return unit_rows(np.asarray(vectors)).astype(np.float32)


def descriptor_proxy(queries: DescriptorSet | DescriptorRows, candidates: DescriptorSet | DescriptorRows,
                     weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the queries and candidates whose inner product approximates the descriptor score: each
    weighted descriptor's vector standardised by the candidates' spread per feature and scaled to unit length,
    times the square root of its share of the weights, side by side (their weighted mean cosine).

    Each side PROXY_ROWS rows at a time, written into the float32 result: besides the results, what is held is one
    descriptor's matrix of the candidates (for its spread) or one block's float64 parts, however many images."""
    weighted = {name: w for name, w in weights.items() if w > 0 and name in queries.names and name in candidates.names}
    total = sum(weighted.values())
    spreads = {name: _spread(candidates[name]) for name in weighted}
    return tuple(_weighted_units(side, spreads, weighted, total) for side in (queries, candidates))


def _spread(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and the scale it is divided by (its standard deviation, 1 where that is 0)."""
    std = vectors.std(axis=0)
    return vectors.mean(axis=0), np.where(std > 0, std, 1.0)


def _weighted_units(side: DescriptorSet | DescriptorRows, spreads: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    weighted: Mapping[str, float], total: float) -> np.ndarray:
    widths = [len(spreads[name][0]) for name in weighted]
    proxies = np.empty((len(side), sum(widths)), dtype=np.float32)
    for start in range(0, len(side), PROXY_ROWS):
        block = side.rows(start, start + PROXY_ROWS)
        joined = np.empty((len(block), proxies.shape[1]), dtype=np.float64)
        column = 0
        for (name, weight), width in zip(weighted.items(), widths):
            mean, scale = spreads[name]
            joined[:, column:column + width] = units((block[name] - mean) / scale) * np.sqrt(weight / total)
            column += width
        joined /= np.maximum(np.linalg.norm(joined, axis=-1, keepdims=True), 1e-12)  # unit_rows, in place
        proxies[start:start + len(block)] = joined
    return proxies


def descriptor_scores(queries: DescriptorSet | DescriptorRows, candidates: DescriptorSet | DescriptorRows,
                      stats: TextureStats,
                      weights: Mapping[str, float]) -> ExactScores:
    """The descriptor score's exact(rows, columns), by the kernels that score every pair (cross_scores)."""
    def exact(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(np.shape(columns))
        return np.stack([
            cross_scores(queries.rows(row, row + 1), candidates.take(listed), stats, weights)[0]
            for row, listed in zip(rows, columns)
        ]).reshape(np.shape(columns))
    return exact
