"""Top-k originals of an index for one query, by a ranking of RANKINGS (the registry, defined here):

- model: shortlist by cosine of trunk embeddings (exact, faiss), re-ranked by the model's head (the
  head is not a distance: it scores only the shortlist), as `artsim search` always did;
- phash: Hamming similarity of 64-bit pHashes over every original;
- fused: the calibrated probability that the query derives from the original (Calibration: a logistic model of
  the head's score and the pHash similarity, fitted by evaluate on validation pairs and shipped with the weights);
  without a calibration it orders by reciprocal rank fusion (artsim.core.fusion) of both rankings and marks nothing.

A ranking turns the head's scores (-inf outside the shortlist) and the pHash similarities (-inf where an
original is unusable) into one score per original, on arrays of any leading shape: `IndexSearch.rank` runs
it for one query, the evaluate stage for blocks of queries, so both measure and run the same ranking.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from artsim.core.fusion import RRF_K, ranks_from_scores, reciprocal_rank_fusion
from artsim.core.hashes import hash_similarity
from artsim.index.ann import CompactIndex, top_inner_products
from artsim.index.store import StoredIndex

# The head's score of one query embedding (1, dim) against candidate embeddings (k, dim).
HeadScores = Callable[[np.ndarray, np.ndarray], np.ndarray]


# The evidence a search has for every original at no extra cost (what a calibration may combine).
QUERY_EVIDENCE = ("model", "phash")


@dataclass(frozen=True)
class Calibration:
    """p(derived) = logistic(intercept + sum of coefficient x evidence) over `features` (QUERY_EVIDENCE names),
    fitted on held-out validation pairs (artsim.evaluate.calibration); `positives`/`negatives`: those pairs."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    positives: int = 0
    negatives: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(QUERY_EVIDENCE)
        if unknown or len(self.features) != len(self.coefficients) or not self.features:
            raise ValueError(f"a calibration combines one coefficient per feature of {', '.join(QUERY_EVIDENCE)}, "
                             f"not {list(self.features)} with {len(self.coefficients)} coefficients")
        if not np.all(np.isfinite([*self.coefficients, self.intercept])):
            raise ValueError("a calibration's coefficients and intercept must be finite")

    def probability(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        """p(derived) of each element; a score not computed (-inf: outside the model's shortlist) counts as 0, the
        lowest similarity, so the other evidence alone must carry it."""
        logit = np.full(np.shape(evidence[self.features[0]]), self.intercept, dtype=np.float64)
        for name, coefficient in zip(self.features, self.coefficients):
            values = np.asarray(evidence[name], dtype=np.float64)
            logit = logit + coefficient * np.where(np.isfinite(values), values, 0.0)
        return expit(logit)


class Ranking:
    """One way of ordering the originals for a query."""

    name: ClassVar[str]
    over_shortlist: ClassVar[bool] = False  # ranks the cosine shortlist only (else every usable original)
    uses_head: ClassVar[bool] = True  # needs the head's scores of the shortlist
    # The scorers (evaluate's names) whose own held-out thresholds judge a hit of this ranking: a hit is marked
    # only where each of their scores reaches its scorer's threshold, never the ranking's score another's.
    judged_by: ClassVar[tuple[str, ...]]

    def scores(self, head: np.ndarray, phash: np.ndarray, calibration: Calibration | None = None) -> np.ndarray:
        """The ranking's score of each original (higher first; -inf: not ranked) along the last axis."""
        raise NotImplementedError

    def evidence(self, head: float, phash: float, score: float) -> dict[str, float]:
        """The score of each scorer of `judged_by` for one original (the head's score, its pHash similarity, the
        ranking's own score: fused's is its calibrated probability)."""
        return {name: {"model": head, "phash": phash, "fused": score}[name] for name in self.judged_by}

    @classmethod
    def scorers_named(cls) -> str:
        return " and ".join(SCORER_WORDS[name] for name in cls.judged_by)


# How a legend names each scorer's score.
SCORER_WORDS = {"model": "model score", "phash": "pHash similarity", "fused": "calibrated p(derived)"}
RANKINGS: dict[str, Ranking] = {}


def register(ranking: type[Ranking]) -> type[Ranking]:
    RANKINGS[ranking.name] = ranking()
    return ranking


def ranking_named(name: str) -> Ranking:
    """The registered ranking `name`; ValueError naming the allowed ones otherwise."""
    if name not in RANKINGS:
        raise ValueError(f"unknown ranking {name!r}: one of {', '.join(RANKINGS)}")
    return RANKINGS[name]


@register
class ModelRanking(Ranking):
    name = "model"
    over_shortlist = True
    judged_by = ("model",)

    def scores(self, head: np.ndarray, phash: np.ndarray, calibration: Calibration | None = None) -> np.ndarray:
        return head


@register
class PhashRanking(Ranking):
    name = "phash"
    uses_head = False
    judged_by = ("phash",)

    def scores(self, head: np.ndarray, phash: np.ndarray, calibration: Calibration | None = None) -> np.ndarray:
        return phash


@register
class FusedRanking(Ranking):
    """The calibrated probability of "derived" from the head's score (its shortlist; 0 elsewhere) and pHash's
    similarity, over every usable original, judged by its own held-out thresholds on that probability. Without a
    calibration (none shipped) it orders by the RRF of the model's and pHash's ranks (ties share the best rank of
    their group) and has no thresholds: an RRF sum is no probability, so nothing is marked."""

    name = "fused"
    judged_by = ("fused",)

    def scores(self, head: np.ndarray, phash: np.ndarray, calibration: Calibration | None = None,
               k: int = RRF_K) -> np.ndarray:
        usable = np.isfinite(phash)
        if calibration is not None:
            return np.where(usable, calibration.probability({"model": head, "phash": phash}), -np.inf)
        model_ranks = np.where(np.isfinite(head), ranks_from_scores(head), 0)
        phash_ranks = np.where(usable, ranks_from_scores(phash), 0)
        return np.where(usable, reciprocal_rank_fusion([model_ranks, phash_ranks], k), -np.inf)


def shortlist_rows(query_units: np.ndarray, units: np.ndarray, shortlist: int, usable: np.ndarray,
                   compact: CompactIndex | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, cosines) per query row: the `shortlist` usable rows of `units` of highest cosine, best first
    (their candidates proposed by `compact`, which holds usable rows only, when given)."""
    unusable = 0 if compact is not None else int((~usable).sum())
    scores, rows = top_inner_products(query_units.astype(np.float32), units, shortlist + unusable, compact)
    found = []
    for score_row, index_row in zip(scores, rows):
        keep = (index_row >= 0) & usable[np.maximum(index_row, 0)]
        found.append((index_row[keep][:shortlist].astype(np.int64), score_row[keep][:shortlist].astype(np.float64)))
    return found


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Ranked:
    row: int
    score: float   # the ranking's own score (head score, pHash similarity, or fused RRF score)
    cosine: float
    evidence: dict[str, float]  # the scores that judge it (Ranking.evidence): -inf where not computed


class IndexSearch:
    """Queries against one loaded index."""

    def __init__(self, index: StoredIndex, calibration: Calibration | None = None) -> None:
        self.index = index
        self.usable = index.usable
        self.phash = index.phash_bits
        self.calibration = calibration  # fused's, shipped with the model

    def shortlists(self, query_embeddings: np.ndarray, shortlist: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rows, cosines) per query: the `shortlist` usable originals of highest cosine, best first."""
        return shortlist_rows(unit_rows(query_embeddings), self.index.vectors, shortlist, self.usable,
                              self.index.compact)

    def rank(self, ranking: str, query_embedding: np.ndarray, query_phash: np.uint64,
             shortlisted: tuple[np.ndarray, np.ndarray], head: HeadScores, top_k: int) -> list[Ranked]:
        """The `top_k` best originals for one query by `ranking`; ties keep the order of the originals ranked
        (the shortlist's cosine order, or the index's row order)."""
        chosen = ranking_named(ranking)
        rows, cosines = shortlisted
        head_scores = self.head_scores(query_embedding, rows if chosen.uses_head else rows[:0], head)
        phash = self.phash_similarities(query_phash)
        scores = chosen.scores(head_scores, phash, self.calibration)
        ranked_rows = rows if chosen.over_shortlist else np.flatnonzero(self.usable)
        ranked = scores[ranked_rows]
        order = [i for i in np.argsort(-ranked, kind="stable")[:top_k] if np.isfinite(ranked[i])]
        found = []
        for i in order:
            row = int(ranked_rows[i])
            cosine = float(cosines[i]) if chosen.over_shortlist else self._cosine(query_embedding, row)
            evidence = chosen.evidence(float(head_scores[row]), float(phash[row]), float(ranked[i]))
            found.append(Ranked(row, float(ranked[i]), cosine, evidence))
        return found

    def head_scores(self, query_embedding: np.ndarray, rows: np.ndarray, head: HeadScores) -> np.ndarray:
        """The head's score of each shortlisted original; -inf for every other."""
        scores = np.full(len(self.usable), -np.inf)
        if len(rows):
            candidates = np.asarray(self.index.vectors[rows], dtype=np.float32) * self.index.norms[rows][:, None]
            scores[rows] = head(query_embedding[None, :], candidates)
        return scores

    def phash_similarities(self, query_phash: np.uint64) -> np.ndarray:
        return np.where(self.usable, hash_similarity(query_phash, self.phash), -np.inf)

    def _cosine(self, query_embedding: np.ndarray, row: int) -> float:
        unit = query_embedding / max(float(np.linalg.norm(query_embedding)), 1e-12)
        return float(np.dot(np.asarray(self.index.vectors[row], dtype=np.float64), unit))
