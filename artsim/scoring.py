"""Similarity of two images from their descriptors, and the scored pair set.

Each descriptor similarity is in [0, 1], symmetric, and exactly 1 for identical
descriptors. The weighted score combines them with user weights. Pairs (built in `pairs`)
are (original, its variant) = positive and (original, variant of another painting) =
negative; score_report says how well each descriptor separates them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from tqdm import tqdm

from artsim.config import ScoreWeights
from artsim.descriptors import DESCRIPTOR_NAMES, Descriptors
from artsim.pairs import build_pairs, require_learnable_pairs

log = logging.getLogger(__name__)

PAIR_COLUMNS = [
    "pair_id", "original_id", "generated_id", "positive", "strength", "split",
    *DESCRIPTOR_NAMES, "score",
]


@dataclass(frozen=True)
class TextureStats:
    """Per-feature mean and std used to z-normalise Haralick vectors (features differ in scale by orders of magnitude)."""

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


# --- similarities of two descriptor vectors -------------------------------------------------

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


def _unit(value: float) -> float:
    # Guards against float round-off only; the formulas are already bounded.
    return min(1.0, max(0.0, value))


def descriptor_similarities(a: Descriptors, b: Descriptors, stats: TextureStats) -> dict[str, float]:
    return {
        "color": color_similarity(a.color, b.color),
        "texture": texture_similarity(a.texture, b.texture, stats),
        "edges": edge_similarity(a.edges, b.edges),
    }


def weighted_score(similarities: Mapping[str, float], weights: ScoreWeights | Mapping[str, float]) -> float:
    """Σ w·s / Σ w over the weighted descriptors."""
    weight_map, total = _weights(weights)
    return _unit(sum(w * similarities[name] for name, w in weight_map.items()) / total)


def _weights(weights: ScoreWeights | Mapping[str, float]) -> tuple[dict[str, float], float]:
    weight_map = weights.as_dict() if isinstance(weights, ScoreWeights) else dict(weights)
    total = sum(weight_map.values())
    if total <= 0:
        raise ValueError("weights must sum to a positive value")
    return weight_map, total


def similarity(
    a: Descriptors, b: Descriptors, stats: TextureStats, weights: ScoreWeights | Mapping[str, float]
) -> float:
    """The weighted similarity score of two images."""
    return weighted_score(descriptor_similarities(a, b, stats), weights)


# --- every image of one set against every image of another -------------------------------

@dataclass(frozen=True)
class DescriptorSet:
    """The descriptors of n images stacked row-wise: color (n, C), texture (n, T), edges (n, E)."""

    color: np.ndarray
    texture: np.ndarray
    edges: np.ndarray

    @classmethod
    def stack(cls, descriptors: Sequence[Descriptors]) -> "DescriptorSet":
        if not descriptors:
            raise ValueError("DescriptorSet.stack needs at least one image")
        return cls(*(np.stack([getattr(d, name) for d in descriptors]) for name in DESCRIPTOR_NAMES))

    def __len__(self) -> int:
        return len(self.color)

    def rows(self, start: int, stop: int) -> "DescriptorSet":
        return DescriptorSet(self.color[start:stop], self.texture[start:stop], self.edges[start:stop])


def cross_similarities(a: DescriptorSet, b: DescriptorSet, stats: TextureStats) -> dict[str, np.ndarray]:
    """descriptor_similarities of every (row of a, row of b), each as an (len(a), len(b)) array.

    Written with L1/L2 distances (sum of min = (Σa + Σb - L1) / 2, sum of max = (Σa + Σb + L1) / 2)
    so that no (len(a), len(b), vector length) intermediate is ever built.
    """
    color_mass = np.maximum(a.color.sum(1)[:, None], b.color.sum(1)[None, :])
    color_sums, color_l1 = _sums(a.color, b.color), cdist(a.color, b.color, "cityblock")
    edge_sums, edge_l1 = _sums(a.edges, b.edges), cdist(a.edges, b.edges, "cityblock")
    # "euclidean" in scipy sums the squared differences directly (no |x|² + |y|² - 2xy cancellation).
    texture_rms = cdist(a.texture / stats.std, b.texture / stats.std, "euclidean") / np.sqrt(a.texture.shape[1])
    return {
        # Same conventions as the per-pair functions: two empty histograms / edgeless images are identical.
        "color": _unit_array(_ratio_or_one((color_sums - color_l1) / 2, color_mass)),
        "texture": _unit_array(np.exp(-texture_rms)),
        "edges": _unit_array(_ratio_or_one((edge_sums - edge_l1) / 2, (edge_sums + edge_l1) / 2)),
    }


def cross_scores(a: DescriptorSet, b: DescriptorSet, stats: TextureStats, weights: ScoreWeights | Mapping[str, float]) -> np.ndarray:
    """The weighted score of every (row of a, row of b): an (len(a), len(b)) array."""
    weight_map, total = _weights(weights)
    sims = cross_similarities(a, b, stats)
    return _unit_array(sum(w * sims[name] for name, w in weight_map.items()) / total)


def cross_score_blocks(
    a: DescriptorSet,
    b: DescriptorSet,
    stats: TextureStats,
    weights: ScoreWeights | Mapping[str, float],
    max_pairs: int = 1 << 20,
) -> Iterator[tuple[int, np.ndarray]]:
    """cross_scores in blocks of whole rows of a, (first row, block), each about `max_pairs` scores at most."""
    rows = max(1, max_pairs // max(1, len(b)))
    for start in tqdm(range(0, len(a), rows), desc="descriptor scores", unit="block", disable=None):
        yield start, cross_scores(a.rows(start, start + rows), b, stats, weights)


def _sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σa + Σb of every (row of a, row of b)."""
    return a.sum(1)[:, None] + b.sum(1)[None, :]


def _ratio_or_one(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    positive = denominator > 0
    return np.divide(numerator, denominator, out=np.ones_like(numerator), where=positive)


def _unit_array(values: np.ndarray) -> np.ndarray:
    # Guards against float round-off only, as _unit does.
    return np.clip(values, 0.0, 1.0)


# --- texture statistics --------------------------------------------------------------------

def train_texture_stats(descriptors: Mapping[str, Descriptors], originals: pd.DataFrame) -> TextureStats:
    """Texture stats from the TRAIN-split originals only, so val/test images never shape the metric."""
    train_ids = [i for i in originals.loc[originals["split"] == "train", "id"].astype(str) if i in descriptors]
    if not train_ids:
        # Only possible on toy data; still better than failing the stage.
        log.warning("no described train original: texture stats fall back to all described originals")
        train_ids = [i for i in originals["id"].astype(str) if i in descriptors]
    if not train_ids:
        raise ValueError("no described original to compute texture statistics from")
    return TextureStats.fit(np.stack([descriptors[i].texture for i in sorted(train_ids)]))


# --- scoring -------------------------------------------------------------------------------

def described_only(manifest: pd.DataFrame, descriptors: Mapping[str, Descriptors], what: str) -> pd.DataFrame:
    """Drop the images describe skipped: they cannot be scored, nor drawn as negatives."""
    known = manifest["id"].astype(str).isin(list(descriptors))
    if not known.all():
        log.warning("%d %s have no descriptors (see describe's skipped.csv) and are left out", int((~known).sum()), what)
    return manifest.loc[known].reset_index(drop=True)


def score_dataset(
    originals: pd.DataFrame,
    generated: pd.DataFrame,
    descriptors: Mapping[str, Descriptors],
    weights: ScoreWeights,
    negatives: int,
    seed: int,
) -> pd.DataFrame:
    """Build the pairs of the described images and score them (texture stats from train originals).

    NotEnoughPairs (before any scoring) when train has no positive pair or test no pair.
    """
    originals = described_only(originals, descriptors, "originals")
    generated = described_only(generated, descriptors, "variants")
    pairs = build_pairs(originals, generated, negatives, seed)
    require_learnable_pairs(pairs, originals)
    stats = train_texture_stats(descriptors, originals)
    return score_pairs(pairs, descriptors, stats, weights)


def score_pairs(
    pairs: pd.DataFrame, descriptors: Mapping[str, Descriptors], stats: TextureStats, weights: ScoreWeights
) -> pd.DataFrame:
    """Add the per-descriptor similarities and the weighted score to each pair (vectorised over pairs)."""
    # Each image's descriptors are stacked once; a pair is then two row numbers.
    rows, ids = pd.factorize(pd.concat([pairs["original_id"], pairs["generated_id"]], ignore_index=True).astype(str))
    first, second = rows[:len(pairs)], rows[len(pairs):]
    if len(ids):
        sims = paired_similarities(DescriptorSet.stack([descriptors[i] for i in ids]), first, second, stats)
    else:
        sims = {name: np.empty(0) for name in DESCRIPTOR_NAMES}
    weight_map, total = _weights(weights)
    scored = pairs.copy()
    for name in DESCRIPTOR_NAMES:
        scored[name] = sims[name]
    scored["score"] = _unit_array(sum(w * sims[name] for name, w in weight_map.items()) / total)
    return scored[PAIR_COLUMNS]


def paired_similarities(images: DescriptorSet, first: np.ndarray, second: np.ndarray, stats: TextureStats,
                        block: int = 1 << 14) -> dict[str, np.ndarray]:
    """descriptor_similarities of the pairs (images[first[k]], images[second[k]]), as arrays over k.

    Pairs go in blocks so that the gathered rows (block x vector length) stay small however
    many pairs there are; within a block everything is array arithmetic, no loop per pair.
    """
    out = {name: np.empty(len(first)) for name in DESCRIPTOR_NAMES}
    for start in range(0, len(first), block):
        a, b = first[start:start + block], second[start:start + block]
        for name, values in _paired_block(images, a, b, stats).items():
            out[name][start:start + block] = values
    return out


def _paired_block(images: DescriptorSet, a: np.ndarray, b: np.ndarray, stats: TextureStats) -> dict[str, np.ndarray]:
    color_a, color_b = images.color[a], images.color[b]
    color_mass = np.maximum(color_a.sum(1), color_b.sum(1))
    z_diff = (images.texture[a] - images.texture[b]) / stats.std
    edges_a, edges_b = images.edges[a], images.edges[b]
    return {
        # Same conventions as the per-pair functions: two empty histograms / edgeless images are identical.
        "color": _unit_array(_ratio_or_one(np.minimum(color_a, color_b).sum(1), color_mass)),
        "texture": _unit_array(np.exp(-np.sqrt(np.mean(z_diff**2, axis=1)))),
        "edges": _unit_array(_ratio_or_one(np.minimum(edges_a, edges_b).sum(1), np.maximum(edges_a, edges_b).sum(1))),
    }
