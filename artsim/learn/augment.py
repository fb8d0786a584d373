"""Training-time augmentation of the siamese pairs (issues 17 §3, 26 §4).

The alterations are artsim.core.alterations' family (mirror, centre crop, shrink, JPEG,
rotation, greyscale, colour jitter) at settings drawn from ranges that never reach the
held-out evaluation's (core.alterations.HELD_OUT_SETTINGS; TrainingAlteration refuses a range
that holds one): crops keep 75-95% of the area (evaluation: 70%), shrinks 0.6-0.9 (0.5), JPEG
quality 55-90 (40), rotations 1-4 degrees either way (5), greyscale partial (50-90%
desaturated; evaluation: all of it), mirroring always with a 85-98% crop (evaluation: the
mirror alone), brightness, contrast and saturation by 0.7-1.3. A pair keeps its target: a
mirrored or cropped copy of a variant is as derived from its painting as the variant itself.

Two ways to use them:

- altered views (siamese.augment_prob, a trunk trained whole): every train image, original and
  variant alike and each on its own, is altered in each epoch with that probability by a chain
  of one to three kinds, drawn from (seed, epoch, the image's name) alone (TrainingViews);
- altered copies (siamese.augment_copies): fixed extra images of the train variants, each an
  image of its own (an AugmentedImage, read like a shard member: its bytes are the altered
  picture as PNG), so the frozen-trunk feature cache keys it by content like any image.

Only train pairs are altered: val and test images never are.
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


def _jitter(channel: str) -> Callable[[Image.Image, float], Image.Image]:
    def apply(img: Image.Image, factor: float) -> Image.Image:
        factors = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, channel: factor}
        return alterations.jitter_colour(img, **factors)
    return apply


@dataclass(frozen=True)
class TrainingAlteration:
    """One kind of alteration with the range its training setting is drawn from, which must hold
    none of `held_out` (evaluate's settings of the same alteration)."""

    name: str
    apply: Callable[[Image.Image, float], Image.Image]
    low: float
    high: float
    either_sign: bool = False  # draw the setting's sign at random too (rotations)
    whole: bool = False  # the setting is an integer (JPEG quality)
    held_out: tuple[float, ...] = ()
    group: str = ""  # a chain holds one kind per group (two crops would compose into any area)

    def __post_init__(self) -> None:
        for setting in self.held_out:
            reach = abs(setting) if self.either_sign else setting
            if self.low <= reach <= self.high:
                raise ValueError(f"training alteration {self.name}: its range {self.low}..{self.high} holds "
                                 f"evaluate's held-out setting {setting}")

    def draw(self, rng: np.random.Generator) -> float:
        setting = float(rng.uniform(self.low, self.high))
        if self.whole:
            setting = float(round(setting))
        if self.either_sign and rng.random() < 0.5:
            setting = -setting
        return setting


HELD_OUT = alterations.HELD_OUT_SETTINGS
# In the order a chain applies them: geometry, then colour, then the JPEG a copy is saved as.
TRAINING: Mapping[str, TrainingAlteration] = {
    alteration.name: alteration
    for alteration in (
        TrainingAlteration("mirror_crop", _mirror_cropped, 0.85, 0.98, held_out=HELD_OUT["centre_crop"], group="crop"),
        TrainingAlteration("crop", alterations.centre_crop, 0.75, 0.95, held_out=HELD_OUT["centre_crop"], group="crop"),
        TrainingAlteration("rotate", alterations.rotate, 1.0, 4.0, either_sign=True, held_out=HELD_OUT["rotate"]),
        TrainingAlteration("shrink", alterations.shrink, 0.6, 0.9, held_out=HELD_OUT["shrink"]),
        TrainingAlteration("desaturate", _desaturate, 0.5, 0.9, held_out=HELD_OUT["greyscale"], group="colour"),
        TrainingAlteration("brightness", _jitter("brightness"), 0.7, 1.3),
        TrainingAlteration("contrast", _jitter("contrast"), 0.7, 1.3),
        TrainingAlteration("saturation", _jitter("saturation"), 0.7, 1.3, group="colour"),
        TrainingAlteration("jpeg", lambda img, q: alterations.recompress(img, int(q)), 55, 90, whole=True,
                           held_out=HELD_OUT["recompress"]),
    )
}
# Alterations in one chain (altered views): one to this many kinds, of different groups.
LONGEST_CHAIN = 3


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


@dataclass(frozen=True)
class AlterationChain:
    """TRAINING kinds at their settings, applied in TRAINING's order."""

    steps: tuple[tuple[str, float], ...]

    def apply(self, img: Image.Image) -> Image.Image:
        for kind, setting in self.steps:
            img = TRAINING[kind].apply(img, setting)
        return img


def draw_chain(rng: np.random.Generator) -> AlterationChain:
    """One to LONGEST_CHAIN kinds of different groups, each at a setting drawn from its range."""
    length = int(rng.integers(1, LONGEST_CHAIN + 1))
    chosen, groups = [], set()
    for index in rng.permutation(len(TRAINING)):
        alteration = list(TRAINING.values())[int(index)]
        group = alteration.group or alteration.name
        if group not in groups and len(chosen) < length:
            chosen.append(alteration.name)
            groups.add(group)
    kinds = [kind for kind in TRAINING if kind in chosen]
    return AlterationChain(tuple((kind, TRAINING[kind].draw(rng)) for kind in kinds))


@dataclass(frozen=True)
class TrainingViews:
    """Which train images are altered in an epoch, and how: each with `probability`, by a chain
    drawn from (seed, epoch, the image's name) alone, so the original and the variant of a pair
    are altered independently, the same on every rank and in every run."""

    seed: int
    probability: float

    def chain(self, name: str, epoch: int) -> AlterationChain | None:
        digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        rng = np.random.default_rng([self.seed, epoch, digest])
        return draw_chain(rng) if rng.random() < self.probability else None
