"""Trunk features of unique images: each image is decoded, resized and passed through a
frozen part of the ResNet-50 once, then reused by every pair it appears in.

A WikiArt run has hundreds of thousands of pairs over far fewer images (an original takes
part in every pair of its variants and in other originals' negatives), so computing per
unique image instead of per pair is where the time goes, in training, evaluation and search.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet
from tqdm import tqdm

from artsim.config import TRUNK_STAGES
from artsim.images import ImageRejected, file_hash, load_rgb
from artsim.models import drop_rejected, pair_transform

log = logging.getLogger(__name__)

TrainLayers = Sequence[str] | Literal["all"]


def trunk_stages(trunk: ResNet) -> dict[str, nn.Module]:
    return {
        "stem": nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool),
        "layer1": trunk.layer1,
        "layer2": trunk.layer2,
        "layer3": trunk.layer3,
        "layer4": trunk.layer4,
    }


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


# ---------------------------------------------------------------------------
# On-disk cache of frozen-bottom features
# ---------------------------------------------------------------------------

def module_digest(module: nn.Module, *extra: object) -> str:
    """sha256 over a module's parameters and buffers (names, shapes, bytes) and `extra`."""
    digest = hashlib.sha256(repr(extra).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# numpy has no bfloat16: such features are stored as their raw 16-bit patterns.
_STORED_AS = {torch.float32: torch.float32, torch.float16: torch.float16, torch.bfloat16: torch.int16}


class FeatureStore:
    """Features of single images under `root/<model key>-<dtype>/<image digest[:2]>/<image digest>.npy`.

    One file per image, written to a temporary name and renamed, so an interrupted run
    leaves only whole files and the next run computes just the rest. Nothing is unpickled.
    A mixed-precision run keeps its features in its compute dtype: the trained stages
    would cast them to it anyway, and the files (read every epoch) are half the size.
    """

    def __init__(self, root: Path, model_key: str, dtype: torch.dtype = torch.float32) -> None:
        if dtype not in _STORED_AS:
            raise ValueError(f"features can be stored as {sorted(map(str, _STORED_AS))}, not {dtype}")
        self.dtype = dtype
        self.folder = Path(root) / f"{model_key}-{str(dtype).removeprefix('torch.')}"

    def path(self, image_digest: str) -> Path:
        return self.folder / image_digest[:2] / f"{image_digest}.npy"

    def has(self, image_digest: str) -> bool:
        return self.path(image_digest).is_file()

    def load(self, image_digest: str) -> Tensor:
        return torch.from_numpy(np.load(self.path(image_digest), allow_pickle=False)).view(self.dtype)

    def save(self, image_digest: str, features: Tensor) -> None:
        target = self.path(image_digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(handle, "wb") as out:
                stored = features.detach().cpu().to(self.dtype).view(_STORED_AS[self.dtype])
                np.save(out, stored.numpy(), allow_pickle=False)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def cache_features(
    bottom: nn.Module,
    paths: Sequence[Path],
    store: FeatureStore,
    image_size: int,
    batch_size: int,
    device: torch.device,
    loader_workers: int = 0,
) -> tuple[list[str], dict[Path, str]]:
    """Make sure `store` holds `bottom`'s features of every decodable path.

    Returns each path's digest (in order) and the paths that failed to decode with the reason.
    Only images missing from the store are decoded and computed.
    """
    # Keyed by content, not by name: a renamed or re-ingested image is found again.
    digests = [file_hash(path) for path in tqdm(paths, desc="hash images", unit="img", disable=None)]
    first_path_of: dict[str, int] = {}
    for index, digest in enumerate(digests):
        first_path_of.setdefault(digest, index)
    missing = [index for digest, index in first_path_of.items() if not store.has(digest)]
    log.info("features: %d unique images, %d already cached", len(first_path_of), len(first_path_of) - len(missing))
    rejected: dict[Path, str] = {}
    # Chunks bound the memory: features go to disk as soon as a chunk is done.
    chunk_size = batch_size * 16
    for start in tqdm(range(0, len(missing), chunk_size), desc="cache features", unit="chunk", disable=None):
        chunk = missing[start:start + chunk_size]
        features, failed = embed_images(bottom, [paths[i] for i in chunk], image_size, batch_size, device,
                                        loader_workers, desc="bottom")
        for row, path_index in enumerate(chunk):
            if row in failed:
                rejected[paths[path_index]] = failed[row]
            else:
                store.save(digests[path_index], features[row])
    return digests, rejected
