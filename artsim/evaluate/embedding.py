"""The model's side of evaluation: each image through the trunk once, pairs scored from the embeddings.

Scoring from embeddings runs only the head, which is what makes scoring every
(variant, original) combination of the retrieval task cheap.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from artsim.core.heap import give_back_freed_memory
from artsim.core.images import ImageFile, as_image_file
from artsim.learn.features import embed_images
from artsim.learn.models import ImageEmbedding, SiameseRegressor

log = logging.getLogger(__name__)

# Pairs per call of the head: bounds memory whatever the test size, as a call's transients grow with it (its features
# are float32 rows of twice the embedding). bench/heap.py compares 8,192 (the peak higher) with 2,048 (no slower).
PAIRS_PER_CALL = 2048
# (query, candidate) scores a block of a ranking holds, and held-out pairs a chunk: the head scores them a call at a
# time, the same bits whatever the call's size (tested).
PAIRS_PER_BLOCK = 4 * PAIRS_PER_CALL


@dataclass(frozen=True)
class EmbeddedImages:
    """Trunk embeddings of distinct image files, and the files that did not decode."""

    embeddings: Tensor
    row_of: dict[ImageFile, int]
    unreadable: frozenset[ImageFile]

    def rows(self, paths: Iterable[ImageFile | str]) -> Tensor:
        return torch.as_tensor([self.row_of[as_image_file(p)] for p in paths], dtype=torch.long)

    def readable(self, paths: Iterable[ImageFile | str]) -> np.ndarray:
        return np.array([as_image_file(p) not in self.unreadable for p in paths], dtype=bool)


def embed_files(
    model: SiameseRegressor,
    paths: Iterable[ImageFile | str],
    image_size: int,
    batch_size: int,
    device: torch.device,
    loader_workers: int = 0,
) -> EmbeddedImages:
    """Each distinct file embedded once (SiameseRegressor.embed); a file that does not decode is listed, never fatal."""
    distinct = list(dict.fromkeys(as_image_file(p) for p in paths))
    embeddings, failed = embed_images(ImageEmbedding(model), distinct, image_size, batch_size, device, loader_workers,
                                      desc="embed evaluation images")
    for position, reason in failed.items():
        log.warning("image %s does not decode (%s): its pairs are skipped", distinct[position], reason)
    give_back_freed_memory()  # the trunk's activations, freed but resident (artsim.core.heap)
    return EmbeddedImages(embeddings, {p: i for i, p in enumerate(distinct)}, frozenset(distinct[i] for i in failed))


@torch.no_grad()
def score_embedding_pairs(
    model: SiameseRegressor, left: Tensor, right: Tensor, device: torch.device, pairs_per_call: int = PAIRS_PER_CALL,
    rows: tuple[Tensor, Tensor] | None = None,
) -> np.ndarray:
    """f(left[i], right[i]) for every i, from trunk embeddings; with rows = (l, r), f(left[l[i]], right[r[i]]), the
    pairs' embeddings gathered a call at a time, never all at once (the same calls, so the same scores)."""
    model.eval()
    count = len(left) if rows is None else len(rows[0])
    scores = []
    for start in range(0, count, pairs_per_call):
        part = slice(start, start + pairs_per_call)
        a, b = (left[part], right[part]) if rows is None else (left[rows[0][part]], right[rows[1][part]])
        scores.append(model.score_embeddings(a.to(device), b.to(device)).float().cpu())
    give_back_freed_memory()  # each call's features, freed but resident (artsim.core.heap)
    return torch.cat(scores).numpy().astype(np.float64) if scores else np.zeros(0)
