"""The per-query search that the index replaced, kept as the reference the Searcher is checked against
(the app's search tests; bench/search.py times both): every candidate embedded (cached per image content
under a given folder), the cosine shortlist re-ranked by the head, one query at a time. Not used by artsim.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import torch

from artsim.app.api import ImageInput, Scorer, UserError
from artsim.app.render import threshold_note
from artsim.core.images import ImageRejected, file_hash
from artsim.core.vector_files import read_vector, write_vector
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.collection import Original
from artsim.index.search import EMBED_BATCH, Hit
from artsim.learn.features import embed_images
from artsim.learn.models import ImageEmbedding

log = logging.getLogger(__name__)


# --- the embedding cache -------------------------------------------------------------------

class EmbeddingCache:
    """One .npy per (model, image content); verified on read (shape, dtype, finite), rebuilt if damaged."""

    def __init__(self, root: Path, model_fingerprint: str) -> None:
        self.folder = root / model_fingerprint[:24]

    def _path(self, content: str) -> Path:
        return self.folder / content[:2] / f"{content}.npy"

    def get(self, content: str, width: int) -> np.ndarray | None:
        path = self._path(content)
        vector, problem = read_vector(path, np.float32, width)
        if problem:
            log.warning("damaged cached embedding %s (%s): computed again", path, problem)
        return vector

    def put(self, content: str, vector: np.ndarray) -> None:
        write_vector(self._path(content), vector, np.float32)


def candidate_embeddings(scorer: Scorer, candidates: Sequence[Original], cache: EmbeddingCache
                         ) -> tuple[np.ndarray, dict[int, str]]:
    """(n, embedding_dim) embeddings in candidate order, and the positions that could not be used, with why."""
    width = scorer.model.embedding_dim
    embeddings = np.zeros((len(candidates), width), dtype=np.float32)
    unusable: dict[int, str] = {}
    missing: list[tuple[int, str]] = []
    for position, candidate in enumerate(candidates):
        try:
            content = file_hash(candidate.image)
        except OSError as exc:
            unusable[position] = f"unreadable ({exc.strerror or exc})"
            continue
        except ImageRejected as exc:  # a shard shorter than its manifest says
            unusable[position] = str(exc)
            continue
        cached = cache.get(content, width)
        if cached is None:
            missing.append((position, content))
        else:
            embeddings[position] = cached
    if missing:
        computed, failed = embed_images(
            ImageEmbedding(scorer.model),
            [candidates[p].image for p, _ in missing],
            scorer.image_size,
            EMBED_BATCH,
            scorer.device,
            desc="embed candidates",
        )
        for row, (position, content) in enumerate(missing):
            if row in failed:
                unusable[position] = failed[row]
                continue
            embeddings[position] = computed[row].numpy()
            cache.put(content, embeddings[position])
    for position, why in unusable.items():
        log.warning("candidate %s left out: %s", candidates[position].image, why)
    return embeddings, unusable


# --- ranking -------------------------------------------------------------------------------

def cosine_similarities(query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    query_unit = query / max(float(np.linalg.norm(query)), 1e-12)
    norms = np.maximum(np.linalg.norm(candidates, axis=1), 1e-12)
    return candidates @ query_unit / norms


def head_ranked(scorer: Scorer, query_embedding: np.ndarray, embeddings: np.ndarray, usable: np.ndarray,
                    shortlist: int) -> list[tuple[int, float, float]]:
    """(position, head score, cosine) of the shortlisted candidates, best head score first.

    Ties keep cosine order (a stable sort), so the result does not depend on the platform's sort.
    """
    cosine = np.where(usable, cosine_similarities(query_embedding, embeddings), -np.inf)
    order = np.argsort(-cosine, kind="stable")[:min(shortlist, int(usable.sum()))]
    if len(order) == 0:
        return []
    scores = scorer.head_scores(torch.as_tensor(query_embedding[None, :]), torch.as_tensor(embeddings[order]))
    reranked = np.argsort(-scores, kind="stable")
    return [(int(order[i]), float(scores[i]), float(cosine[order[i]])) for i in reranked]


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    candidates: int
    skipped: dict[str, str]  # path of each candidate left out -> why
    threshold_note: str = ""


def search(scorer: Scorer, query: ImageInput, candidates: Sequence[Original], cache: EmbeddingCache, top_k: int = 5,
           shortlist: int = DEFAULT_SHORTLIST) -> SearchResult:
    """The `top_k` candidates most similar to `query` by the model, best first; unusable candidates are
    left out and listed, never fatal."""
    if top_k < 1 or shortlist < 1:
        raise UserError("--top-k and --shortlist must be at least 1")
    query_embedding = scorer.embed(query)[0]  # an unusable query fails before any candidate is embedded
    embeddings, unusable = candidate_embeddings(scorer, candidates, cache)
    usable = np.ones(len(candidates), dtype=bool)
    usable[list(unusable)] = False
    ranked = head_ranked(scorer, query_embedding, embeddings, usable, max(shortlist, top_k))[:top_k]
    hits = [
        Hit(
            candidates[p].id,
            rank,
            score,
            cosine,
            candidates[p].artist,
            candidates[p].title,
            str(candidates[p].image),
            *astuple(scorer.judge({"model": score})),
        )
        for rank, (p, score, cosine) in enumerate(ranked, start=1)
    ]
    return SearchResult(hits, len(candidates), {str(candidates[p].image): why for p, why in sorted(unusable.items())},
                        threshold_note(scorer, "model"))
