"""The metrics every stage judges a score by: arrays in, plain values out (None where undefined,
so that it is written as JSON null instead of NaN).

- pair AUC: ROC AUC of a score as a detector of "this variant derives from this original";
- Spearman with strength: rank correlation of a score with the generation strength (positives);
- source retrieval: the rank of a variant's true original among the candidates, recall@k, MRR.

Retrieval ranks come from blocks of rows of a (queries x candidates) matrix, so that the
whole matrix (tens of thousands squared on WikiArt) is never held at once: only the rank
of each query's true source is kept (artsim.evaluate.source_retrieval, artsim.score.study).
Ties are broken against the true source: it ranks below every other candidate that
scores at least as high. A model that gives every candidate the same score therefore
ranks the source last, not first. A NaN score counts as the lowest possible score.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

RetrievalMetrics = dict[str, float | int | None]
RECALL_AT = (1, 5)


def finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def correlation(fn: Callable, target: np.ndarray, prediction: np.ndarray) -> float | None:
    """fn(target, prediction).statistic (scipy pearsonr/spearmanr); None with fewer than 2 points or a constant."""
    target, prediction = np.asarray(target, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if len(target) < 2 or np.ptp(target) == 0 or np.ptp(prediction) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return finite_or_none(fn(target, prediction).statistic)


def pair_aucs(positive: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """ROC AUC of each score as a detector of 'this variant derives from this original'; None with one class."""
    positive = np.asarray(positive, dtype=bool)
    if len(np.unique(positive)) < 2:
        return dict.fromkeys(scores)
    return {name: finite_or_none(roc_auc_score(positive, np.asarray(values, dtype=np.float64)))
            for name, values in scores.items()}


def strength_spearmans(
    positive: np.ndarray, strength: np.ndarray, scores: Mapping[str, np.ndarray]
) -> dict[str, float | None]:
    """Spearman of each score with the variant's strength, on positive pairs only (a negative's
    strength is that of an unrelated variant). A similarity that follows strength is negative."""
    positive = np.asarray(positive, dtype=bool)
    strength = np.asarray(strength, dtype=np.float64)[positive]
    return {
        name: correlation(stats.spearmanr, strength, np.asarray(values)[positive]) for name, values in scores.items()
    }


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
    metrics: RetrievalMetrics = {
        f"recall_at_{k}": float(np.mean(ranks <= k)) if ranks.size else None for k in recall_at
    }
    metrics["mrr"] = float(np.mean(1.0 / ranks)) if ranks.size else None
    metrics["n_queries"] = int(ranks.size)
    # recall@k is 1 by construction once k >= n_candidates: the count tells how hard the task was.
    metrics["n_candidates"] = int(n_candidates)
    return metrics
