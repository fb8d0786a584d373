"""The ranking term of the siamese loss (issue 17 §3b): in-batch InfoNCE over the positives.

MSE on the score alone asks nothing of how a variant's source ranks against other paintings,
and at a collection's scale that is what fails (a variant's source found first for 0.29 of
1,236 queries among 2,000 originals, against pHash's 0.83). For each positive pair (source,
variant) of a batch, the variant is scored against every original of the batch, and the loss
is the cross-entropy of picking its own source: -log softmax(score / TEMPERATURE)[source].

Batches are cut from pairs grouped by original (artsim.siamese.batches), so a batch holds a
few originals, each with its variants and negatives: the candidates are those originals, all of
the global batch's on every rank (a BatchShare carries them). A rank embeds them all, its
positives only, so the ranks' terms sum to one process's term, and so do their gradients
(DDP averages them; artsim.learn.batches.global_mean scales for that): under DDP the model is
the one a single process trains, at the cost of embedding a batch's few originals on every rank.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Scores lie in [floor, 1]: a temperature of 0.05 turns a 0.1 gap into a factor e^2 in the odds.
TEMPERATURE = 0.05


@dataclass(frozen=True)
class RankingPairs:
    """The extra pairs the term scores: each positive's variant against each candidate original.

    `first`/`second` index the batch's unique inputs (as the regression pairs do); `candidates`
    is (positives, originals), `target` each positive's own source among the originals."""

    first: Tensor
    second: Tensor
    shape: tuple[int, int]
    target: Tensor

    def __len__(self) -> int:
        return len(self.first)


def ranking_pairs(first: Tensor, second: Tensor, positive: Tensor, candidates: Tensor) -> RankingPairs:
    """The (original, variant) combinations of a batch's positives against `candidates`, the
    global batch's originals (sorted; each positive's source among them)."""
    variants = second[positive]
    target = torch.searchsorted(candidates, first[positive])
    sources = first[positive]
    if len(sources) and (int(target.max()) >= len(candidates) or not torch.equal(candidates[target], sources)):
        raise ValueError(
            "a positive pair's original is not among the ranking candidates "
            "(they must hold every original of the batch)"
        )
    originals = candidates
    n_variants, n_originals = len(variants), len(originals)
    return RankingPairs(
        first=originals.repeat(n_variants),
        second=variants.repeat_interleave(n_originals),
        shape=(n_variants, n_originals),
        target=target,
    )


def ranking_loss(scores: Tensor, pairs: RankingPairs) -> tuple[Tensor, int]:
    """(sum over the positives of -log P(own source), how many positives count).

    A batch with one original ranks nothing (its loss is 0, and counts no positive)."""
    n_variants, n_originals = pairs.shape
    if n_variants == 0 or n_originals < 2:
        return scores.sum() * 0.0, 0
    logits = scores.view(n_variants, n_originals) / TEMPERATURE
    return torch.nn.functional.cross_entropy(logits, pairs.target, reduction="sum"), n_variants
