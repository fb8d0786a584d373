"""The per-pair similarities of the three default-weighted descriptors written plainly, one pair
at a time: the oracle the vectorised kernels (artsim.describe.kernels) are checked against.
Not used by the library: one pair goes through the same kernels as a batch of pairs."""
from __future__ import annotations

import numpy as np

from artsim.describe.kernels import TextureStats


def color_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Histogram intersection, divided by the larger mass so that identical histograms give exactly 1."""
    mass = max(float(np.sum(a)), float(np.sum(b)))
    if mass <= 0:
        return 1.0
    return _unit(float(np.minimum(a, b).sum()) / mass)


def texture_similarity(a: np.ndarray, b: np.ndarray, stats: TextureStats) -> float:
    """exp(-RMS of the z-normalised difference): 1 for identical, about 1/e one std apart."""
    z_diff = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / stats.std
    return _unit(float(np.exp(-np.sqrt(np.mean(z_diff**2)))))


def edge_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Generalised Jaccard of edge-density grids: sum of min / sum of max; two edgeless images are identical."""
    union = float(np.maximum(a, b).sum())
    if union <= 0:
        return 1.0
    return _unit(float(np.minimum(a, b).sum()) / union)


def oracle_similarities(a, b, stats: TextureStats) -> dict[str, float]:
    """color, texture and edges of two artsim.describe.table.Descriptors."""
    return {"color": color_similarity(a["color"], b["color"]),
            "texture": texture_similarity(a["texture"], b["texture"], stats),
            "edges": edge_similarity(a["edges"], b["edges"])}


def oracle_score(similarities: dict[str, float], weights: dict[str, float]) -> float:
    return sum(w * similarities[name] for name, w in weights.items()) / sum(weights.values())


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))
