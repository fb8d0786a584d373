"""Reciprocal rank fusion (Cormack et al., 2009): one ranking from several, without calibrating their scores.

Each ranking gives an item 1 / (k + rank) (rank 1 = best); an item a ranking leaves out gets nothing
from it. k = 60 is the paper's value: it keeps one ranking's first place from outweighing the others.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

RRF_K = 60


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each item along the last axis, best (highest) score first. Tied items share the best
    rank of their group (pHash similarities take 65 values: the order of the items must not decide)."""
    return rankdata(-np.asarray(scores, dtype=np.float64), method="min", axis=-1).astype(np.int64)


def reciprocal_rank_fusion(ranks: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """The fused score of each item from its 1-based ranks (0 or below: left out by that ranking)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    fused = np.zeros(np.shape(ranks[0]), dtype=np.float64)
    for rank in ranks:
        rank = np.asarray(rank)
        fused += np.where(rank > 0, 1.0 / (k + np.maximum(rank, 1)), 0.0)
    return fused


def fused_scores(*scores: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """reciprocal_rank_fusion of the rankings that each score array gives (higher = better, same shape)."""
    return reciprocal_rank_fusion([ranks_from_scores(s) for s in scores], k)
