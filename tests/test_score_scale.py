"""score_pairs at scale: vectorised over pairs, equal to the per-pair reference."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from artsim.score import similarity as scoring
from artsim.params import ScoreWeights
from artsim.describe.table import Descriptors
from artsim.score.similarity import PAIR_COLUMNS, TextureStats, pair_columns, descriptor_similarities, score_pairs, weighted_score

NAMES = ("color", "texture", "edges")
WEIGHTS = ScoreWeights()


def descriptors_with_degenerate_cases(count: int, seed: int = 0) -> dict[str, Descriptors]:
    """Random descriptors plus the conventions' edge cases: empty histograms and edgeless grids."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(count):
        color = rng.random(64) * (rng.random(64) < 0.5)
        edges = rng.random(16) * (rng.random(16) < 0.3)
        if k % 7 == 0:
            color, edges = np.zeros(64), np.zeros(16)
        out[f"img{k}"] = Descriptors(color / max(color.sum(), 1.0), rng.normal(0, 3, 13), edges)
    return out


def random_pairs(ids: list[str], count: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first, second = rng.choice(ids, count), rng.choice(ids, count)
    return pd.DataFrame({
        "pair_id": [f"p{k}" for k in range(count)], "original_id": first, "generated_id": second,
        "positive": rng.random(count) < 0.5, "strength": 0.5, "split": "train",
    })


def test_vectorised_scores_equal_the_per_pair_reference(monkeypatch):
    descs = descriptors_with_degenerate_cases(40)
    pairs = random_pairs(list(descs), 3000)
    stats = TextureStats(mean=np.zeros(13), std=np.linspace(0.5, 3.0, 13))
    # A small block size so that the pairs span several blocks, as hundreds of thousands do.
    monkeypatch.setattr(scoring, "paired_similarities", functools.partial(scoring.paired_similarities, block=256))
    scored = score_pairs(pairs, descs, stats, WEIGHTS)
    assert list(scored.columns) == pair_columns(NAMES)
    for k, (o, g) in enumerate(zip(pairs["original_id"], pairs["generated_id"])):
        expected = descriptor_similarities(descs[o], descs[g], stats)
        for name in NAMES:
            assert abs(scored[name].iloc[k] - expected[name]) <= 1e-12, (name, o, g)
        assert abs(scored["score"].iloc[k] - weighted_score(expected, WEIGHTS)) <= 1e-12


def test_scoring_makes_no_python_call_per_pair(monkeypatch):
    descs = descriptors_with_degenerate_cases(20)
    pairs = random_pairs(list(descs), 500)

    def per_pair(*args, **kwargs):
        raise AssertionError("score_pairs must not compute pair by pair")

    monkeypatch.setattr(scoring, "descriptor_similarities", per_pair)
    monkeypatch.setattr(scoring, "weighted_score", per_pair)
    scored = score_pairs(pairs, descs, TextureStats(mean=np.zeros(13), std=np.ones(13)), WEIGHTS)
    assert len(scored) == 500 and scored["score"].between(0, 1).all()


def test_no_pairs_give_an_empty_table():
    empty = random_pairs(["a"], 0)
    scored = score_pairs(empty, {}, TextureStats(mean=np.zeros(13), std=np.ones(13)), WEIGHTS)
    assert list(scored.columns) == PAIR_COLUMNS and scored.empty
