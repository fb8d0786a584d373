"""What the trained part of the siamese model reads per image: cached frozen-trunk features,
or the decoded images when the whole trunk is trained (stage siamese)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from artsim.core.distributed import gather_to_all
from artsim.learn.augment import TrainingViews
from artsim.learn.feature_cache import cache_features, open_feature_store
from artsim.learn.models import NORMALISATION, MirrorPairs, screen_images
from artsim.learn.training import Runtime, share_of
from artsim.params import SiameseParams
from artsim.siamese.batches import CachedFeatures, DecodedImages, ImageInputs, PairBatches, PairTable


@dataclass
class PreparedInputs:
    """The inputs of every usable image, addressable by path."""

    inputs: ImageInputs
    position: dict[Path, int]
    healed: int = 0  # damaged cache entries found (over all ranks), deleted and computed again

    def batches(self, pairs: pd.DataFrame, views: TrainingViews | None = None) -> PairBatches:
        """`pairs` (resolved, a subset of those prepared) as PairBatches over these inputs; with
        `views`, their images altered in training epochs (decoded images only)."""
        table = PairTable.from_pairs(pairs)
        if isinstance(self.inputs, CachedFeatures):
            inputs = CachedFeatures(self.inputs.store, [self.inputs.digests[self.position[p]] for p in table.images])
        else:
            inputs = DecodedImages(table.images, self.inputs.image_size, views)
        return PairBatches(table, inputs)


def prepare_inputs(images: Sequence[Path], bottom: nn.Module, params: SiameseParams,
                   runtime: Runtime) -> tuple[PreparedInputs, set[Path]]:
    """What the trained part reads per image, and the images that failed to decode.

    With a frozen bottom, its features are cached (each rank computes its share of the
    missing ones); otherwise the images are only screened, decoded again each epoch.
    """
    position = {path: i for i, path in enumerate(images)}
    if len(bottom) == 0:
        rejected = set(screen_images(images))
        return PreparedInputs(DecodedImages(images, params.image_size), position), rejected
    bottom.to(runtime.device, memory_format=runtime.memory_format)
    bottom = MirrorPairs(bottom)  # each image's features and its mirror's, as SiameseRegressor.embed reads them
    store = open_feature_store(params.feature_cache, bottom, params.image_size, NORMALISATION, runtime.device,
                               runtime.channels_last, runtime.compute_dtype)
    mine = list(share_of(len(images), runtime.ranks))
    digests, rejected = cache_features(bottom, [images[i] for i in mine], store, params.image_size,
                                       params.batch_size, runtime.device, params.loader_workers)
    # Also the barrier after which every rank's features are on disk.
    shares = gather_to_all((mine, digests, rejected, store.healed), runtime.ranks)
    all_digests = [""] * len(images)
    all_rejected: set[Path] = set()
    for positions, share_digests, share_rejected, _ in shares:
        for index, digest in zip(positions, share_digests):
            all_digests[index] = digest
        all_rejected.update(share_rejected)
    # The same content under another name shares the fate of the first (no entry was made for it).
    failed_contents = {all_digests[position[path]] for path in all_rejected}
    all_rejected.update(path for path, digest in zip(images, all_digests) if digest in failed_contents)
    healed = sum(share[-1] for share in shares)
    return PreparedInputs(CachedFeatures(store, all_digests), position, healed), all_rejected
