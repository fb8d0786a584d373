"""Top-k originals of an index for query embeddings and pHashes, by one of three rankings.

- model: shortlist by cosine of trunk embeddings (exact, faiss), re-ranked by the model's head (the
  head is not a distance: it scores only the shortlist), as `artsim search` always did;
- phash: Hamming similarity of 64-bit pHashes over every original;
- fused: reciprocal rank fusion (artsim.core.fusion) of the model's ranks (over its shortlist) and pHash's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from artsim.core.fusion import RRF_K, ranks_from_scores, reciprocal_rank_fusion
from artsim.core.hashes import hash_similarity
from artsim.index import RANKINGS  # noqa: F401  (the rankings implemented here)
from artsim.index.ann import top_inner_products
from artsim.index.store import StoredIndex

# The head's score of one query embedding (1, dim) against candidate embeddings (k, dim).
HeadScores = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Ranked:
    row: int
    score: float   # the ranking's own score (head score, pHash similarity, or fused RRF score)
    cosine: float


class IndexSearch:
    """Queries against one loaded index."""

    def __init__(self, index: StoredIndex) -> None:
        self.index = index
        self.usable = index.usable
        self.phash = index.phash_bits
        self.unusable_count = int((~self.usable).sum())

    def shortlists(self, query_embeddings: np.ndarray, shortlist: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rows, cosines) per query: the `shortlist` usable originals of highest cosine, best first."""
        units = query_embeddings / np.maximum(np.linalg.norm(query_embeddings, axis=1, keepdims=True), 1e-12)
        scores, rows = top_inner_products(units.astype(np.float32), self.index.vectors, shortlist + self.unusable_count)
        found = []
        for score_row, index_row in zip(scores, rows):
            keep = (index_row >= 0) & self.usable[np.maximum(index_row, 0)]
            found.append((index_row[keep][:shortlist].astype(np.int64), score_row[keep][:shortlist].astype(np.float64)))
        return found

    def by_model(self, query_embedding: np.ndarray, rows: np.ndarray, cosines: np.ndarray, head: HeadScores) -> list[Ranked]:
        if len(rows) == 0:
            return []
        candidates = np.asarray(self.index.vectors[rows], dtype=np.float32) * self.index.norms[rows][:, None]
        scores = head(query_embedding[None, :], candidates)
        order = np.argsort(-scores, kind="stable")
        return [Ranked(int(rows[i]), float(scores[i]), float(cosines[i])) for i in order]

    def phash_similarities(self, query_phash: np.uint64) -> np.ndarray:
        return np.where(self.usable, hash_similarity(query_phash, self.phash), -np.inf)

    def by_phash(self, query_phash: np.uint64, query_embedding: np.ndarray, top_k: int) -> list[Ranked]:
        similarity = self.phash_similarities(query_phash)
        order = np.argsort(-similarity, kind="stable")[:min(top_k, int(self.usable.sum()))]
        return [Ranked(int(r), float(similarity[r]), self._cosine(query_embedding, r)) for r in order]

    def fused(self, model_ranked: list[Ranked], query_phash: np.uint64, query_embedding: np.ndarray, top_k: int,
              k: int = RRF_K) -> list[Ranked]:
        """RRF of the model's ranks (its shortlist; the rest ranks nowhere) and pHash's ranks over every usable original."""
        model_ranks = np.zeros(len(self.usable), dtype=np.int64)
        model_ranks[[r.row for r in model_ranked]] = np.arange(1, len(model_ranked) + 1)
        phash_ranks = np.where(self.usable, ranks_from_scores(self.phash_similarities(query_phash)), 0)
        fused = np.where(self.usable, reciprocal_rank_fusion([model_ranks, phash_ranks], k), -np.inf)
        order = np.argsort(-fused, kind="stable")[:min(top_k, int(self.usable.sum()))]
        return [Ranked(int(r), float(fused[r]), self._cosine(query_embedding, r)) for r in order]

    def _cosine(self, query_embedding: np.ndarray, row: int) -> float:
        unit = query_embedding / max(float(np.linalg.norm(query_embedding)), 1e-12)
        return float(np.dot(np.asarray(self.index.vectors[row], dtype=np.float64), unit))
