"""score_pairs at scale: time and peak memory of scoring `--pairs` pairs (default 500k).

Synthetic descriptors at the default describe params (colour 16x4x4 = 256 bins, 13 Haralick
features, 8x8 edge grid) for `--images` images, pairs drawn at random among them. For
context, the per-pair Python reference (descriptor_similarities + weighted_score, what
score_pairs did before it was vectorised) is timed on `--reference-pairs` of them and its
rate extrapolated. Peak RSS is this process's (ru_maxrss), measured in a fresh process.

Usage: nice .venv/bin/python bench/score.py [--pairs 500000] [--images 50000] [--reference-pairs 20000]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from artsim.describe.table import Descriptors  # noqa: E402
from artsim.params import CLASSIC_SCORE_WEIGHTS, ScoreWeights  # noqa: E402
from artsim.score.similarity import (  # noqa: E402
    DescriptorSet,
    TextureStats,
    descriptor_similarities,
    score_pairs,
    weighted_score,
)


def synthetic_descriptors(count: int, seed: int = 0) -> dict[str, Descriptors]:
    rng = np.random.default_rng(seed)
    color = rng.random((count, 256)) * (rng.random((count, 256)) < 0.4)
    color /= np.maximum(color.sum(1, keepdims=True), 1e-12)
    texture, edges = rng.normal(0, 1, (count, 13)), rng.random((count, 64)) * 0.2
    return {f"img{k:07d}": Descriptors(color[k], texture[k], edges[k]) for k in range(count)}


def synthetic_pairs(ids: list[str], count: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pair_id": np.arange(count).astype(str),
            "original_id": rng.choice(ids, count),
            "generated_id": rng.choice(ids, count),
            "positive": rng.random(count) < 0.5,
            "strength": 0.5,
            "split": "train",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=500_000)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--reference-pairs", type=int, default=20_000)
    args = parser.parse_args()

    descriptors = synthetic_descriptors(args.images)
    pairs = synthetic_pairs(list(descriptors), args.pairs)
    stats, weights = TextureStats(mean=np.zeros(13), std=np.ones(13)), ScoreWeights(CLASSIC_SCORE_WEIGHTS)
    described = DescriptorSet.of(descriptors)  # as the stage holds them: one matrix per descriptor
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    scored = score_pairs(pairs, described, stats, weights)
    vectorised_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    reference = pairs.head(args.reference_pairs)
    started = time.perf_counter()
    for o, g in zip(reference["original_id"], reference["generated_id"]):
        weighted_score(descriptor_similarities(descriptors[o], descriptors[g], stats), weights)
    reference_s = time.perf_counter() - started

    print(json.dumps({
        "pairs": len(scored), "images": args.images,
        "vectorised_s": round(vectorised_s, 2), "vectorised_pairs_per_s": round(len(scored) / vectorised_s),
        "peak_rss_mb": round(peak_mb), "rss_before_scoring_mb": round(rss_before),
        "per_pair_reference_pairs_per_s": round(len(reference) / reference_s),
        "per_pair_reference_extrapolated_s": round(args.pairs * reference_s / len(reference), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
