"""Batches of image pairs for the siamese regressor (stage siamese).

Pairs are indices into a list of unique images. Batches are cut from pairs ordered by
original, so the pairs of one painting (its variants, its negatives) mostly share a
batch, and every batch passes each of its unique images through the trained part once:
an epoch costs in proportion to the images, not to the pairs.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from artsim.core.distributed import Ranks, rank_share
from artsim.core.images import ImageRejected, load_rgb
from artsim.learn.augment import TrainingViews
from artsim.learn.batches import RankShares
from artsim.learn.feature_cache import FeatureStore
from artsim.learn.features import ImageFiles
from artsim.learn.training import Runtime

log = logging.getLogger(__name__)


class BatchShare(list):
    """A rank's share of a global batch (pair positions, a plain list to everything else) and the
    originals of the whole global batch (image positions): the ranking term's candidates
    (artsim.siamese.ranking). Every rank embeds all of them, so that its positives are ranked
    against the same candidates, with the same gradients, as one process ranks them all; empty
    when nothing ranks. `epoch`: the training epoch whose altered views of the images the batch
    takes (artsim.learn.augment.TrainingViews); None, the images as they are."""

    def __init__(self, pairs: Sequence[int], candidates: Sequence[int] = (), epoch: int | None = None) -> None:
        super().__init__(pairs)
        self.candidates = list(candidates)
        self.epoch = epoch


class PairBatch(NamedTuple):
    """One PairBatches item. `first`, `second` and `candidates` index `inputs`, the batch's unique
    images, in the order of their positions in the table (so candidates are sorted as in one process);
    `images` holds those positions."""

    pairs: Tensor
    inputs: Tensor
    first: Tensor
    second: Tensor
    scores: Tensor
    positive: Tensor
    candidates: Tensor
    images: Tensor | None = None


@dataclass
class PairTable:
    """Pairs over unique images: `images` holds each image file once; a pair is two
    positions in it, its score, its group (the original's position) and whether it is a
    positive pair (an original and its own variant)."""

    images: list[Path]
    first: np.ndarray
    second: np.ndarray
    scores: np.ndarray
    groups: np.ndarray
    positive: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame) -> "PairTable":
        """From resolved pairs (original_path, generated_path, score, positive)."""
        images = list(dict.fromkeys([*pairs["original_path"], *pairs["generated_path"]]))
        position = {path: i for i, path in enumerate(images)}
        first = pairs["original_path"].map(position).to_numpy(dtype=np.int64)
        return cls(
            images=images,
            first=first,
            second=pairs["generated_path"].map(position).to_numpy(dtype=np.int64),
            scores=pairs["score"].to_numpy(dtype=np.float32),
            groups=first,
            # Without the column nothing is known to be positive: the ranking term then ranks nothing.
            positive=(pairs["positive"] if "positive" in pairs else pd.Series(False, index=pairs.index)).to_numpy(
                dtype=bool
            ),
        )

    def __len__(self) -> int:
        return len(self.scores)


class PairBatches(Dataset):
    """A batch of pairs per item: each unique image's input once, and where each pair's
    two images are among them. Indexed by a list of pair positions (see GroupedPairBatches).

    `inputs(position)` gives an image's input to the trained part: its frozen-bottom
    features from the cache, or the decoded image when nothing is frozen.
    """

    def __init__(self, table: PairTable, inputs: "ImageInputs") -> None:
        self.table = table
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, pairs: Sequence[int]) -> PairBatch:
        """The batch (with a BatchShare, its candidates' inputs too). Pairs whose image became
        unreadable since screening (a file changed or deleted mid-run) are left out, down to a
        batch of no pairs, which still runs through the model: under DDP every rank must take
        part in every step."""
        wanted = np.asarray(getattr(pairs, "candidates", ()), dtype=np.int64)
        epoch = getattr(pairs, "epoch", None)
        pairs = np.asarray(pairs, dtype=np.int64)
        loaded, unreadable = self._load(
            np.union1d(np.union1d(self.table.first[pairs], self.table.second[pairs]), wanted), epoch
        )
        if unreadable:
            pairs = pairs[
                ~(np.isin(self.table.first[pairs], unreadable) | np.isin(self.table.second[pairs], unreadable))
            ]
            wanted = wanted[~np.isin(wanted, unreadable)]
        first, second = self.table.first[pairs], self.table.second[pairs]
        unique, where = np.unique(np.concatenate([first, second, wanted]), return_inverse=True)
        stacked = torch.stack([loaded[int(image)] for image in unique]) if len(unique) else self._no_inputs()
        where = torch.from_numpy(where).long()
        count = len(pairs)
        return PairBatch(torch.from_numpy(pairs), stacked, where[:count], where[count:2 * count],
                         torch.from_numpy(self.table.scores[pairs]), torch.from_numpy(self.table.positive[pairs]),
                         where[2 * count:], torch.from_numpy(unique).long())

    def _load(self, images: np.ndarray, epoch: int | None = None) -> tuple[dict[int, Tensor], list[int]]:
        loaded, unreadable = {}, []
        for image in images.tolist():
            try:
                # The epoch only where there is one: an ImageInputs of images as they are may take none.
                loaded[image] = self.inputs(image) if epoch is None else self.inputs(image, epoch)
            except (ImageRejected, OSError, ValueError) as exc:
                log.warning("leaving out the pairs of image %d: %s", image, exc)
                unreadable.append(image)
        return loaded, unreadable

    def _no_inputs(self) -> Tensor:
        """A batch of zero inputs, shaped like any readable image's."""
        for image in range(len(self.table.images)):
            loaded, _ = self._load(np.array([image]))
            if loaded:
                example = loaded[image]
                return example.new_zeros((0, *example.shape))
        raise ValueError("no image of these pairs is readable any more")


class ImageInputs:
    """Image position (and the epoch whose altered view to take, None: as it is) -> the trained
    part's input tensor."""

    def __call__(self, image: int, epoch: int | None = None) -> Tensor:
        raise NotImplementedError


class CachedFeatures(ImageInputs):
    def __init__(self, store: FeatureStore, digests: Sequence[str]) -> None:
        self.store = store
        self.digests = list(digests)

    def __call__(self, image: int, epoch: int | None = None) -> Tensor:
        # Features of the image as it is: altered views need the images (siamese.augment_prob).
        return self.store.load(self.digests[image])


class DecodedImages(ImageInputs):
    """The images decoded and resized; with `views`, in a training epoch an altered view of
    each (artsim.learn.augment.TrainingViews)."""

    def __init__(self, paths: Sequence[Path], image_size: int, views: TrainingViews | None = None) -> None:
        self.image_size = image_size
        self.files = ImageFiles(paths, image_size)
        self.views = views

    def __call__(self, image: int, epoch: int | None = None) -> Tensor:
        chain = None if self.views is None or epoch is None else self.views.chain(str(self.files.paths[image]), epoch)
        if chain is not None:
            return self.files.transform(chain.apply(load_rgb(self.files.paths[image])))
        item = self.files[image]
        if item is None:  # screened before training: only a file changed since can get here
            raise ImageRejected("no_longer_decodes", str(self.files.paths[image]))
        return item[1]


class GroupedPairBatches(RankShares):
    """Global batches of `batch_size` pairs, each rank yielding its share of each (see
    artsim.learn.batches: an empty share too, so that every rank takes every step), as a
    BatchShare: `with_candidates`, it carries the originals of the whole global batch and
    `extra_candidates` more originals of these pairs, drawn per batch (harder ranking: a batch
    of grouped pairs holds only a few originals); `altered`, it names the epoch, whose altered
    views of the images the batch takes.

    Every epoch shuffles the groups (originals) with (seed, epoch) and lays their pairs
    end to end before cutting batches, so the pairs of a painting travel together. The
    global batches do not depend on the number of ranks.
    """

    def __init__(self, groups: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 with_candidates: bool = False, extra_candidates: int = 0, altered: bool = False) -> None:
        super().__init__(Ranks(rank, world_size))
        self.groups = np.asarray(groups)
        self.batch_size = batch_size
        self.seed = seed
        self.with_candidates = with_candidates
        self.extra_candidates = extra_candidates
        self.altered = altered
        self.originals = np.unique(self.groups)  # once: a sampler step must not cost O(pairs)

    def __iter__(self) -> Iterator[BatchShare]:
        for step, batch in enumerate(self.global_batches()):
            candidates = self.candidates(batch, step) if self.with_candidates else ()
            yield BatchShare(rank_share(batch, self.ranks).tolist(), candidates, self.epoch if self.altered else None)

    def candidates(self, batch: np.ndarray, step: int) -> list[int]:
        """The batch's originals and `extra_candidates` others of these groups (all there are, if
        fewer), drawn with (seed, epoch, step): the same on every rank, sorted."""
        own = np.unique(self.groups[batch])
        if not self.extra_candidates:
            return own.astype(np.int64).tolist()
        others = np.setdiff1d(self.originals, own, assume_unique=True)
        count = min(self.extra_candidates, len(others))
        drawn = np.random.default_rng([self.seed, self.epoch, step]).choice(others, size=count, replace=False)
        return np.union1d(own, drawn).astype(np.int64).tolist()

    def global_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        names, members = np.unique(self.groups, return_inverse=True)
        order = rng.permutation(len(names))
        rank_of_group = np.empty(len(names), dtype=np.int64)
        rank_of_group[order] = np.arange(len(names))
        # Within a group, pairs keep a shuffled order too (stable sort on a random tie-break).
        ordered = np.lexsort((rng.permutation(len(self.groups)), rank_of_group[members]))
        return [ordered[i:i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def __len__(self) -> int:
        return -(-len(self.groups) // self.batch_size)


def batch_loader(
    dataset: PairBatches, sampler: Sampler[list[int]], loader_workers: int, runtime: Runtime
) -> DataLoader:
    # batch_size=None: the sampler's lists of pairs reach PairBatches whole.
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=loader_workers,
                      persistent_workers=loader_workers > 0, pin_memory=runtime.device.type == "cuda")


def in_order(count: int, batch_size: int, positions: Sequence[int] | None = None) -> list[list[int]]:
    positions = list(range(count)) if positions is None else list(positions)
    return [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]

