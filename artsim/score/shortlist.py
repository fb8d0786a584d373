"""Source retrieval on a shortlist: each query's `shortlist` nearest originals by a cheap vector proxy,
re-ranked with the exact kernels, so that the exact work is queries x shortlist whatever the
collection's size (the proxy is one matrix product per block of queries).

The proxy of a descriptor is the Euclidean distance between its vectors standardised per dimension
over the candidates (the exact kernels are all distances of some kind: L1, L2, Hamming, ΔE); the
proxy of the weighted score concatenates them, each scaled by its weight over its length. A query's
rank is 1 + the shortlisted candidates other than its source that score at or above it (ties
against it, as artsim.core.metrics): the full ranking's rank whenever the shortlist holds every
candidate that outscores the source; a shortlist as long as the collection is the full ranking (then
computed in blocks of queries against every candidate, as without a shortlist). A source
the proxy leaves out is put back in place of the shortlist's last; how often that happens is
reported (`outside`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from artsim.core.metrics import true_source_ranks
from artsim.describe.kernels import TextureStats
from artsim.describe.registry import DESCRIPTORS
from artsim.params import ScoreWeights
from artsim.score.similarity import DescriptorSet, combine, cross_similarities

SCORE = "score"


@dataclass(frozen=True)
class ShortlistRanks:
    """Per descriptor (and the score): each query's rank, and the share of queries whose source the proxy missed."""

    ranks: dict[str, np.ndarray]
    outside: dict[str, float]


@dataclass(frozen=True)
class Proxy:
    """Per-dimension standardisation fitted on the candidates, and the candidates' proxy vectors."""

    mean: np.ndarray
    scale: np.ndarray
    candidates: np.ndarray  # float32 (candidates, dims)
    squared_norms: np.ndarray

    @classmethod
    def fit(cls, parts: Sequence[tuple[np.ndarray, float]]) -> "Proxy":
        """parts: (candidate vectors, factor) per descriptor, concatenated after standardisation."""
        # One float64 copy of the candidates' vectors, standardised in place: the only transient as large as them.
        stacked = np.concatenate([vectors.astype(np.float64, copy=False) for vectors, _ in parts], axis=1)
        factors = np.concatenate([np.full(vectors.shape[1], factor) for vectors, factor in parts])
        mean, spread = stacked.mean(0), stacked.std(0)
        scale = factors / np.where(spread > 0, spread, 1.0)
        stacked -= mean
        stacked *= scale
        candidates = stacked.astype(np.float32)
        del stacked
        return cls(mean, scale, candidates, (candidates.astype(np.float64) ** 2).sum(1))

    def nearest(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """(len(vectors), count) candidate rows nearest each query, the farthest of them last."""
        queries = ((vectors - self.mean) * self.scale).astype(np.float32)
        closeness = 2.0 * (queries @ self.candidates.T) - self.squared_norms[None, :]  # -|q - c|² + |q|²
        return np.argpartition(-closeness, count - 1, axis=1)[:, :count]


def proxies(candidates: DescriptorSet, names: Sequence[str], weights: ScoreWeights) -> dict[str, Proxy]:
    """One proxy per descriptor, and one for the weighted score over its weighted descriptors."""
    out = {name: Proxy.fit([(candidates[name], 1.0)]) for name in names}
    weighted = {name: w for name, w in weights.as_dict().items() if w > 0 and name in names}
    out[SCORE] = Proxy.fit([(candidates[name], np.sqrt(w / candidates[name].shape[1])) for name, w in weighted.items()])
    return out


def _query_vectors(queries: DescriptorSet, key: str, names: Sequence[str], weights: ScoreWeights) -> np.ndarray:
    if key != SCORE:
        return queries[key]
    weighted = [name for name, w in weights.as_dict().items() if w > 0 and name in names]
    return np.concatenate([queries[name] for name in weighted], axis=1)


def _with_sources(near: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shortlists with each missing source in place of the last (farthest) entry, and which were missing."""
    missing = ~(near == sources[:, None]).any(1)
    near[missing, -1] = sources[missing]
    return near, missing


def _exact_ranks(query: DescriptorSet, candidates: DescriptorSet, listed: Mapping[str, np.ndarray], source: int,
                 stats: TextureStats, weights: ScoreWeights) -> dict[str, int]:
    """One query's rank by each key among its own shortlist, by the exact kernels on only the vectors each needs."""
    def similarities(names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: DESCRIPTORS[name].cross(query[name], candidates[name][rows], stats) for name in names}

    weighted = [name for name, w in weights.as_dict().items() if w > 0]
    sims = {key: similarities([key], rows)[key] for key, rows in listed.items() if key != SCORE}
    sims[SCORE] = combine(similarities(weighted, listed[SCORE]), weights)
    return {key: int(true_source_ranks(sims[key], np.flatnonzero(rows == source)[:1])[0])
            for key, rows in listed.items()}


def full_source_ranks(queries: DescriptorSet, candidates: DescriptorSet, targets: np.ndarray, stats: TextureStats,
                      weights: ScoreWeights, names: Sequence[str], max_pairs: int) -> dict[str, np.ndarray]:
    """Every query against every candidate, in blocks of whole queries (about `max_pairs` at a time)."""
    ranks = {key: np.empty(len(queries), dtype=np.int64) for key in (*names, SCORE)}
    rows = max(1, max_pairs // max(1, len(candidates)))
    for start in tqdm(range(0, len(queries), rows), desc="descriptor study", unit="block", disable=None):
        block = queries.rows(start, start + rows)
        sims = cross_similarities(block, candidates, stats, names)
        sims[SCORE] = combine(sims, weights)
        for key, matrix in sims.items():
            ranks[key][start:start + len(block)] = true_source_ranks(matrix, targets[start:start + len(block)])
    return ranks


def shortlist_source_ranks(queries: DescriptorSet, candidates: DescriptorSet, targets: np.ndarray,
                           stats: TextureStats, weights: ScoreWeights, shortlist: int,
                           max_pairs: int = 1 << 21) -> ShortlistRanks:
    """Rank of candidate targets[q] for query q by each descriptor and the score, re-ranked on a shortlist."""
    names = [n for n in queries.names if n in candidates.names]
    combine({name: np.zeros(1) for name in names}, weights)  # fails naming a weighted descriptor not described
    keys = (*names, SCORE)
    if shortlist >= len(candidates):  # the shortlist is everything: the full ranking, in blocks of queries
        return ShortlistRanks(full_source_ranks(queries, candidates, targets, stats, weights, names, max_pairs),
                              {key: 0.0 for key in keys})
    by_key = proxies(candidates, names, weights)
    ranks = {key: np.empty(len(queries), dtype=np.int64) for key in keys}
    missed = {key: 0 for key in keys}
    rows = max(1, max_pairs // len(candidates))
    for start in tqdm(range(0, len(queries), rows), desc="descriptor study", unit="block", disable=None):
        block, own = queries.rows(start, start + rows), targets[start:start + rows]
        near = {}
        for key in keys:
            near[key], missing = _with_sources(
                by_key[key].nearest(_query_vectors(block, key, names, weights), shortlist), own)
            missed[key] += int(missing.sum())
        for row in range(len(block)):
            ranked = _exact_ranks(block.rows(row, row + 1), candidates, {key: near[key][row] for key in keys},
                                  own[row], stats, weights)
            for key, rank in ranked.items():
                ranks[key][start + row] = rank
    outside = {key: missed[key] / len(queries) if len(queries) else 0.0 for key in keys}
    return ShortlistRanks(ranks, outside)
