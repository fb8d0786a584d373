"""Global batches and each rank's share of them, for the training stages.

A training step is one global batch, whatever the number of ranks: rank r of N takes
every N-th item of it. Every rank yields a share of every global batch, an empty one
included (a last batch smaller than the number of ranks, or a share whose images all
failed to load): under DDP every rank must join every step's collectives, or the others
wait for it until the collective timeout. A rank with an empty share runs the step with a
loss of zero; `global_mean` makes the loss the mean over the whole global batch.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from artsim.core.distributed import ALONE, Ranks, rank_share
from artsim.learn.training import sum_over_ranks


class RankShares(Sampler[list[int]]):
    """This rank's share of each global batch (lists of dataset positions, maybe empty).

    Subclasses say what the global batches of an epoch are; they must not depend on the
    rank, so that every rank cuts the same batches and takes the same number of steps.
    """

    def __init__(self, ranks: Ranks = ALONE) -> None:
        self.ranks = ranks
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield rank_share(batch, self.ranks).tolist()

    def __len__(self) -> int:
        return len(self.global_batches())


class ShuffledBatches(RankShares):
    """`count` items shuffled with (seed, epoch), cut into global batches of `batch_size`.

    The order is DistributedSampler's (torch.randperm seeded with seed + epoch), which
    the training stages used alone before: one process trains exactly as it did.
    """

    def __init__(self, count: int, batch_size: int, seed: int, ranks: Ranks = ALONE) -> None:
        super().__init__(ranks)
        self.count, self.batch_size, self.seed = count, batch_size, seed

    def global_batches(self) -> list[np.ndarray]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.count, generator=generator).numpy()
        return [order[i:i + self.batch_size] for i in range(0, self.count, self.batch_size)]

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)


def global_batch_size(count: int, ranks: Ranks) -> float:
    """The number of items of a global batch, from this rank's `count` (a collective)."""
    total, = sum_over_ranks([float(count)], ranks)
    return total


def global_mean(summed_loss: Tensor, global_count: float, ranks: Ranks) -> Tensor:
    """The loss to back-propagate on this rank, given the sum of its items' losses.

    DDP averages gradients over ranks, whose shares may differ in size (down to none), so
    each rank scales its sum by world_size / global count: the gradient is then that of
    the mean over the global batch, as one process would compute it.
    """
    return summed_loss * ranks.world_size / max(global_count, 1.0)
