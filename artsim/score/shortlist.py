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


def _column_stats(part: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column of `part`, one part of a matrix `width` columns wide, in that
    matrix's bits: numpy sums a lone column pairwise but the columns of a wider matrix row by row."""
    wide = np.concatenate([part, part], axis=1) if part.shape[1] == 1 < width else part
    return wide.mean(0)[:part.shape[1]], wide.std(0)[:part.shape[1]]


@dataclass(frozen=True)
class Proxy:
    """Per-dimension standardisation fitted on the candidates, and the candidates' proxy vectors."""

    mean: np.ndarray
    scale: np.ndarray
    candidates: np.ndarray  # float32 (candidates, dims)
    squared_norms: np.ndarray

    @classmethod
    def fit(cls, parts: Sequence[tuple[np.ndarray, float]], rows: np.ndarray) -> "Proxy":
        """parts: (vectors, factor) per descriptor, the candidates being their `rows`, concatenated after
        standardisation."""
        width = sum(vectors.shape[1] for vectors, _ in parts)
        candidates = np.empty((len(rows), width), dtype=np.float32)
        means, scales, offset = [], [], 0
        for vectors, factor in parts:
            # One descriptor at a time: the float64 transients are one descriptor's rows (the columns are
            # standardised independently), never every candidate vector at once, nor a copy of `vectors`.
            part = vectors[rows].astype(np.float64, copy=False)
            mean, spread = _column_stats(part, width)
            scale = factor / np.where(spread > 0, spread, 1.0)
            part -= mean
            part *= scale
            candidates[:, offset:offset + part.shape[1]] = part
            means.append(mean)
            scales.append(scale)
            offset += part.shape[1]
        squared_norms = np.concatenate([(block.astype(np.float64) ** 2).sum(1)
                                        for block in np.array_split(candidates, max(1, len(candidates) // 4096))])
        return cls(np.concatenate(means), np.concatenate(scales), candidates, squared_norms)

    def nearest(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """(len(vectors), count) candidate rows nearest each query, the farthest of them last."""
        queries = ((vectors - self.mean) * self.scale).astype(np.float32)
        closeness = 2.0 * (queries @ self.candidates.T) - self.squared_norms[None, :]  # -|q - c|² + |q|²
        return np.argpartition(-closeness, count - 1, axis=1)[:, :count]


def proxies(images: DescriptorSet, rows: np.ndarray, names: Sequence[str], weights: ScoreWeights) -> dict[str, Proxy]:
    """One proxy per descriptor, and one for the weighted score over its weighted descriptors, of the candidates
    `rows` of `images`."""
    out = {name: Proxy.fit([(images[name], 1.0)], rows) for name in names}
    weighted = {name: w for name, w in weights.as_dict().items() if w > 0 and name in names}
    out[SCORE] = Proxy.fit([(images[name], np.sqrt(w / images[name].shape[1])) for name, w in weighted.items()], rows)
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
                           max_pairs: int = 1 << 21, rows: np.ndarray | None = None) -> ShortlistRanks:
    """Rank of candidate targets[q] for query q by each descriptor and the score, re-ranked on a shortlist.

    rows: the candidates are these rows of `candidates` (targets index them), read in place (default: every row).
    """
    names = [n for n in queries.names if n in candidates.names]
    combine({name: np.zeros(1) for name in names}, weights)  # fails naming a weighted descriptor not described
    keys = (*names, SCORE)
    rows = np.arange(len(candidates)) if rows is None else rows
    if shortlist >= len(rows):  # the shortlist is everything: the full ranking, in blocks of queries
        every = candidates if np.array_equal(rows, np.arange(len(candidates))) else candidates.take(rows)
        return ShortlistRanks(full_source_ranks(queries, every, targets, stats, weights, names, max_pairs),
                              {key: 0.0 for key in keys})
    by_key = proxies(candidates, rows, names, weights)
    ranks = {key: np.empty(len(queries), dtype=np.int64) for key in keys}
    missed = {key: 0 for key in keys}
    per_block = max(1, max_pairs // len(rows))
    for start in tqdm(range(0, len(queries), per_block), desc="descriptor study", unit="block", disable=None):
        block, own = queries.rows(start, start + per_block), targets[start:start + per_block]
        near = {}
        for key in keys:
            near[key], missing = _with_sources(
                by_key[key].nearest(_query_vectors(block, key, names, weights), shortlist), own)
            missed[key] += int(missing.sum())
        for row in range(len(block)):
            listed = {key: rows[near[key][row]] for key in keys}
            ranked = _exact_ranks(block.rows(row, row + 1), candidates, listed, rows[own[row]], stats, weights)
            for key, rank in ranked.items():
                ranks[key][start + row] = rank
    outside = {key: missed[key] / len(queries) if len(queries) else 0.0 for key in keys}
    return ShortlistRanks(ranks, outside)
