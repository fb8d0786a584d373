"""Trunk features of unique images: each image is decoded, resized and passed through a
frozen part of the ResNet-50 once, then reused by every pair it appears in.

A WikiArt run has hundreds of thousands of pairs over far fewer images (an original takes
part in every pair of its variants and in other originals' negatives), so computing per
unique image instead of per pair is where the time goes, in training, evaluation and search.
artsim.learn.feature_cache keeps the frozen bottom's features on disk between runs.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet
from tqdm import tqdm

from artsim.core.images import ImageRejected, load_rgb
from artsim.learn.models import drop_rejected, pair_transform
from artsim.params import TRUNK_STAGES

log = logging.getLogger(__name__)

TrainLayers = Sequence[str] | Literal["all"]


def trunk_stages(trunk: ResNet) -> dict[str, nn.Module]:
    """The trunk's stages by the names params use (TRUNK_STAGES); the stem is the layers before layer1."""
    stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
    return {name: stem if name == "stem" else getattr(trunk, name) for name in TRUNK_STAGES}


def first_trained_stage(train_layers: TrainLayers) -> int:
    """Index in TRUNK_STAGES of the lowest stage that trains (len(TRUNK_STAGES): none does)."""
    if train_layers == "all":
        return 0
    return min((TRUNK_STAGES.index(name) for name in train_layers), default=len(TRUNK_STAGES))


def split_trunk(trunk: ResNet, train_layers: TrainLayers) -> tuple[nn.Sequential, nn.Sequential]:
    """(frozen bottom, trained top) of a ResNet whose fc is Identity.

    Both share the trunk's modules, so training the top trains the trunk and the model's
    state dict is unchanged. The bottom's parameters are frozen here; its BatchNorm layers
    are left to the caller's eval() (a frozen bottom always runs in eval mode).
    """
    stages = list(trunk_stages(trunk).values())
    cut = first_trained_stage(train_layers)
    bottom = nn.Sequential(*stages[:cut])
    top = nn.Sequential(*stages[cut:], trunk.avgpool, nn.Flatten(1))
    bottom.requires_grad_(False)
    return bottom, top


class ImageFiles(Dataset):
    """(position, normalised image tensor) per path, resized to image_size x image_size
    as the pairs are; None when the file fails to decode."""

    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.paths = list(paths)
        self.transform = pair_transform(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor] | None:
        try:
            return index, self.transform(load_rgb(self.paths[index]))
        except ImageRejected as exc:
            log.warning("skipping %s: %s", self.paths[index], exc)
            return None


@torch.no_grad()
def embed_images(
    module: nn.Module,
    paths: Sequence[Path],
    image_size: int,
    batch_size: int,
    device: torch.device,
    loader_workers: int = 0,
    desc: str = "embed",
) -> tuple[Tensor, dict[int, str]]:
    """`module`'s output for each path (float32, on the CPU, in path order), each image
    decoded once, and the positions of the paths that failed to decode with the reason
    (their rows are zero).

    `module` runs in eval mode; each submodule's training mode is restored afterwards
    (a container made by split_trunk does not share its children's mode).
    """
    modes = [(layer, layer.training) for layer in module.modules()]
    module.eval()
    loader = DataLoader(ImageFiles(paths, image_size), batch_size=batch_size, shuffle=False,
                        num_workers=loader_workers, collate_fn=drop_rejected)
    outputs: Tensor | None = None
    decoded = np.zeros(len(paths), dtype=bool)
    try:
        for batch in tqdm(loader, desc=desc, unit="batch", disable=None):
            if batch is None:
                continue
            index, images = batch
            features = module(images.to(device)).float().cpu()
            if outputs is None:
                outputs = torch.zeros((len(paths), *features.shape[1:]), dtype=torch.float32)
            outputs[index] = features
            decoded[index.numpy()] = True
    finally:
        for layer, training in modes:
            layer.training = training
    if outputs is None:
        outputs = torch.zeros((len(paths), 0), dtype=torch.float32)
    return outputs, {int(i): rejection_reason(paths[i]) for i in np.flatnonzero(~decoded)}


def rejection_reason(path: Path) -> str:
    """Why `path` does not decode (asked again in this process: loader workers only log it)."""
    try:
        load_rgb(path)
    except ImageRejected as exc:
        return exc.reason
    return "failed_to_decode_once"
