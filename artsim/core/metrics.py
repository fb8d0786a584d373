"""Source retrieval: given a variant, is its true original ranked first among all candidates?

Ranks are computed from blocks of rows of a (queries x candidates) matrix, so that the
whole matrix (tens of thousands squared on WikiArt) is never held at once: only the rank
of each query's true source is kept (see artsim.evaluate.source_retrieval).

Ties are broken against the true source: it ranks below every other candidate that
scores at least as high. A model that gives every candidate the same score therefore
ranks the source last, not first. A NaN score counts as the lowest possible score.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RetrievalMetrics = dict[str, float | int | None]
RECALL_AT = (1, 5)


def true_source_ranks(scores: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true candidate (higher score = better), ties counted against it.

    scores: (queries, candidates); true_index: (queries,) column of each row's true source.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    true_index = np.asarray(true_index, dtype=np.int64)
    if scores.ndim != 2 or true_index.shape != (scores.shape[0],):
        raise ValueError(f"need scores (q, c) and true_index (q,), got {scores.shape} and {true_index.shape}")
    if scores.shape[0] and not (0 <= true_index.min() and true_index.max() < scores.shape[1]):
        raise ValueError("true_index points outside the candidates")
    true_scores = scores[np.arange(len(scores)), true_index]
    # Counting every candidate at or above the true score (itself included) puts ties above it.
    return (scores >= true_scores[:, None]).sum(axis=1).astype(np.int64)


def retrieval_metrics(ranks: np.ndarray, n_candidates: int, recall_at: Sequence[int] = RECALL_AT) -> RetrievalMetrics:
    """recall@k (share of queries whose source is in the top k), MRR, and the counts; None without queries."""
    ranks = np.asarray(ranks, dtype=np.float64)
    metrics: RetrievalMetrics = {f"recall_at_{k}": float(np.mean(ranks <= k)) if ranks.size else None for k in recall_at}
    metrics["mrr"] = float(np.mean(1.0 / ranks)) if ranks.size else None
    metrics["n_queries"] = int(ranks.size)
    # recall@k is 1 by construction once k >= n_candidates: the count tells how hard the task was.
    metrics["n_candidates"] = int(n_candidates)
    return metrics
