"""The per-image vectors of the alternative descriptor candidates (artsim.describe.registry lists them all).

Each takes the image already resized to the describing size (RGB uint8, or its grey version)
and returns a float64 vector whose length depends only on the constants below. The constants
are part of the descriptor cache's key (artsim.describe.registry.Candidate.settings), so changing
one recomputes only that candidate.
"""
from __future__ import annotations

import cv2
import numpy as np

# colour: mean CIELAB of each cell of a LAB_GRID x LAB_GRID partition.
LAB_GRID = 4
# Averaging the pixels of a cell happens on a LAB_THUMB-pixel square thumbnail first: converting
# every pixel to float Lab costs more than all three required descriptors together.
LAB_THUMB = 64
# texture: rotation-invariant uniform LBP with 8 neighbours, at these radii (pixels).
LBP_RADII = (1, 2)
LBP_BINS = 10  # 9 uniform patterns (0..8 bits set) + 1 for all non-uniform ones
# edges: magnitude-weighted histograms of unsigned gradient orientation per grid cell.
ORIENTATION_GRID = 4
ORIENTATION_BINS = 8
# structure: pHash's construction (32x32 grey, DCT, the low 8x8 block, bits above its median).
PHASH_SIDE = 32
PHASH_BLOCK = 8
# structure: a LAYOUT_SIDE x LAYOUT_SIDE grey thumbnail, centred and scaled to unit norm.
LAYOUT_SIDE = 16

# The 8 neighbours in circular order, as (row, column) steps of length 1 (scaled by the radius).
_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _uniform_lookup() -> np.ndarray:
    """Bin of each 8-bit pattern: its number of set bits when uniform (<= 2 transitions), else 9."""
    codes = np.arange(256)
    bits = (codes[:, None] >> np.arange(8)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(1)
    return np.where(transitions <= 2, bits.sum(1), LBP_BINS - 1).astype(np.intp)


_UNIFORM = _uniform_lookup()


def _cell_index(height: int, width: int, grid: int) -> np.ndarray:
    """Each pixel's cell in a grid x grid partition of normalised coordinates (flat, row-major)."""
    rows = np.arange(height) * grid // height
    cols = np.arange(width) * grid // width
    return (rows[:, None] * grid + cols[None, :]).ravel()


def lab_grid(rgb: np.ndarray) -> np.ndarray:
    """Mean CIELAB (L in 0..100, a and b about -128..127) of each grid cell, row-major cells, (L, a, b) each."""
    thumb = cv2.resize(np.ascontiguousarray(rgb), (LAB_THUMB, LAB_THUMB), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(thumb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).astype(np.float64)
    cells = _cell_index(LAB_THUMB, LAB_THUMB, LAB_GRID)
    counts = np.bincount(cells, minlength=LAB_GRID**2)
    means = [np.bincount(cells, weights=lab[..., c].ravel(), minlength=LAB_GRID**2) / counts for c in range(3)]
    return np.stack(means, axis=1).ravel()


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


def orientation_grid(grey: np.ndarray) -> np.ndarray:
    """Gradient-orientation histograms (unsigned, magnitude-weighted) of each grid cell, normalised
    to sum 1 over the whole image: cells keep their share of the image's edge strength."""
    blurred = cv2.GaussianBlur(grey, (5, 5), 1.0).astype(np.float32)
    gx, gy = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    orientation = (np.mod(angle, np.pi) * (ORIENTATION_BINS / np.pi)).astype(np.intp) % ORIENTATION_BINS
    cells = _cell_index(*grey.shape, ORIENTATION_GRID)
    bins = cells * ORIENTATION_BINS + orientation.ravel()
    hist = np.bincount(bins, weights=magnitude.ravel().astype(np.float64), minlength=ORIENTATION_GRID**2 * ORIENTATION_BINS)
    total = hist.sum()
    # A flat image has no gradient: all zeros, which the similarity treats as "edgeless".
    return hist / total if total > 0 else hist


def phash_bits(grey: np.ndarray) -> np.ndarray:
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
