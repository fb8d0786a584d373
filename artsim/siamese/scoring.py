"""How the trained part scores a batch of pairs (stage siamese): the regression pairs, and for
the ranking terms the ranking pairs, the queue's and the candidates' embeddings, in one pass of
the batch's unique inputs; and the terms beside the MSE (artsim.siamese.ranking)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from artsim.core.distributed import Ranks
from artsim.learn.batches import global_batch_size, global_mean
from artsim.learn.models import SiameseRegressor
from artsim.learn.training import Runtime
from artsim.siamese.ranking import (
    EmbeddingQueue,
    RankingPairs,
    ranking_loss,
    ranking_loss_with_queue,
    ranking_pairs,
    spreading_loss,
)


class PairScorer(nn.Module):
    """The trained top of the trunk and the head as one module (what DDP wraps):
    unique inputs -> embeddings -> a score per pair. `top` None: the inputs are images, embedded
    by the whole model; else the frozen bottom's features of each image and its mirror (SiameseRegressor.embed)."""

    def __init__(self, model: SiameseRegressor, top: nn.Module | None) -> None:
        super().__init__()
        self.model = model
        self.top = top

    def embed(self, inputs: Tensor) -> Tensor:
        return self.model.embed(inputs, self.top)

    def forward(self, inputs: Tensor, first: Tensor, second: Tensor, queued: Tensor | None = None,
                queued_second: Tensor | None = None) -> Tensor | Scored:
        """The pairs' scores; given `queued` (outside embeddings, maybe none) and `queued_second`
        (the inputs each is scored against), a Scored with those pairs' scores and the embeddings."""
        embeddings = self.embed(inputs)
        scores = self.model.score_embeddings(embeddings[first], embeddings[second])
        if queued is None or queued_second is None:
            return scores
        if len(queued_second) == 0:
            return Scored(scores, scores.new_zeros(0), embeddings)
        return Scored(scores, self.model.score_embeddings(queued.to(embeddings.dtype), embeddings[queued_second]),
                      embeddings)


class Scored(NamedTuple):
    scores: Tensor
    queued: Tensor
    embeddings: Tensor


@dataclass
class RankingTerms:
    """What the ranking, queue and spreading terms take of one batch (artsim.siamese.ranking)."""

    scores: Tensor  # the ranking pairs' (each positive's variant against each candidate)
    pairs: RankingPairs
    queued: Tensor  # each positive's variant against each queue entry, flat
    queue_images: Tensor
    sources: Tensor  # the image position of each positive's original
    candidates: Tensor  # the candidates' embeddings
    candidate_images: Tensor

    def loss(self) -> tuple[Tensor, int]:
        """(the summed ranking term, the positives it counts)."""
        if len(self.queue_images) == 0:
            return ranking_loss(self.scores, self.pairs)
        return ranking_loss_with_queue(self.scores, self.pairs, self.queued, self.queue_images, self.sources)


def batch_scores(scorer: nn.Module, batch: Sequence[Tensor], runtime: Runtime) -> tuple[Tensor, Tensor]:
    """(predictions, targets) of one PairBatches item, on the runtime's device."""
    predictions, targets, _ = scores_and_ranking(scorer, batch, runtime, rank=False)
    return predictions, targets


def scores_and_ranking(scorer: nn.Module, batch: Sequence[Tensor], runtime: Runtime, rank: bool,
                       queue: EmbeddingQueue | None = None) -> tuple[Tensor, Tensor, RankingTerms | None]:
    """(predictions, targets, and with `rank` what the ranking terms take) of one PairBatches
    item: one pass of the batch's unique inputs scores every kind of pair."""
    _, inputs, first, second, scores, positive, candidates, *rest = batch
    # A batch built by hand may not say which images it holds: then its own positions.
    images = rest[0] if rest and rest[0] is not None else torch.arange(len(inputs))
    inputs = runtime.to_device(inputs) if inputs.dim() == 4 else inputs.to(runtime.device)
    if not rank:
        with runtime.autocast():
            predictions = scorer(inputs, first.to(runtime.device), second.to(runtime.device)).float()
        return predictions, scores.to(runtime.device), None
    extra = ranking_pairs(first, second, positive, candidates)
    queue = queue if queue is not None and len(queue) else None
    entries, queued_second = queue.pairs(second[positive]) if queue else (torch.zeros(0, dtype=torch.long),) * 2
    queued = queue.embeddings[entries] if queue and queue.embeddings is not None else torch.zeros(0)
    both_first, both_second = torch.cat([first, extra.first]), torch.cat([second, extra.second])
    with runtime.autocast():
        scored = scorer(inputs, both_first.to(runtime.device), both_second.to(runtime.device),
                        queued.to(runtime.device), queued_second.to(runtime.device))
    predictions, count = scored.scores.float(), len(scores)
    terms = RankingTerms(
        scores=predictions[count:], pairs=extra, queued=scored.queued.float(),
        queue_images=queue.images if queue else torch.zeros(0, dtype=torch.long),
        sources=images[first[positive]].to(runtime.device),
        candidates=scored.embeddings[candidates.to(runtime.device)].float(), candidate_images=images[candidates],
    )
    return predictions[:count], scores.to(runtime.device), terms


@dataclass
class LossTerms:
    """The terms beside the MSE: the ranking term's weight (and its queue of more negatives,
    filled as training goes) and the spreading term's (artsim.siamese.ranking)."""

    rank_weight: float = 0.0
    spread_weight: float = 0.0
    queue: EmbeddingQueue | None = None

    @property
    def any(self) -> bool:
        return self.rank_weight > 0 or self.spread_weight > 0

    def loss(self, terms: RankingTerms, ranks: Ranks) -> Tensor:
        ranked, positives = terms.loss()
        loss = self.rank_weight * global_mean(ranked, global_batch_size(positives, ranks), ranks)
        # The candidates are the same on every rank: so are this term and its gradient.
        return loss + self.spread_weight * spreading_loss(terms.candidates) if self.spread_weight else loss
