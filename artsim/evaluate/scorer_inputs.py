"""What every scorer reads of a set of images (the model's trunk embeddings, the descriptors, the
peers' hashes and grey thumbnails), and each scorer's (queries x candidates) score blocks from
two such sets: one implementation for the plain test variants and for their altered copies.

The scorers that are search rankings (model, phash, fused: artsim.index.query.RANKINGS) rank here as
`artsim search` ranks: the same ranking's scores, the head's kept within the same cosine shortlist, so the
figures (and the default ranking chosen from them) are those of the search users run.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from artsim.core.hashes import hash_similarity
from artsim.evaluate.embedding import model_score_blocks
from artsim.evaluate.peers import HASH_NAMES, hash_score_blocks, ssim_score_blocks
from artsim.evaluate.source_retrieval import ScoreBlocks
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.query import RANKINGS, within_shortlist
from artsim.learn.models import SiameseRegressor
from artsim.score.similarity import DescriptorSet, TextureStats, cross_score_blocks

SCORER_NAMES = ("model", "descriptor", *HASH_NAMES, "ssim")


@dataclass(frozen=True)
class ScorerInputs:
    """Rows of images as each scorer reads them; descriptors / greys None where that scorer does not run."""

    embeddings: Tensor                 # (n, embedding_dim)
    descriptors: DescriptorSet | None
    hashes: Mapping[str, np.ndarray]   # HASH_NAMES -> (n,) uint64
    greys: np.ndarray | None           # (n, SSIM_SIZE, SSIM_SIZE) uint8


@dataclass(frozen=True)
class DescriptorWeighting:
    """The texture stats and weights of the descriptor score in force."""

    stats: TextureStats
    weights: Mapping[str, float]


def score_blocks(
    model: SiameseRegressor, queries: ScorerInputs, candidates: ScorerInputs, weighting: DescriptorWeighting | None,
    device: torch.device, with_fused: bool = False, shortlist: int = DEFAULT_SHORTLIST,
) -> dict[str, Callable[[], ScoreBlocks] | None]:
    """Each scorer's score blocks of every (query, candidate), or None where it does not score; with_fused
    adds `fused`, the reciprocal rank fusion of the model's and pHash's ranks of the candidates."""
    def descriptor_blocks() -> ScoreBlocks:
        return cross_score_blocks(queries.descriptors, candidates.descriptors, weighting.stats, weighting.weights)

    def hash_blocks(name: str) -> Callable[[], ScoreBlocks]:
        return lambda: hash_score_blocks(queries.hashes[name], candidates.hashes[name])

    def ssim_blocks() -> ScoreBlocks:
        return ssim_score_blocks(queries.greys, candidates.greys)

    def ranked(name: str) -> Callable[[], ScoreBlocks]:
        return lambda: ranking_score_blocks(name, model, queries, candidates, device, shortlist)

    described = weighting is not None and queries.descriptors is not None and candidates.descriptors is not None
    return {
        "model": ranked("model"),
        "descriptor": descriptor_blocks if described else None,
        **{name: ranked(name) if name in RANKINGS else hash_blocks(name) for name in HASH_NAMES},
        "ssim": ssim_blocks if queries.greys is not None and candidates.greys is not None else None,
    } | ({"fused": ranked("fused")} if with_fused else {})


def ranking_score_blocks(name: str, model: SiameseRegressor, queries: ScorerInputs, candidates: ScorerInputs,
                         device: torch.device, shortlist: int) -> ScoreBlocks:
    """The scores of search ranking `name` (RANKINGS) of every (query, candidate), block by block: the head's
    scores within each query's cosine shortlist and the pHash similarities, turned into the ranking's own."""
    ranking = RANKINGS[name]
    query_phash, candidate_phash = queries.hashes["phash"], candidates.hashes["phash"]
    if not ranking.uses_head:
        for start, phash in hash_score_blocks(query_phash, candidate_phash):
            yield start, ranking.scores(np.full(phash.shape, -np.inf), phash)
        return
    query_embeddings, candidate_embeddings = (
        inputs.embeddings.detach().cpu().numpy() for inputs in (queries, candidates)
    )
    for start, head in model_score_blocks(model, queries.embeddings, candidates.embeddings, device):
        rows = slice(start, start + len(head))
        head = within_shortlist(head, query_embeddings[rows], candidate_embeddings, shortlist)
        yield start, ranking.scores(head, hash_similarity(query_phash[rows, None], candidate_phash[None, :]))
