"""Colour descriptors: the joint HSV histogram (default-weighted) and the mean CIELAB of grid cells.

Each takes the image already resized to the describing size (RGB uint8) and returns a float64
vector. The constants are part of the descriptor cache's key (artsim.describe.registry,
`Descriptor.settings`), so changing one recomputes only that descriptor.
"""
from __future__ import annotations

import cv2
import numpy as np

from artsim.core.grid import cell_means

# lab: mean CIELAB of each cell of a LAB_GRID x LAB_GRID partition.
LAB_GRID = 4
# Averaging the pixels of a cell happens on a LAB_THUMB-pixel square thumbnail first: converting
# every pixel to float Lab costs more than all three default-weighted descriptors together.
LAB_THUMB = 64


def color_histogram(rgb: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """Joint H,S,V histogram (OpenCV hue range 0-180), normalised to sum 1 and flattened."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(bins), [0, 180, 0, 256, 0, 256])
    hist = hist.astype(np.float64).ravel()
    return hist / max(hist.sum(), 1.0)


def lab_grid(rgb: np.ndarray) -> np.ndarray:
    """Mean CIELAB (L in 0..100, a and b about -128..127) of each grid cell, row-major cells, (L, a, b) each."""
    thumb = cv2.resize(np.ascontiguousarray(rgb), (LAB_THUMB, LAB_THUMB), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(thumb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).astype(np.float64)
    return cell_means(lab, LAB_GRID).ravel()
