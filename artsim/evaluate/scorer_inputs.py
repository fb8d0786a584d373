"""What every scorer reads of a set of images (the model's trunk embeddings, the descriptors, the
peers' hashes and grey thumbnails), and each scorer's (queries x candidates) score blocks from
two such sets: one implementation for the plain test variants and for their altered copies.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from artsim.evaluate.embedding import model_score_blocks
from artsim.core.fusion import fused_scores
from artsim.core.hashes import hash_similarity
from artsim.evaluate.peers import HASH_NAMES, hash_score_blocks, ssim_score_blocks
from artsim.evaluate.source_retrieval import ScoreBlocks
from artsim.learn.models import SiameseRegressor
from artsim.score.similarity import DescriptorSet, TextureStats, cross_score_blocks

SCORER_NAMES = ("model", "descriptor", *HASH_NAMES, "ssim")


@dataclass(frozen=True)
class ScorerInputs:
    """Rows of images as each scorer reads them; descriptors / greys None where that scorer does not run."""

    embeddings: Tensor                 # (n, 2048)
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
    device: torch.device, with_fused: bool = False,
) -> dict[str, Callable[[], ScoreBlocks] | None]:
    """Each scorer's score blocks of every (query, candidate), or None where it does not score; with_fused
    adds `fused`, the reciprocal rank fusion of the model's and pHash's ranks of the candidates."""
    def model_blocks() -> ScoreBlocks:
        return model_score_blocks(model, queries.embeddings, candidates.embeddings, device)

    def descriptor_blocks() -> ScoreBlocks:
        return cross_score_blocks(queries.descriptors, candidates.descriptors, weighting.stats, weighting.weights)

    def hash_blocks(name: str) -> Callable[[], ScoreBlocks]:
        return lambda: hash_score_blocks(queries.hashes[name], candidates.hashes[name])

    def ssim_blocks() -> ScoreBlocks:
        return ssim_score_blocks(queries.greys, candidates.greys)

    def fused_blocks() -> ScoreBlocks:
        for start, block in model_blocks():
            phash = hash_similarity(queries.hashes["phash"][start:start + len(block), None], candidates.hashes["phash"][None, :])
            yield start, fused_scores(block, phash)

    described = weighting is not None and queries.descriptors is not None and candidates.descriptors is not None
    return {
        "model": model_blocks,
        "descriptor": descriptor_blocks if described else None,
        **{name: hash_blocks(name) for name in HASH_NAMES},
        "ssim": ssim_blocks if queries.greys is not None and candidates.greys is not None else None,
    } | ({"fused": fused_blocks} if with_fused else {})
