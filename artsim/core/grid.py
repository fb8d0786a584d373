"""Grid cells in normalised coordinates: the partition the edge, colour-layout and orientation
descriptors (and the app's difference maps) cut an image into.

Cells are defined relative to the image size, so that two images of different resolution or
aspect ratio are cut alike: pixel row r of H falls in cell row r * grid // H.
"""
from __future__ import annotations

import numpy as np


def cell_index(height: int, width: int, grid: int) -> np.ndarray:
    """Each pixel's cell in a grid x grid partition (flat, row-major over the pixels): values 0..grid²-1."""
    rows = np.arange(height) * grid // height
    cols = np.arange(width) * grid // width
    return (rows[:, None] * grid + cols[None, :]).ravel()


def cell_means(values: np.ndarray, grid: int) -> np.ndarray:
    """Mean of an (H, W, C) array over each cell: (grid, grid, C); an empty cell (image under grid pixels) is 0."""
    height, width, channels = values.shape
    cell = cell_index(height, width, grid)
    counts = np.bincount(cell, minlength=grid * grid)
    flat = values.reshape(-1, channels).astype(np.float64)
    sums = np.stack([np.bincount(cell, weights=flat[:, c], minlength=grid * grid) for c in range(channels)], axis=1)
    return (sums / np.maximum(counts, 1)[:, None]).reshape(grid, grid, channels)
