"""Small builders shared by the tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"


def random_painting(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    """A smooth random colour field with some structure, so descriptors have something to see."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
