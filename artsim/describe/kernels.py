"""Vectorised similarities of descriptor vectors, each in two forms.

- paired(a, b): rows a[k] and b[k] of two (n, d) arrays -> (n,) similarities;
- cross(a, b): every row of a (n, d) against every row of b (m, d) -> (n, m), written with
  scipy's cdist so that no (n, m, d) intermediate is ever built.

Every similarity is in [0, 1], symmetric, and exactly 1 for identical vectors. Which descriptor
uses which kernel is artsim.describe.registry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from artsim.describe.color import LAB_GRID

# ΔE76 (CIELAB distance) at which the colour-layout similarity falls to 1/e; a just noticeable
# difference is about 2.3, two unrelated paintings' cells differ by 20 to 40.
LAB_DELTA_E_SCALE = 10.0


@dataclass(frozen=True)
class TextureStats:
    """Per-feature mean and std used to z-normalise Haralick vectors (features differ in scale by orders of
    magnitude)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, textures: np.ndarray) -> "TextureStats":
        """Stats of an (n_images, n_features) array; a constant feature gets std 1 (no division by 0)."""
        textures = np.asarray(textures, dtype=np.float64)
        if textures.ndim != 2 or len(textures) == 0:
            raise ValueError("TextureStats.fit needs a non-empty (n_images, n_features) array")
        std = textures.std(axis=0)
        return cls(mean=textures.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def unit_array(values: np.ndarray) -> np.ndarray:
    # Guards against float round-off only: the formulas are already bounded.
    return np.clip(values, 0.0, 1.0)


def _ratio_or_one(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # Two empty histograms (or edgeless images) are identical.
    return np.divide(numerator, denominator, out=np.ones_like(numerator, dtype=np.float64), where=denominator > 0)


def _sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σa + Σb of every (row of a, row of b)."""
    return a.sum(1)[:, None] + b.sum(1)[None, :]


# --- histogram intersection: Σ min / larger mass -------------------------------------------

def intersection_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return unit_array(_ratio_or_one(np.minimum(a, b).sum(1), np.maximum(a.sum(1), b.sum(1))))


def intersection_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Σ min = (Σa + Σb - L1) / 2.
    mass = np.maximum(a.sum(1)[:, None], b.sum(1)[None, :])
    return unit_array(_ratio_or_one((_sums(a, b) - cdist(a, b, "cityblock")) / 2, mass))


# --- generalised Jaccard: Σ min / Σ max ----------------------------------------------------

def jaccard_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return unit_array(_ratio_or_one(np.minimum(a, b).sum(1), np.maximum(a, b).sum(1)))


def jaccard_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Σ min = (Σa + Σb - L1) / 2, Σ max = (Σa + Σb + L1) / 2.
    sums, l1 = _sums(a, b), cdist(a, b, "cityblock")
    return unit_array(_ratio_or_one((sums - l1) / 2, (sums + l1) / 2))


# --- z-normalised features: exp(-RMS of the difference) ------------------------------------

def texture_paired(a: np.ndarray, b: np.ndarray, stats: TextureStats) -> np.ndarray:
    z_diff = (a - b) / stats.std
    return unit_array(np.exp(-np.sqrt(np.mean(z_diff**2, axis=1))))


def texture_cross(a: np.ndarray, b: np.ndarray, stats: TextureStats) -> np.ndarray:
    # "euclidean" in scipy sums the squared differences directly (no |x|² + |y|² - 2xy cancellation).
    rms = cdist(a / stats.std, b / stats.std, "euclidean") / np.sqrt(a.shape[1])
    return unit_array(np.exp(-rms))


# --- colour layout: exp(-mean ΔE76 over the grid cells / scale) ----------------------------

def delta_e_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cells = (a - b).reshape(len(a), LAB_GRID**2, 3)
    return unit_array(np.exp(-np.sqrt((cells**2).sum(2)).mean(1) / LAB_DELTA_E_SCALE))


def delta_e_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = np.zeros((len(a), len(b)))
    for cell in range(LAB_GRID**2):
        columns = slice(3 * cell, 3 * cell + 3)
        total += cdist(a[:, columns], b[:, columns], "euclidean")
    return unit_array(np.exp(-total / LAB_GRID**2 / LAB_DELTA_E_SCALE))


# --- bits: 1 - Hamming distance / number of bits -------------------------------------------

def hamming_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return unit_array(1.0 - np.mean(a != b, axis=1))


def hamming_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return unit_array(1.0 - cdist(a, b, "hamming"))


# --- unit vectors: max(0, correlation) = max(0, 1 - |a - b|² / 2) --------------------------
# A flat image has no layout to correlate: its vector is all zeros, and the formula would give
# it 0.5 against any image. Pearson is undefined there; we take 1 between two flat images (they
# look alike) and 0 between a flat image and any other (no shared structure), as documented.

def _flat(vectors: np.ndarray) -> np.ndarray:
    # Unit vectors have squared norm 1 and flat images' are exactly 0: anything under 1/2 is flat.
    return (vectors**2).sum(1) < 0.5


def correlation_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Written as a distance so that identical vectors give exactly 1 (a dot product may round below).
    similarity = unit_array(1.0 - ((a - b) ** 2).sum(1) / 2)
    flat_a, flat_b = _flat(a), _flat(b)
    return np.where(flat_a | flat_b, (flat_a & flat_b).astype(np.float64), similarity)


def correlation_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity = unit_array(1.0 - cdist(a, b, "sqeuclidean") / 2)
    flat_a, flat_b = _flat(a)[:, None], _flat(b)[None, :]
    return np.where(flat_a | flat_b, (flat_a & flat_b).astype(np.float64), similarity)
