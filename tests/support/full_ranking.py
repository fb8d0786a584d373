"""Every (query, candidate) score in row blocks: the full ranking that evaluate's shortlists replaced, kept as the
reference the shortlisted figures are checked against (tests/evaluate/test_shortlists.py). Not used by artsim."""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from artsim.evaluate.embedding import PAIRS_PER_CALL
from artsim.learn.models import SiameseRegressor
from artsim.params import ScoreWeights
from artsim.score.similarity import DescriptorSet, TextureStats, cross_scores


@torch.no_grad()
def model_score_blocks(
    model: SiameseRegressor,
    queries: Tensor,
    candidates: Tensor,
    device: torch.device,
    pairs_per_call: int = PAIRS_PER_CALL,
) -> Iterator[tuple[int, np.ndarray]]:
    """f(query, candidate) for every combination, as (first row, (rows, len(candidates)) block) pieces.

    Pairs are gathered from the embeddings per call, so at most `pairs_per_call` pair
    features exist at any time, never a queries x candidates x 4096 tensor.
    """
    model.eval()
    queries, candidates = queries.to(device), candidates.to(device)
    n_candidates = len(candidates)
    rows = max(1, pairs_per_call // max(1, n_candidates))
    for start in tqdm(range(0, len(queries), rows), desc="model scores", unit="block", disable=None):
        block = queries[start:start + rows]
        flat = torch.arange(len(block) * n_candidates, device=device)
        scores = torch.cat([
            model.score_embeddings(block[chunk // n_candidates], candidates[chunk % n_candidates]).float()
            for chunk in flat.split(pairs_per_call)
        ])
        yield start, scores.view(len(block), n_candidates).cpu().numpy()


def cross_score_blocks(
    a: DescriptorSet,
    b: DescriptorSet,
    stats: TextureStats,
    weights: ScoreWeights | Mapping[str, float],
    max_pairs: int = 1 << 20,
) -> Iterator[tuple[int, np.ndarray]]:
    """cross_scores in blocks of whole rows of a, (first row, block), each about `max_pairs` scores at most."""
    rows = max(1, max_pairs // max(1, len(b)))
    for start in tqdm(range(0, len(a), rows), desc="descriptor scores", unit="block", disable=None):
        yield start, cross_scores(a.rows(start, start + rows), b, stats, weights)
