"""Edge descriptors: Canny edge density per grid cell (default-weighted) and gradient-orientation
histograms per grid cell.

Each takes the grey image at the describing size and returns a float64 vector. The constants
are part of the descriptor cache's key (artsim.describe.registry, `Descriptor.settings`).
"""
from __future__ import annotations

import cv2
import numpy as np

from artsim.core.grid import cell_index

# orientation: magnitude-weighted histograms of unsigned gradient orientation per grid cell.
ORIENTATION_GRID = 4
ORIENTATION_BINS = 8


def edge_map(grey: np.ndarray, low: float, high: float) -> np.ndarray:
    """Canny edges (bool) after a light blur, so that JPEG and noise speckle do not count as edges."""
    blurred = cv2.GaussianBlur(grey, (5, 5), 1.0)
    return cv2.Canny(blurred, low, high) > 0


def edge_density_grid(edges: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of edge pixels in each cell of a grid x grid partition of normalised coordinates
    (artsim.core.grid): the layout of edges compares across aspect ratios and resolutions."""
    cell = cell_index(*edges.shape, grid)
    sums = np.bincount(cell, weights=edges.ravel().astype(np.float64), minlength=grid * grid)
    counts = np.bincount(cell, minlength=grid * grid)
    return np.divide(sums, counts, out=np.zeros(grid * grid), where=counts > 0)


def orientation_grid(grey: np.ndarray) -> np.ndarray:
    """Gradient-orientation histograms (unsigned, magnitude-weighted) of each grid cell, normalised
    to sum 1 over the whole image: cells keep their share of the image's edge strength."""
    blurred = cv2.GaussianBlur(grey, (5, 5), 1.0).astype(np.float32)
    gx, gy = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    orientation = (np.mod(angle, np.pi) * (ORIENTATION_BINS / np.pi)).astype(np.intp) % ORIENTATION_BINS
    cells = cell_index(*grey.shape, ORIENTATION_GRID)
    bins = cells * ORIENTATION_BINS + orientation.ravel()
    hist = np.bincount(
        bins, weights=magnitude.ravel().astype(np.float64), minlength=ORIENTATION_GRID**2 * ORIENTATION_BINS
    )
    total = hist.sum()
    # A flat image has no gradient: all zeros, which the similarity treats as "edgeless".
    return hist / total if total > 0 else hist
