"""Similarity of two images from their descriptors, and the positive/negative pair set.

Each descriptor similarity is in [0, 1], symmetric, and exactly 1 for identical
descriptors. The weighted score combines them with user weights. Pairs are
(original, its variant) = positive and (original, variant of another painting) = negative;
the per-descriptor ROC AUC of positives vs negatives tells which descriptor actually
separates derived from non-derived images.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from artsim.config import ScoreWeights
from artsim.descriptors import DESCRIPTOR_NAMES, Descriptors

log = logging.getLogger(__name__)

PAIR_COLUMNS = [
    "pair_id", "original_id", "generated_id", "positive", "strength", "split",
    *DESCRIPTOR_NAMES, "score",
]
SPLITS = ("train", "val", "test")


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


# --- pairs ---------------------------------------------------------------------------------

def pair_id(original_id: str, generated_id: str, occurrence: int = 0) -> str:
    """Stable id of a pair; `occurrence` disambiguates a negative drawn twice from a tiny pool."""
    key = f"{original_id}|{generated_id}|{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def build_pairs(originals: pd.DataFrame, generated: pd.DataFrame, negatives: int, seed: int) -> pd.DataFrame:
    """Positive and negative pairs (columns original_id, generated_id, positive, strength, split, pair_id).

    originals: id, split. generated: id, original_id, strength [, style_source_id].
    Each original with k variants gets k positives and k*negatives negatives: variants of
    other paintings, drawn from the same split when possible (so that no pair of the train
    split shows a val/test image) and excluding variants whose style came from the original
    itself (those are partly derived from it).
    """
    split_of = dict(zip(originals["id"].astype(str), originals["split"].astype(str)))
    variants = _known_variants(generated, split_of)
    positives = _positive_pairs(variants)
    negative_rows = _negative_pairs(variants, negatives, np.random.default_rng(seed))
    pairs = pd.concat([positives, negative_rows], ignore_index=True) if len(negative_rows) else positives
    pairs["pair_id"] = _pair_ids(pairs)
    return pairs


def _known_variants(generated: pd.DataFrame, split_of: Mapping[str, str]) -> pd.DataFrame:
    variants = generated.assign(id=generated["id"].astype(str), original_id=generated["original_id"].astype(str))
    if "style_source_id" not in variants:
        variants = variants.assign(style_source_id="")
    unknown = ~variants["original_id"].isin(list(split_of))
    if unknown.any():
        log.warning("%d variants refer to an unknown original and are left out", int(unknown.sum()))
    variants = variants.loc[~unknown].assign(split=lambda d: d["original_id"].map(split_of))
    return variants.sort_values(["original_id", "id"]).reset_index(drop=True)


def _positive_pairs(variants: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "original_id": variants["original_id"],
        "generated_id": variants["id"],
        "positive": True,
        "strength": variants["strength"].astype(float),
        "split": variants["split"],
    })


def _negative_pairs(variants: pd.DataFrame, negatives: int, rng: np.random.Generator) -> pd.DataFrame:
    sampler = _NegativeSampler(variants, rng)
    chosen, original_ids, splits = [], [], []
    for original_id, own in sorted(sampler.own.items()):
        split = sampler.splits[own[0]]
        picks = sampler.draw(original_id, split, len(own) * negatives)
        chosen.append(picks)
        original_ids += [original_id] * len(picks)
        splits += [split] * len(picks)
    sampler.report()
    picked = variants.iloc[np.concatenate(chosen)] if chosen else variants.iloc[:0]
    return pd.DataFrame({
        "original_id": original_ids,
        "generated_id": picked["id"].to_list(),
        "positive": False,
        "strength": picked["strength"].astype(float).to_numpy(),
        "split": splits,
    })


class _NegativeSampler:
    """Draws negatives for one original at a time in O(draws), so that all of WikiArt stays fast.

    Candidates, in order of preference (the first non-empty one is used):
    same split and unrelated; same split; any split and unrelated; any split. "Unrelated"
    also excludes variants whose style was taken from the original (partly derived from it);
    a negative is never a variant of the original itself. Staying in the split matters most:
    a train pair must not show a val/test painting.
    """

    def __init__(self, variants: pd.DataFrame, rng: np.random.Generator) -> None:
        self.rng = rng
        self.splits = variants["split"].astype(str).to_numpy(dtype=object)
        self.by_split = {str(k): v for k, v in variants.groupby("split").indices.items()}
        self.everything = np.arange(len(variants))
        self.own = {str(k): v for k, v in variants.groupby("original_id").indices.items()}
        self.styled_after = {str(k): v for k, v in variants.groupby("style_source_id").indices.items()}
        self.fallbacks = 0
        self.missing = 0

    def draw(self, original_id: str, split: str, count: int) -> np.ndarray:
        own = self.own[original_id]
        related = np.union1d(own, self.styled_after.get(original_id, own))
        tiers = ((split, related), (split, own), (None, related), (None, own))
        for tier, (pool_split, excluded) in enumerate(tiers):
            pool = self.everything if pool_split is None else self.by_split[pool_split]
            in_pool = excluded if pool_split is None else excluded[self.splits[excluded] == pool_split]
            if len(pool) > len(in_pool):
                self.fallbacks += tier > 0
                return _draw_excluding(pool, in_pool, count, self.rng)
        self.missing += 1
        return np.empty(0, dtype=int)

    def report(self) -> None:
        if self.fallbacks:
            log.warning("%d originals drew negatives outside their split or restyled after them (too few candidates)", self.fallbacks)
        if self.missing:
            log.warning("%d originals have no other painting's variant to pair as negative", self.missing)


def _draw_excluding(pool: np.ndarray, excluded: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` positions from `pool` minus `excluded` (all in pool), distinct unless the pool is too small."""
    eligible_size = len(pool) - len(excluded)
    if count <= eligible_size:
        # Over-draw by the number excluded, then drop those: uniform over eligible, without
        # materialising the eligible set (the pool can hold a whole split of WikiArt).
        picks = pool[rng.choice(len(pool), size=min(len(pool), count + len(excluded)), replace=False)]
        excluded_set = set(excluded.tolist())
        return np.array([p for p in picks.tolist() if p not in excluded_set][:count], dtype=int)
    eligible = pool[~np.isin(pool, excluded)]
    return eligible[_draw(len(eligible), count, rng)]


def _draw(pool_size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices into the pool, each used as evenly as possible (repeats only if the pool is small)."""
    full_rounds, rest = divmod(count, pool_size)
    draws = [rng.permutation(pool_size) for _ in range(full_rounds)]
    draws.append(rng.choice(pool_size, size=rest, replace=False))
    return np.concatenate(draws).astype(int)


def _pair_ids(pairs: pd.DataFrame) -> list[str]:
    occurrence = pairs.groupby(["original_id", "generated_id"]).cumcount()
    return [pair_id(o, g, int(k)) for o, g, k in zip(pairs["original_id"], pairs["generated_id"], occurrence)]


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
    """Build the pairs of the described images and score them (texture stats from train originals)."""
    originals = described_only(originals, descriptors, "originals")
    generated = described_only(generated, descriptors, "variants")
    stats = train_texture_stats(descriptors, originals)
    pairs = build_pairs(originals, generated, negatives, seed)
    return score_pairs(pairs, descriptors, stats, weights)


def score_pairs(
    pairs: pd.DataFrame, descriptors: Mapping[str, Descriptors], stats: TextureStats, weights: ScoreWeights
) -> pd.DataFrame:
    """Add the per-descriptor similarities and the weighted score to each pair."""
    sims = [
        descriptor_similarities(descriptors[o], descriptors[g], stats)
        for o, g in zip(pairs["original_id"], pairs["generated_id"])
    ]
    scored = pairs.copy()
    for name in DESCRIPTOR_NAMES:
        scored[name] = [s[name] for s in sims]
    scored["score"] = [weighted_score(s, weights) for s in sims]
    return scored[PAIR_COLUMNS]


# --- report --------------------------------------------------------------------------------

def score_report(scored: pd.DataFrame) -> dict:
    """Counts, mean scores, per-descriptor ROC AUC (positives vs negatives) and means by strength."""
    return {
        "pairs": _counts(scored),
        "mean_score": _mean_scores(scored),
        "auc": _aucs(scored),
        "by_split": {
            split: {"pairs": _counts(part), "mean_score": _mean_scores(part), "auc": _aucs(part)}
            for split, part in _by_split(scored)
        },
        "by_strength": _means_by_strength(scored),
    }


def _by_split(scored: pd.DataFrame):
    for split in SPLITS:
        yield split, scored[scored["split"] == split]


def _counts(scored: pd.DataFrame) -> dict[str, int]:
    positives = int(scored["positive"].sum())
    return {"total": len(scored), "positives": positives, "negatives": len(scored) - positives}


def _mean_scores(scored: pd.DataFrame) -> dict[str, float | None]:
    return {
        "positive": _mean(scored.loc[scored["positive"], "score"]),
        "negative": _mean(scored.loc[~scored["positive"], "score"]),
    }


def _aucs(scored: pd.DataFrame) -> dict[str, float | None]:
    """ROC AUC of each similarity as a detector of 'derived from this painting'; None if one class is missing."""
    labels = scored["positive"].astype(bool)
    if labels.nunique() < 2:
        return {name: None for name in (*DESCRIPTOR_NAMES, "score")}
    return {name: float(roc_auc_score(labels, scored[name])) for name in (*DESCRIPTOR_NAMES, "score")}


def _means_by_strength(scored: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    report = {}
    for strength, part in scored.groupby("strength", sort=True):
        report[f"{strength:g}"] = {
            kind: {name: _mean(part.loc[part["positive"] == is_pos, name]) for name in (*DESCRIPTOR_NAMES, "score")}
            for kind, is_pos in (("positive", True), ("negative", False))
        }
    return report


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None
