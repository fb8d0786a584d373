"""The siamese loss's ranking term (issue 17 §3b): in-batch InfoNCE over the positives; its queue of
more negatives and the spreading term (issue 26 §4)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from artsim.learn.models import SiameseRegressor
from artsim.learn.training import Runtime, make_deterministic
from artsim.siamese.batches import BatchShare, GroupedPairBatches, PairBatch, PairBatches, PairTable
from artsim.siamese.ranking import (
    EmbeddingQueue,
    ranking_loss,
    ranking_loss_with_queue,
    ranking_pairs,
    spreading_loss,
)
from artsim.siamese.scoring import LossTerms
from artsim.siamese.train import PairScorer, regressor_epoch

CPU = Runtime(torch.device("cpu"))

# A batch over 5 unique inputs: originals 0 and 1, variants 2, 3 (of 0) and 4 (of 1);
# pairs (0,2) (0,3) (1,4) positive, (0,4) (1,2) negative.
FIRST = torch.tensor([0, 0, 1, 0, 1])
SECOND = torch.tensor([2, 3, 4, 4, 2])
POSITIVE = torch.tensor([True, True, True, False, False])
CANDIDATES = torch.tensor([0, 1])


def test_ranking_pairs_score_each_positive_variant_against_every_original_of_the_batch() -> None:
    pairs = ranking_pairs(FIRST, SECOND, POSITIVE, CANDIDATES)
    assert pairs.shape == (3, 2)
    assert pairs.first.tolist() == [0, 1, 0, 1, 0, 1]
    assert pairs.second.tolist() == [2, 2, 3, 3, 4, 4]
    assert pairs.target.tolist() == [0, 0, 1]


def test_the_term_is_low_when_the_source_ranks_first_and_high_when_it_does_not() -> None:
    pairs = ranking_pairs(FIRST, SECOND, POSITIVE, CANDIDATES)
    right = torch.tensor([0.9, 0.3, 0.8, 0.35, 0.3, 0.85])  # every variant closest to its own source
    wrong = torch.tensor([0.3, 0.9, 0.35, 0.8, 0.85, 0.3])
    low, count = ranking_loss(right, pairs)
    high, _ = ranking_loss(wrong, pairs)
    assert count == 3
    assert float(low) < 0.01 * 3 < float(high)
    # One original ranks nothing.
    alone = ranking_pairs(torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([True, True]), torch.tensor([0]))
    zero, none = ranking_loss(torch.tensor([0.5, 0.6]), alone)
    assert float(zero) == 0.0 and none == 0


class _Inputs(nn.Module):
    """A stand-in trained top: the inputs are the pooled features of each image and its mirror (n, 2, 2048),
    passed through a learnable scale."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2048))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs * self.scale


def _batch(seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(5, 2, 2048, generator=generator)
    scores = torch.tensor([0.7, 0.6, 0.65, 0.3, 0.35])
    return PairBatch(torch.arange(5), inputs, FIRST, SECOND, scores, POSITIVE, CANDIDATES)


def _train(rank_weight: float, steps: int = 3) -> tuple[dict[str, torch.Tensor], float]:
    make_deterministic(0)
    model = SiameseRegressor(head_hidden=8)
    top = _Inputs()
    scorer = PairScorer(model, top)
    batches = [_batch(seed) for seed in range(steps)]
    with torch.no_grad():
        embedded = model.embed(batches[0][1], top)
        model.head.calibrate(embedded[FIRST], embedded[SECOND], 0.5)
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
        embedded = model.embed(batches[0][1], top)
        model.head.calibrate(embedded[FIRST], embedded[SECOND], 0.5)
    optimizer = torch.optim.AdamW([p for p in scorer.parameters() if p.requires_grad], lr=1e-2)
    scorer.train()
    for _, inputs, first, second, scores, *_ in batches:
        loss = nn.functional.mse_loss(scorer(inputs, first, second), scores)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    reference = scorer.state_dict()
    without, _ = _train(0.0)
    assert all(torch.equal(without[name], reference[name]) for name in reference)
    with_rank, _ = _train(0.5)
    assert not all(torch.equal(with_rank[name], reference[name]) for name in reference)


def _table() -> PairTable:
    """4 originals, 2 variants each (positive pairs) and a negative pair per original."""
    rows = []
    for o in range(4):
        rows += [
            {"original_path": f"o{o}", "generated_path": f"g{o}_{v}", "score": 0.7, "positive": True} for v in range(2)
        ]
        rows.append({"original_path": f"o{o}", "generated_path": f"g{(o + 1) % 4}_0", "score": 0.3, "positive": False})
    return PairTable.from_pairs(pd.DataFrame(rows))


def _ranking_term(scorer: PairScorer, batch: PairBatch) -> tuple[torch.Tensor, int]:
    _, inputs, first, second, _, positive, candidates, *_ = batch
    pairs = ranking_pairs(first, second, positive, candidates)
    return ranking_loss(scorer(inputs, pairs.first, pairs.second), pairs)


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_ranks_rank_against_the_whole_global_batch_so_their_terms_and_gradients_sum_to_one_process(
    world_size: int,
) -> None:
    table = _table()
    embedding = {i: torch.rand(2, 2048, generator=torch.Generator().manual_seed(i)) for i in range(len(table.images))}
    dataset = PairBatches(table, embedding.__getitem__)
    make_deterministic(0)
    scorer = PairScorer(SiameseRegressor(head_hidden=8), _Inputs())
    with torch.no_grad():
        embedded = scorer.model.embed(torch.stack(list(embedding.values())), scorer.top)
        scorer.model.head.calibrate(embedded, embedded.flip(0), 0.5)

    def term_and_gradient(share: BatchShare) -> tuple[float, int, list[torch.Tensor]]:
        scorer.zero_grad()
        loss, count = _ranking_term(scorer, dataset[share])
        loss.backward()
        return (
            loss.item(),
            count,
            [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in scorer.parameters()],
        )

    alone = GroupedPairBatches(table.groups, 6, seed=1, with_candidates=True)
    shares = [list(GroupedPairBatches(table.groups, 6, seed=1, rank=r, world_size=world_size, with_candidates=True))
              for r in range(world_size)]
    for step, whole in enumerate(alone):
        assert len(whole.candidates) >= 2  # a batch of 6 grouped pairs spans at least two originals
        loss, count, gradient = term_and_gradient(whole)
        parts = [term_and_gradient(rank_shares[step]) for rank_shares in shares]
        assert all(part_share.candidates == whole.candidates for part_share in (s[step] for s in shares))
        assert sum(part[1] for part in parts) == count
        assert sum(part[0] for part in parts) == pytest.approx(loss, rel=1e-5)
        for name_index, summed in enumerate(zip(*(part[2] for part in parts))):
            assert torch.allclose(sum(summed), gradient[name_index], rtol=1e-4, atol=1e-7)


def test_a_rank_ranking_against_its_own_share_only_would_train_another_model() -> None:
    """What DDP did before the candidates travelled with each share: a rank's share of a batch
    holds fewer originals, its positives meet fewer candidates, and the term changes."""
    table = _table()
    dataset = PairBatches(table, lambda image: torch.rand(2, 2048, generator=torch.Generator().manual_seed(image)))
    make_deterministic(0)
    scorer = PairScorer(SiameseRegressor(head_hidden=8), _Inputs())
    changed = 0
    for share in GroupedPairBatches(table.groups, 6, seed=1, rank=0, world_size=6, with_candidates=True):
        own = BatchShare(list(share), sorted({int(table.first[i]) for i in share}))
        term, own_term = _ranking_term(scorer, dataset[share])[0].item(), _ranking_term(scorer, dataset[own])[0].item()
        changed += own.candidates != share.candidates and own_term != pytest.approx(term)
    assert changed


@pytest.mark.parametrize("extra", [0, 2, 100])
def test_extra_candidates_are_the_batchs_originals_and_others_drawn_alike_on_every_rank(extra: int) -> None:
    groups = np.repeat(np.arange(10), 4)  # 10 originals, 4 pairs each
    alone = list(GroupedPairBatches(groups, 8, seed=5, with_candidates=True, extra_candidates=extra))
    ranks = [
        list(GroupedPairBatches(groups, 8, seed=5, rank=r, world_size=3, with_candidates=True, extra_candidates=extra))
        for r in range(3)
    ]
    batches = GroupedPairBatches(groups, 8, seed=5).global_batches()
    for step, (share, batch) in enumerate(zip(alone, batches)):
        own = set(groups[batch].tolist())
        assert own <= set(share.candidates) and share.candidates == sorted(set(share.candidates))
        assert len(share.candidates) == min(len(own) + extra, 10)
        assert all(rank_shares[step].candidates == share.candidates for rank_shares in ranks)
    again = GroupedPairBatches(groups, 8, seed=5, with_candidates=True, extra_candidates=extra)
    assert [s.candidates for s in again] == [s.candidates for s in alone]  # reproducible


def test_extra_candidates_are_drawn_anew_for_every_batch() -> None:
    groups = np.repeat(np.arange(30), 2)  # batches of 2 pairs: one original each
    drawn = [sorted(set(share.candidates) - {int(groups[share[0]])})
             for share in GroupedPairBatches(groups, 2, seed=5, with_candidates=True, extra_candidates=3)]
    assert all(len(extras) == 3 for extras in drawn)
    assert len({tuple(extras) for extras in drawn}) > len(drawn) // 2


def test_a_positive_whose_source_is_not_a_candidate_is_an_error_not_a_wrong_target() -> None:
    with pytest.raises(ValueError, match="not among the ranking candidates"):
        ranking_pairs(FIRST, SECOND, POSITIVE, torch.tensor([0]))
    with pytest.raises(ValueError, match="not among the ranking candidates"):
        ranking_pairs(FIRST, SECOND, POSITIVE, torch.tensor([1, 5]))


def test_a_batch_loads_its_extra_candidates_and_ranks_against_them() -> None:
    table = _table()
    dataset = PairBatches(table, lambda image: torch.rand(2, 2048, generator=torch.Generator().manual_seed(image)))
    make_deterministic(0)
    scorer = PairScorer(SiameseRegressor(head_hidden=8), _Inputs())
    share = next(iter(GroupedPairBatches(table.groups, 3, seed=1, with_candidates=True)))
    wider = next(iter(GroupedPairBatches(table.groups, 3, seed=1, with_candidates=True, extra_candidates=3)))
    assert list(share) == list(wider) and len(share.candidates) == 1 and len(wider.candidates) == 4
    batch = dataset[wider]
    assert (
        len(batch.candidates) == 4
        and len(batch.inputs) == len(set(batch.first.tolist()) | set(batch.second.tolist())) + 3
    )
    # One original alone ranks nothing; with three more drawn the term counts every positive.
    assert _ranking_term(scorer, dataset[share])[1] == 0
    assert _ranking_term(scorer, batch)[1] == int(batch.positive.sum()) > 0


# --- more negatives: a queue of recent originals' embeddings ------------------------------

def test_the_queue_keeps_the_newest_entries_detached_and_who_they_are() -> None:
    queue = EmbeddingQueue(3)
    first = torch.rand(2, 4, requires_grad=True)
    queue.push(first, torch.tensor([10, 11]))
    queue.push(torch.rand(2, 4), torch.tensor([12, 13]))
    assert len(queue) == 3 and queue.images.tolist() == [12, 13, 10]
    assert not queue.embeddings.requires_grad
    assert torch.equal(queue.embeddings[2], first[0].detach())
    entries, variants = queue.pairs(torch.tensor([5, 6]))
    assert entries.tolist() == [0, 1, 2, 0, 1, 2] and variants.tolist() == [5, 5, 5, 6, 6, 6]
    none = EmbeddingQueue(0)
    none.push(first, torch.tensor([10, 11]))
    assert len(none) == 0


def test_queued_negatives_count_and_a_positives_own_source_never_does() -> None:
    pairs = ranking_pairs(FIRST, SECOND, POSITIVE, CANDIDATES)
    scores = torch.tensor([0.9, 0.3, 0.8, 0.35, 0.3, 0.85])  # every variant closest to its own source
    plain, count = ranking_loss(scores, pairs)
    sources = torch.tensor([100, 100, 101])  # image positions of the positives' originals
    # Another painting (image 7) scoring near each variant: a harder negative, a higher loss.
    harder, counted = ranking_loss_with_queue(scores, pairs, torch.full((3,), 0.88), torch.tensor([7]), sources)
    assert counted == count == 3 and float(harder) > float(plain) + 1.0
    # The queue's entry of a positive's own source (an older embedding of image 100) counts for nothing.
    own, _ = ranking_loss_with_queue(scores, pairs, torch.tensor([0.99, 0.99, 0.2]), torch.tensor([100]), sources)
    only_third, _ = ranking_loss_with_queue(
        scores, pairs, torch.tensor([-1e4, -1e4, 0.2]), torch.tensor([100]), sources)
    assert float(own) == pytest.approx(float(only_third), rel=1e-6)


def _train_with(terms: LossTerms, steps: int) -> dict[str, torch.Tensor]:
    """The stand-in scorer's weights after an epoch of `steps` batches under `terms`."""
    make_deterministic(0)
    scorer = PairScorer(SiameseRegressor(head_hidden=8), _Inputs())
    batches = [_batch(seed) for seed in range(steps)]
    with torch.no_grad():
        embedded = scorer.embed(batches[0][1])
        scorer.model.head.calibrate(embedded[FIRST], embedded[SECOND], 0.5)
    optimizer = torch.optim.AdamW(scorer.parameters(), lr=1e-2)
    regressor_epoch(scorer, batches, optimizer, CPU.grad_scaler(), CPU, terms=terms)
    return {k: v.clone() for k, v in scorer.state_dict().items()}


def test_an_epoch_fills_the_queue_and_the_queue_changes_the_steps() -> None:
    def train(queue: EmbeddingQueue | None) -> dict[str, torch.Tensor]:
        return _train_with(LossTerms(0.5, queue=queue), steps=3)

    queue = EmbeddingQueue(16)
    with_queue, without = train(queue), train(None)
    assert len(queue) == 3 * len(CANDIDATES)  # each step's candidates, pushed after it
    assert not all(torch.equal(with_queue[name], without[name]) for name in without)
    with_empty_queue = train(EmbeddingQueue(0))  # a queue that holds nothing is no queue
    assert with_empty_queue.keys() == without.keys()
    assert all(torch.equal(with_empty_queue[name], without[name]) for name in without)


# --- the spreading term ---------------------------------------------------------------------

def test_the_spreading_term_pushes_the_nearest_embeddings_apart() -> None:
    embeddings = torch.tensor([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 0.0, 1.0]], requires_grad=True)
    loss = spreading_loss(embeddings)
    loss.backward()
    assert embeddings.grad is not None and float(embeddings.grad[:2].abs().sum()) > 0
    with torch.no_grad():
        moved = embeddings - 0.05 * embeddings.grad

    def nearest(rows: torch.Tensor) -> float:
        unit = nn.functional.normalize(rows, dim=1)
        return float(torch.pdist(unit).min())

    assert nearest(moved) > nearest(embeddings.detach())
    assert float(spreading_loss(moved)) < float(loss.detach())
    # One row spreads nothing; two equal rows give a finite gradient.
    assert float(spreading_loss(torch.rand(1, 3))) == 0.0
    same = torch.ones(2, 3, requires_grad=True)
    spreading_loss(same).backward()
    assert torch.isfinite(same.grad).all()


def test_the_spreading_term_changes_the_steps_and_is_the_same_on_every_rank() -> None:
    def train(spread_weight: float) -> dict[str, torch.Tensor]:
        return _train_with(LossTerms(0.05, spread_weight), steps=2)

    plain, spread = train(0.0), train(1.0)
    assert not torch.equal(plain["top.scale"], spread["top.scale"])
    # Computed from the candidates, which every rank's share of a global batch holds whole.
    table = _table()
    embedding = {i: torch.rand(2048, generator=torch.Generator().manual_seed(i)) for i in range(len(table.images))}
    dataset = PairBatches(table, embedding.__getitem__)
    shares = [next(iter(GroupedPairBatches(table.groups, 6, seed=1, rank=r, world_size=3, with_candidates=True)))
              for r in range(3)]
    terms = []
    for share in shares:
        batch = dataset[share]
        terms.append(float(spreading_loss(batch.inputs[batch.candidates])))
    assert terms[0] == terms[1] == terms[2]
