"""Similarity of two images from their descriptors, and the scored pair set.

Each descriptor similarity is in [0, 1], symmetric, and exactly 1 for identical
descriptors (the descriptors and their kernels: artsim.describe.registry); one pair, a batch of
pairs and every image against every other all go through the same kernels. The weighted score
combines them with `score.weights`, or with weights fitted on the train pairs
(artsim.score.fit). Pairs (built in `pairs`) are (original, its variant) = positive and
(original, variant of another painting) = negative; score_report and study say how well
each descriptor separates them and finds a variant's source.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from artsim.describe.kernels import TextureStats, unit_array
from artsim.describe.registry import DESCRIPTORS, descriptor
from artsim.describe.table import Descriptors, DescriptorSet
from artsim.params import DESCRIPTOR_NAMES, ScoreWeights
from artsim.score.fit import fit_weights
from artsim.score.pairs import build_pairs, require_learnable_pairs

log = logging.getLogger(__name__)

PAIR_KEYS = ["pair_id", "original_id", "generated_id", "positive", "strength", "split"]
# pairs.parquet as the pipeline writes it: every registered descriptor's similarity, then the score.
PAIR_COLUMNS = [*PAIR_KEYS, *DESCRIPTOR_NAMES, "score"]

def pair_columns(names: Sequence[str]) -> list[str]:
    """The columns of pairs scored on these descriptors."""
    return [*PAIR_KEYS, *names, "score"]


# --- two images (the saved scorer and the API): the kernels of the pair set, on one pair ---------

def shared_names(a: Descriptors, b: Descriptors) -> tuple[str, ...]:
    """The descriptors both images hold, in registry order."""
    return tuple(name for name in DESCRIPTOR_NAMES if name in a.vectors and name in b.vectors)


def descriptor_similarities(a: Descriptors, b: Descriptors, stats: TextureStats) -> dict[str, float]:
    """Each descriptor's similarity of two images (the descriptors both hold): the very kernels
    pairs.parquet is scored with, on a one-pair batch."""
    return {name: float(descriptor(name).paired(a[name][None, :], b[name][None, :], stats)[0])
            for name in shared_names(a, b)}


def weighted_score(similarities: Mapping[str, float], weights: ScoreWeights | Mapping[str, float]) -> float:
    """Σ w·s / Σ w over the weighted descriptors, for one pair (`combine` on scalars)."""
    return float(combine(similarities, weights))


def _weights(weights: ScoreWeights | Mapping[str, float]) -> tuple[dict[str, float], float]:
    """The positive weights and their sum (a zero weight needs no similarity)."""
    weight_map = weights.as_dict() if isinstance(weights, ScoreWeights) else dict(weights)
    total = sum(weight_map.values())
    if total <= 0:
        raise ValueError("weights must sum to a positive value")
    return {name: w for name, w in weight_map.items() if w > 0}, total


def similarity(
    a: Descriptors, b: Descriptors, stats: TextureStats, weights: ScoreWeights | Mapping[str, float]
) -> float:
    """The weighted similarity score of two images."""
    return weighted_score(descriptor_similarities(a, b, stats), weights)


def combine(similarities: Mapping[str, np.ndarray], weights: ScoreWeights | Mapping[str, float]) -> np.ndarray:
    """The weighted score of arrays of similarities (any shape)."""
    weight_map, total = _weights(weights)
    missing = sorted(set(weight_map) - set(similarities))
    if missing:
        raise ValueError(f"weighted descriptors {missing} were not described; described: {sorted(similarities)}")
    return unit_array(sum(w * similarities[name] for name, w in weight_map.items()) / total)


# --- every image of one set against every image of another -------------------------------

def cross_similarities(a: DescriptorSet, b: DescriptorSet, stats: TextureStats,
                       names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Each descriptor's similarity of every (row of a, row of b), as (len(a), len(b)) arrays."""
    names = [n for n in a.names if n in b.names] if names is None else names
    return {name: DESCRIPTORS[name].cross(a[name], b[name], stats) for name in names}


def cross_scores(
    a: DescriptorSet, b: DescriptorSet, stats: TextureStats, weights: ScoreWeights | Mapping[str, float]
) -> np.ndarray:
    """The weighted score of every (row of a, row of b): an (len(a), len(b)) array."""
    weight_map, _ = _weights(weights)
    return combine(cross_similarities(a, b, stats, list(weight_map)), weights)


# --- texture statistics --------------------------------------------------------------------

def train_texture_stats(descriptors: DescriptorSet, originals: pd.DataFrame) -> TextureStats:
    """Texture stats from the TRAIN-split originals only, so val/test images never shape the metric."""
    train_ids = _described_ids(originals.loc[originals["split"] == "train", "id"], descriptors)
    if not train_ids:
        # Only possible on toy data; still better than failing the stage.
        log.warning("no described train original: texture stats fall back to all described originals")
        train_ids = _described_ids(originals["id"], descriptors)
    if not train_ids:
        raise ValueError("no described original to compute texture statistics from")
    return TextureStats.fit(descriptors["texture"][descriptors.positions(sorted(train_ids))])


def _described_ids(ids: pd.Series, descriptors: DescriptorSet) -> list[str]:
    ids = ids.astype(str)
    return list(ids[descriptors.described(ids)])


# --- scoring -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scored:
    """The scored pairs, the weights their score used (given, or fitted), and the texture stats."""

    pairs: pd.DataFrame
    weights: ScoreWeights
    stats: TextureStats
    fitted: bool = False


def described_only(manifest: pd.DataFrame, descriptors: DescriptorSet, what: str) -> pd.DataFrame:
    """Drop the images describe skipped: they cannot be scored, nor drawn as negatives."""
    known = descriptors.described(manifest["id"].astype(str))
    if not known.all():
        log.warning(
            "%d %s have no descriptors (see describe's skipped.csv) and are left out", int((~known).sum()), what
        )
    return manifest.loc[known].reset_index(drop=True)


def score_dataset(
    originals: pd.DataFrame,
    generated: pd.DataFrame,
    descriptors: DescriptorSet,
    weights: ScoreWeights | Literal["fit"],
    negatives: int,
    seed: int,
) -> Scored:
    """Build the pairs of the described images and score them (texture stats from train originals).

    weights="fit": learned on the train pairs' similarities (artsim.score.fit), then applied to all.
    NotEnoughPairs (before any scoring) when train has no positive pair or test no pair.
    """
    originals = described_only(originals, descriptors, "originals")
    generated = described_only(generated, descriptors, "variants")
    pairs = build_pairs(originals, generated, negatives, seed)
    require_learnable_pairs(pairs, originals)
    stats = train_texture_stats(descriptors, originals)
    similarities = pair_similarities(pairs, descriptors, stats)
    if weights == "fit":
        train = similarities["split"].to_numpy() == "train"
        names = [n for n in DESCRIPTOR_NAMES if n in similarities.columns]
        used = ScoreWeights(fit_weights(similarities.loc[train, names], similarities.loc[train, "positive"]))
        log.info("fitted weights: %s", {n: round(w, 4) for n, w in used.as_dict().items() if w > 0})
    else:
        used = weights
    return Scored(with_score(similarities, used), used, stats, fitted=weights == "fit")


def score_pairs(
    pairs: pd.DataFrame, descriptors: DescriptorSet, stats: TextureStats, weights: ScoreWeights
) -> pd.DataFrame:
    """Add every descriptor's similarity and the weighted score to each pair (vectorised over pairs)."""
    return with_score(pair_similarities(pairs, descriptors, stats), weights)


def with_score(similarities: pd.DataFrame, weights: ScoreWeights | Mapping[str, float]) -> pd.DataFrame:
    names = [n for n in DESCRIPTOR_NAMES if n in similarities.columns]
    scored = similarities.copy()
    scored["score"] = combine({n: scored[n].to_numpy(dtype=np.float64) for n in names}, weights)
    return scored[pair_columns(names)]


def pair_similarities(pairs: pd.DataFrame, descriptors: DescriptorSet, stats: TextureStats) -> pd.DataFrame:
    """The pairs with one column per descriptor the images hold: its similarity (no score yet)."""
    # A pair is two row numbers of the descriptors' matrices: no image's vectors are copied whole.
    ids = pd.concat([pairs["original_id"], pairs["generated_id"]], ignore_index=True).astype(str)
    rows = descriptors.positions(ids)
    if len(rows):
        sims = paired_similarities(descriptors, rows[:len(pairs)], rows[len(pairs):], stats)
    else:
        sims = {name: np.empty(0) for name in DESCRIPTOR_NAMES}
    out = pairs[PAIR_KEYS].copy()
    for name, values in sims.items():
        out[name] = values
    return out


def paired_similarities(images: DescriptorSet, first: np.ndarray, second: np.ndarray, stats: TextureStats,
                        block: int = 1 << 14) -> dict[str, np.ndarray]:
    """Each descriptor's similarity of the pairs (images[first[k]], images[second[k]]), as arrays over k.

    Pairs go in blocks so that the gathered rows (block x vector length) stay small however
    many pairs there are; within a block everything is array arithmetic, no loop per pair.
    """
    out = {name: np.empty(len(first)) for name in images.names}
    for start in range(0, len(first), block):
        a, b = first[start:start + block], second[start:start + block]
        for name in images.names:
            out[name][start:start + block] = DESCRIPTORS[name].paired(images[name][a], images[name][b], stats)
    return out
