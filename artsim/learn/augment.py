"""Training-time augmentation of the siamese pairs (issue 17 §3): altered copies of the train
variants, keeping each pair's target. A mirrored or cropped copy of a variant is as derived
from its painting as the variant itself (and as unrelated to another painting).

The alterations are artsim.core.alterations' family (mirror, centre crop, shrink, JPEG,
rotation, greyscale) at settings drawn from ranges that never reach the held-out evaluation's
(core.alterations.EVALUATION): crops keep 75-95% of the area (evaluation: 70%), shrinks
0.6-0.9 (0.5), JPEG quality 55-90 (40), rotations 1-4 degrees either way (5), greyscale
partial (50-90% desaturated; evaluation: all of it), mirroring always with a 85-98% crop
(evaluation: the mirror alone).

An altered copy is an image of its own (an AugmentedImage, read like a shard member: its
bytes are the altered picture as PNG), so the frozen-trunk feature cache keys it by its
content like any image: each copy is computed once and then reused across epochs and runs.
Only train pairs are copied: val and test images are never altered into training.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from artsim.core import alterations
from artsim.core.images import ImageFile, load_rgb


def _desaturate(img: Image.Image, amount: float) -> Image.Image:
    return Image.blend(img, alterations.greyscale(img), amount)


def _mirror_cropped(img: Image.Image, area: float) -> Image.Image:
    return alterations.centre_crop(alterations.mirror(img), area)


@dataclass(frozen=True)
class TrainingAlteration:
    """One kind of alteration with the range its training setting is drawn from."""

    name: str
    apply: Callable[[Image.Image, float], Image.Image]
    low: float
    high: float
    either_sign: bool = False  # draw the setting's sign at random too (rotations)
    whole: bool = False  # the setting is an integer (JPEG quality)

    def draw(self, rng: np.random.Generator) -> float:
        setting = float(rng.uniform(self.low, self.high))
        if self.whole:
            setting = float(round(setting))
        if self.either_sign and rng.random() < 0.5:
            setting = -setting
        return setting


TRAINING: Mapping[str, TrainingAlteration] = {
    alteration.name: alteration
    for alteration in (
        TrainingAlteration("mirror_crop", _mirror_cropped, 0.85, 0.98),
        TrainingAlteration("crop", alterations.centre_crop, 0.75, 0.95),
        TrainingAlteration("shrink", alterations.shrink, 0.6, 0.9),
        TrainingAlteration("jpeg", lambda img, q: alterations.recompress(img, int(q)), 55, 90, whole=True),
        TrainingAlteration("rotate", alterations.rotate, 1.0, 4.0, either_sign=True),
        TrainingAlteration("desaturate", _desaturate, 0.5, 0.9),
    )
}


@dataclass(frozen=True)
class AugmentedImage:
    """`source` altered by TRAINING[kind] at `setting`; its bytes are the result as PNG
    (lossless, so that what is hashed, cached and decoded is exactly the altered picture)."""

    source: ImageFile
    kind: str
    setting: float

    def altered(self) -> Image.Image:
        return TRAINING[self.kind].apply(load_rgb(self.source), self.setting)

    def read_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.altered().save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def __str__(self) -> str:
        return f"{self.source}~{self.kind}({self.setting:g})"


def draw_augmentation(source: ImageFile, key: str, copy: int, seed: int) -> AugmentedImage:
    """The `copy`-th altered copy of the image known as `key` (its id): drawn from (seed, copy,
    key) alone, so the same variant gets the same copies whatever the order or the other pairs."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    # A variant's copies take its kinds in a seeded order: up to len(TRAINING) copies are all
    # of different kinds (never two identical images), each with its own setting.
    kinds = list(TRAINING)
    order = np.random.default_rng([seed, digest]).permutation(len(kinds))
    kind = kinds[int(order[(copy - 1) % len(kinds)])]
    return AugmentedImage(source, kind, TRAINING[kind].draw(np.random.default_rng([seed, copy, digest])))


def with_augmented_copies(pairs: pd.DataFrame, copies: int, seed: int) -> pd.DataFrame:
    """`pairs` followed by `copies` altered copies of each train pair's generated side, with the
    pair's score, positive flag and split kept; `augmented` is the copy's number (0: the pair itself).

    Every pair of one variant gets the same copies (the same images), so a copy costs one
    image in the feature cache however many pairs it is in."""
    pairs = pairs.assign(augmented=0)
    train = pairs[pairs["split"] == "train"]
    if copies == 0 or train.empty:
        return pairs
    extra = []
    for copy in range(1, copies + 1):
        altered = [draw_augmentation(path, str(key), copy, seed)
                   for path, key in zip(train["generated_path"], train["generated_id"])]
        extra.append(train.assign(generated_path=pd.Series(altered, index=train.index, dtype=object), augmented=copy))
    return pd.concat([pairs, *extra], ignore_index=True)
