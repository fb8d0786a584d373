"""Texture descriptors: 13 Haralick features (default-weighted) and uniform LBP histograms.

Each takes the grey image at the describing size and returns a float64 vector. The constants
are part of the descriptor cache's key (artsim.describe.registry, `Descriptor.settings`).
"""
from __future__ import annotations

import mahotas
import numpy as np

HARALICK_FEATURES = 13
# lbp: rotation-invariant uniform LBP with 8 neighbours, at these radii (pixels).
LBP_RADII = (1, 2)
LBP_BINS = 10  # 9 uniform patterns (0..8 bits set) + 1 for all non-uniform ones

# The 8 neighbours in circular order, as (row, column) steps of length 1 (scaled by the radius).
_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def haralick_texture(grey: np.ndarray, levels: int) -> np.ndarray:
    """The 13 Haralick features averaged over the 4 directions, on `levels` grey levels."""
    quantised = (grey.astype(np.uint16) * levels // 256).astype(np.uint8)
    # Co-occurrences need a neighbour in every direction: a 1-pixel-thin image has none.
    quantised = np.pad(
        quantised, ((0, max(0, 2 - quantised.shape[0])), (0, max(0, 2 - quantised.shape[1]))), mode="edge"
    )
    # ignore_zeros=False: level 0 is a real grey level, and a uniform image stays computable.
    features = mahotas.features.haralick(quantised, ignore_zeros=False, return_mean=True)
    # Some features are ratios that degenerate (0/0) on flat images; a flat image is not an error.
    return np.nan_to_num(np.asarray(features, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _uniform_lookup() -> np.ndarray:
    """Bin of each 8-bit pattern: its number of set bits when uniform (<= 2 transitions), else 9."""
    codes = np.arange(256)
    bits = (codes[:, None] >> np.arange(8)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(1)
    return np.where(transitions <= 2, bits.sum(1), LBP_BINS - 1).astype(np.intp)


_UNIFORM = _uniform_lookup()


def lbp_histograms(grey: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP histograms at each radius, each normalised to 1/len(radii).

    The neighbours lie on the square ring at the radius (no interpolation), which keeps this a
    handful of array comparisons: a tenth of scikit-image's local_binary_pattern time.
    """
    grey = grey.astype(np.int16)
    parts = [_lbp_histogram(grey, radius) for radius in LBP_RADII]
    return np.concatenate(parts) / len(LBP_RADII)


def _lbp_histogram(grey: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(grey, radius, mode="edge")
    height, width = grey.shape
    codes = np.zeros(grey.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_RING):
        top, left = radius + dy * radius, radius + dx * radius
        codes |= (padded[top:top + height, left:left + width] >= grey).astype(np.uint8) << bit
    hist = np.bincount(_UNIFORM[codes].ravel(), minlength=LBP_BINS).astype(np.float64)
    return hist / max(hist.sum(), 1.0)
