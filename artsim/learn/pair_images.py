"""The images of scored pairs: a pairs table resolved to its image files, and the per-pair
dataset that tests and bench/siamese.py take as the reference for the faster paths."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from artsim.core.images import ImageFile, ImageRejected, load_rgb
from artsim.core.shards import manifest_images
from artsim.learn.models import SiameseRegressor, drop_rejected, pair_resize, to_normalised_tensor

log = logging.getLogger(__name__)


def resolve_pairs(
    pairs: pd.DataFrame,
    ingested: pd.DataFrame,
    generated: pd.DataFrame,
    ingested_dir: Path,
    generated_dir: Path,
) -> pd.DataFrame:
    """`pairs` with the image files of both sides: original_path and generated_path."""
    original_paths = pd.Series(manifest_images(ingested, ingested_dir), index=ingested["id"], dtype=object)
    generated_paths = pd.Series(manifest_images(generated, generated_dir), index=generated["id"], dtype=object)
    resolved = pairs.assign(
        original_path=pairs["original_id"].map(original_paths),
        generated_path=pairs["generated_id"].map(generated_paths),
    )
    unknown = resolved["original_path"].isna() | resolved["generated_path"].isna()
    if unknown.any():
        log.warning("%d pairs name an image missing from the manifests; skipped", int(unknown.sum()))
    return resolved[~unknown].reset_index(drop=True)


class PairImages(Dataset):
    """(index, original, generated, score) per pair; None when an image fails to decode.

    The per-pair path (two trunk passes per pair, see predict_pairs): the reference that
    tests and bench/siamese.py compare the embed-once and cached-feature paths against.

    Each original appears in several pairs and the resize is deterministic, so resized
    images are kept in a bounded cache (uint8, `cache_size` images per process) instead
    of decoding the same JPEG again for every pair and epoch.
    """

    def __init__(self, pairs: pd.DataFrame, image_size: int, cache_size: int = 4096) -> None:
        self.original_paths = list(pairs["original_path"])
        self.generated_paths = list(pairs["generated_path"])
        self.scores = torch.tensor(pairs["score"].to_numpy(dtype=np.float32))
        self.resize = pair_resize(image_size)
        self.normalise = v2.Compose(to_normalised_tensor())
        self._resized = functools.lru_cache(maxsize=cache_size)(self._decode_resized)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int) -> tuple[int, Tensor, Tensor, Tensor] | None:
        try:
            original = self.normalise(self._resized(self.original_paths[index]))
            generated = self.normalise(self._resized(self.generated_paths[index]))
        except ImageRejected as exc:
            log.warning("skipping pair %d: %s", index, exc)
            return None
        return index, original, generated, self.scores[index]

    def _decode_resized(self, path: ImageFile) -> Tensor:
        return self.resize(load_rgb(path))


@torch.no_grad()
def predict_pairs(model: SiameseRegressor, dataset: PairImages, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the pairs predicted, their predictions) in dataset order."""
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=drop_rejected)
    indices, predictions = [], []
    for batch in loader:
        if batch is None:
            continue
        index, original, generated, _ = batch
        indices.append(index.numpy())
        predictions.append(model(original.to(device), generated.to(device)).cpu().numpy())
    if not indices:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(indices), np.concatenate(predictions)
