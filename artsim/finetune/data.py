"""The finetune stage's data: labelled, decodable images per split, and the loader of this
rank's share of each global batch."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from artsim.core.images import ImageFile, ImageRejected, load_rgb
from artsim.core.shards import manifest_images
from artsim.finetune.labels import UNSEEN, class_indices, is_labelled
from artsim.learn.batches import ShuffledBatches
from artsim.learn.models import classifier_eval_transform, classifier_train_transform, drop_rejected, screen_images
from artsim.learn.training import Runtime
from artsim.params import FinetuneParams

log = logging.getLogger(__name__)


class LabelledImages(Dataset):
    """(image tensor, class index) per file; None when the file fails to decode."""

    def __init__(self, paths: Sequence[ImageFile], targets: Sequence[int], transform: Callable) -> None:
        self.paths = list(paths)
        self.targets = list(targets)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int] | None:
        try:
            image = load_rgb(self.paths[index])
        except ImageRejected as exc:
            log.warning("skipping %s: %s", self.paths[index], exc)
            return None
        return self.transform(image), self.targets[index]


def usable_labelled_files(manifest: pd.DataFrame, images_dir: Path, label: str) -> tuple[pd.DataFrame, int, int]:
    """Manifest rows that have a label (see is_labelled) and a decodable image (with its path
    as `file`), the number of images rejected, and the number without a label."""
    has_label = is_labelled(manifest[label])
    files = manifest[has_label].assign(file=manifest_images(manifest[has_label], images_dir))
    rejected = screen_images(files["file"])
    return files[~files["file"].isin(list(rejected))], len(rejected), int((~has_label).sum())


def split_dataset(files: pd.DataFrame, split: str, params: FinetuneParams, classes: Sequence[str]) -> LabelledImages:
    rows = files[files["split"] == split]
    targets = np.asarray(class_indices(rows[params.label], classes), dtype=np.int64)
    if (unseen := int((targets == UNSEEN).sum())):
        log.warning("%s: %d images have a %s no class covers (none in train); left out", split, unseen, params.label)
    transform = (classifier_train_transform if split == "train" else classifier_eval_transform)(params.image_size)
    keep = targets != UNSEEN
    return LabelledImages(list(rows.loc[keep, "file"]), targets[keep].tolist(), transform)


class EpochTaggedBatches(ShuffledBatches):
    """ShuffledBatches whose items are (index, epoch), for SeededViews."""

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for share in super().__iter__():
            yield [(index, self.epoch) for index in share]


class SeededViews(Dataset):
    """`dataset`'s item `index` in epoch `epoch`, its random augmentation drawn from torch's RNG
    seeded with (seed, epoch, index) alone: the same crops whichever process makes them (any
    number of loader workers or ranks) and after a run resumed from a checkpoint."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, epoch = item
        seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # the CPU generator's state, restored after; no GPU's touched
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]


def train_loader(dataset: LabelledImages, params: FinetuneParams, seed: int, runtime: Runtime) -> DataLoader:
    """This rank's share of every global batch of `params.batch_size` images (artsim.learn.batches):
    one process and N ranks step through the same global batches, and every rank takes
    every step, with an empty share if need be."""
    return DataLoader(
        SeededViews(dataset, seed),
        batch_sampler=EpochTaggedBatches(len(dataset), params.batch_size, seed, runtime.ranks),
        num_workers=params.loader_workers,
        persistent_workers=params.loader_workers > 0,
        pin_memory=runtime.device.type == "cuda",
        collate_fn=partial(collate_share, image_size=params.image_size),
    )


def collate_share(samples: list[tuple[Tensor, int] | None], image_size: int) -> tuple[Tensor, Tensor]:
    """The images of a share that decoded, and their targets: possibly none (a share that
    was empty, or whose files broke after screening), which still takes part in the step."""
    batch = drop_rejected(samples)
    if batch is None:
        return torch.zeros((0, 3, image_size, image_size)), torch.zeros(0, dtype=torch.long)
    return batch[0], batch[1]
