"""Synthetic paintings for the benchmarks: smooth colour fields with JPEG-worthy grain, the same
bytes for the same index on every run, so a benchmark's images are built once and reused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_painting(path: Path, index: int, size: tuple[int, int]) -> None:
    """A `size` (width, height) JPEG at `path` drawn from `index`; nothing to do if it exists."""
    if path.exists():
        return
    width, height = size
    rng = np.random.default_rng(index)
    coarse = rng.integers(0, 256, size=(height // 32, width // 32, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-12, 12, size=(height, width, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(smooth + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
