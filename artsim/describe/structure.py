"""Structure descriptors: pHash bits as a 0/1 vector and a small centred grey thumbnail (the luminance layout).

Each takes the grey image at the describing size and returns a float64 vector. The constants
are part of the descriptor cache's key (artsim.describe.registry, `Descriptor.settings`).
"""
from __future__ import annotations

import cv2
import numpy as np

# phash: pHash's construction (32x32 grey, DCT, the low 8x8 block, bits above its median).
PHASH_SIDE = 32
PHASH_BLOCK = 8
# layout: a LAYOUT_SIDE x LAYOUT_SIDE grey thumbnail, centred and scaled to unit norm.
LAYOUT_SIDE = 16


def phash_vector(grey: np.ndarray) -> np.ndarray:
    """pHash's 64 bits as 0/1: the low 8x8 DCT block of a 32x32 grey image, above its median."""
    small = cv2.resize(grey, (PHASH_SIDE, PHASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:PHASH_BLOCK, :PHASH_BLOCK].astype(np.float64).ravel()
    return (low > np.median(low)).astype(np.float64)


def layout_thumbnail(grey: np.ndarray) -> np.ndarray:
    """A small grey thumbnail minus its mean, scaled to unit norm (all zeros for a flat image):
    the dot product of two is the Pearson correlation of their luminance layouts."""
    thumb = cv2.resize(grey, (LAYOUT_SIDE, LAYOUT_SIDE), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    centred = thumb - thumb.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 1e-9 else np.zeros_like(centred)
