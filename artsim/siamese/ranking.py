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

Two more terms, from the copy-detection literature (SSCD, MoCo):

- more negatives than a batch holds (siamese.rank_queue): the embeddings of the originals of the
  last batches, kept detached in an EmbeddingQueue, are scored against each positive's variant
  too (its own source's entries masked out). Every rank embeds the same candidates, so every
  rank's queue holds the same entries;
- a spreading term (siamese.spread_weight): the Kozachenko-Leonenko entropy estimate of the
  candidates' L2-normalised embeddings (SSCD's KoLeo), -mean log(distance to the nearest other),
  which pushes the originals of a batch apart so that none sits near another's variants. It is
  computed from the candidates alone, the same on every rank: DDP's average of the ranks'
  gradients is then its gradient, as in one process.
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


class EmbeddingQueue:
    """The embeddings of the last `size` originals ranked against (newest first, detached), and
    the image position each is of, so that a positive's own source is never its negative."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.embeddings: Tensor | None = None
        self.images = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def push(self, embeddings: Tensor, images: Tensor) -> None:
        if self.size == 0 or len(images) == 0:
            return
        fresh = embeddings.detach().float()
        if self.embeddings is not None:
            fresh = torch.cat([fresh, self.embeddings.to(fresh.device)])
        self.embeddings = fresh[:self.size]
        self.images = torch.cat([images.cpu().long(), self.images])[:self.size]

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"embeddings": self.embeddings, "images": self.images}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        # A checkpoint holds them on the CPU: push moves them back beside the fresh ones.
        self.embeddings, self.images = state["embeddings"], state["images"]

    def pairs(self, variants: Tensor) -> tuple[Tensor, Tensor]:
        """(queue entry, variant) for every entry and each of `variants` (positions among the
        batch's inputs), entries varying fastest, as ranking_pairs lays them."""
        entries = torch.arange(len(self)).repeat(len(variants))
        return entries, variants.repeat_interleave(len(self))


def ranking_loss_with_queue(scores: Tensor, pairs: RankingPairs, queued: Tensor, queue_images: Tensor,
                            sources: Tensor) -> tuple[Tensor, int]:
    """ranking_loss with each positive's variant also scored against the queue's entries
    (`queued`: (positives x entries), flat); an entry of the positive's own source (`sources`:
    the image position of each positive's original) counts for nothing."""
    n_variants, n_originals = pairs.shape
    n_queued = len(queue_images)
    if n_variants == 0 or n_originals + n_queued < 2:
        return scores.sum() * 0.0 + queued.sum() * 0.0, 0
    own = queue_images.to(sources.device).unsqueeze(0) == sources.unsqueeze(1)
    extra = queued.view(n_variants, n_queued).masked_fill(own, float("-inf"))
    logits = torch.cat([scores.view(n_variants, n_originals), extra], dim=1) / TEMPERATURE
    return torch.nn.functional.cross_entropy(logits, pairs.target, reduction="sum"), n_variants


def spreading_loss(embeddings: Tensor, eps: float = 1e-8) -> Tensor:
    """KoLeo: -mean over the rows of log(distance to the nearest other row), on L2-normalised
    rows; 0 with fewer than two rows."""
    if len(embeddings) < 2:
        return embeddings.sum() * 0.0
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    # Squared distances of unit rows, clamped so that two equal rows give a finite gradient; a
    # row's own distance is lifted above any other's (unit rows are at most 2 apart).
    squared = (2.0 - 2.0 * unit @ unit.T).clamp_min(eps) + 8.0 * torch.eye(len(unit), device=unit.device)
    return -0.5 * torch.log(squared.min(dim=1).values).mean()
