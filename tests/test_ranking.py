"""The siamese loss's ranking term (issue 17 §3b): in-batch InfoNCE over the positives."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artsim.siamese.ranking import ranking_loss, ranking_pairs
from artsim.siamese.train import PairScorer, regressor_epoch
from artsim.learn.models import SiameseRegressor
from artsim.learn.training import Runtime, make_deterministic

CPU = Runtime(torch.device("cpu"))

# A batch over 5 unique inputs: originals 0 and 1, variants 2, 3 (of 0) and 4 (of 1);
# pairs (0,2) (0,3) (1,4) positive, (0,4) (1,2) negative.
FIRST = torch.tensor([0, 0, 1, 0, 1])
SECOND = torch.tensor([2, 3, 4, 4, 2])
POSITIVE = torch.tensor([True, True, True, False, False])


def test_ranking_pairs_score_each_positive_variant_against_every_original_of_the_batch() -> None:
    pairs = ranking_pairs(FIRST, SECOND, POSITIVE)
    assert pairs.shape == (3, 2)
    assert pairs.first.tolist() == [0, 1, 0, 1, 0, 1]
    assert pairs.second.tolist() == [2, 2, 3, 3, 4, 4]
    assert pairs.target.tolist() == [0, 0, 1]


def test_the_term_is_low_when_the_source_ranks_first_and_high_when_it_does_not() -> None:
    pairs = ranking_pairs(FIRST, SECOND, POSITIVE)
    right = torch.tensor([0.9, 0.3, 0.8, 0.35, 0.3, 0.85])  # every variant closest to its own source
    wrong = torch.tensor([0.3, 0.9, 0.35, 0.8, 0.85, 0.3])
    low, count = ranking_loss(right, pairs)
    high, _ = ranking_loss(wrong, pairs)
    assert count == 3
    assert float(low) < 0.01 * 3 < float(high)
    # One original ranks nothing.
    alone = ranking_pairs(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([True, True]))
    zero, none = ranking_loss(torch.tensor([0.5, 0.6]), alone)
    assert float(zero) == 0.0 and none == 0


class _Inputs(nn.Module):
    """A stand-in trained top: the inputs are the embeddings, passed through a learnable scale."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2048))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.scale


def _batch(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(5, 2048, generator=generator)
    scores = torch.tensor([0.7, 0.6, 0.65, 0.3, 0.35])
    return torch.arange(5), inputs, FIRST, SECOND, scores, POSITIVE


def _train(rank_weight: float, steps: int = 3) -> tuple[dict[str, torch.Tensor], float]:
    make_deterministic(0)
    model = SiameseRegressor(head_hidden=8)
    top = _Inputs()
    scorer = PairScorer(model, top)
    batches = [_batch(seed) for seed in range(steps)]
    with torch.no_grad():
        model.head.calibrate(batches[0][1][FIRST], batches[0][1][SECOND], 0.5)
    optimizer = torch.optim.AdamW([p for p in scorer.parameters() if p.requires_grad], lr=1e-2)
    mse = regressor_epoch(scorer, batches, optimizer, CPU.grad_scaler(), CPU, rank_weight)
    return {k: v.clone() for k, v in scorer.state_dict().items()}, mse


def test_rank_weight_zero_is_exactly_the_mse_loss_and_a_positive_weight_changes_the_steps() -> None:
    # The plain MSE training step, written out: what rank_weight=0 must reproduce bit for bit.
    make_deterministic(0)
    model = SiameseRegressor(head_hidden=8)
    top = _Inputs()
    scorer = PairScorer(model, top)
    batches = [_batch(seed) for seed in range(3)]
    with torch.no_grad():
        model.head.calibrate(batches[0][1][FIRST], batches[0][1][SECOND], 0.5)
    optimizer = torch.optim.AdamW([p for p in scorer.parameters() if p.requires_grad], lr=1e-2)
    scorer.train()
    for _, inputs, first, second, scores, _ in batches:
        loss = nn.functional.mse_loss(scorer(inputs, first, second), scores)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    reference = scorer.state_dict()
    without, _ = _train(0.0)
    assert all(torch.equal(without[name], reference[name]) for name in reference)
    with_rank, _ = _train(0.5)
    assert not all(torch.equal(with_rank[name], reference[name]) for name in reference)
