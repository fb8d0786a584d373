"""score_pairs at scale: vectorised over pairs, equal to the per-pair oracle; and the saved scorer
(what the API uses) scores a pair exactly as pairs.parquet does."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

from artsim.describe.table import Descriptors, DescriptorSet
from artsim.params import CLASSIC_SCORE_WEIGHTS, DescribeParams, ScoreWeights
from artsim.score import similarity as scoring
from artsim.score.scorer import DescriptorScorer
from artsim.score.similarity import PAIR_COLUMNS, TextureStats, pair_columns, score_pairs
from tests.support.similarity_oracle import oracle_score, oracle_similarities

NAMES = ("color", "texture", "edges")
WEIGHTS = ScoreWeights(CLASSIC_SCORE_WEIGHTS)  # the three descriptors these tests describe


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


def test_vectorised_scores_equal_the_per_pair_oracle(monkeypatch):
    descs = descriptors_with_degenerate_cases(40)
    pairs = random_pairs(list(descs), 3000)
    stats = TextureStats(mean=np.zeros(13), std=np.linspace(0.5, 3.0, 13))
    # A small block size so that the pairs span several blocks, as hundreds of thousands do.
    monkeypatch.setattr(scoring, "paired_similarities", functools.partial(scoring.paired_similarities, block=256))
    scored = score_pairs(pairs, DescriptorSet.of(descs), stats, WEIGHTS)
    assert list(scored.columns) == pair_columns(NAMES)
    for k, (o, g) in enumerate(zip(pairs["original_id"], pairs["generated_id"])):
        expected = oracle_similarities(descs[o], descs[g], stats)
        for name in NAMES:
            assert abs(scored[name].iloc[k] - expected[name]) <= 1e-12, (name, o, g)
        assert abs(scored["score"].iloc[k] - oracle_score(expected, WEIGHTS.as_dict())) <= 1e-12


def test_the_saved_scorer_scores_a_pair_exactly_as_pairs_parquet():
    """One implementation: the API's descriptor score (DescriptorScorer) goes through the kernels
    pairs.parquet is scored with, so the two agree to the last bit, not merely closely."""
    descs = descriptors_with_degenerate_cases(40, seed=3)
    pairs = random_pairs(list(descs), 400, seed=4)
    stats = TextureStats(mean=np.zeros(13), std=np.linspace(0.5, 3.0, 13))
    weights = ScoreWeights(color=0.35, texture=0.4, edges=0.25)
    scored = score_pairs(pairs, DescriptorSet.of(descs), stats, weights)
    scorer = DescriptorScorer(DescribeParams(), weights, stats)
    for k, (o, g) in enumerate(zip(pairs["original_id"], pairs["generated_id"])):
        sims = scorer.similarities(descs[o], descs[g])
        assert {name: scored[name].iloc[k] for name in NAMES} == sims, (o, g)
        assert scorer.score(sims) == scored["score"].iloc[k], (o, g)


def test_scoring_makes_no_python_call_per_pair(monkeypatch):
    descs = descriptors_with_degenerate_cases(20)
    pairs = random_pairs(list(descs), 500)

    def per_pair(*args, **kwargs):
        raise AssertionError("score_pairs must not compute pair by pair")

    monkeypatch.setattr(scoring, "descriptor_similarities", per_pair)
    monkeypatch.setattr(scoring, "weighted_score", per_pair)
    scored = score_pairs(pairs, DescriptorSet.of(descs), TextureStats(mean=np.zeros(13), std=np.ones(13)), WEIGHTS)
    assert len(scored) == 500 and scored["score"].between(0, 1).all()


def test_no_pairs_give_an_empty_table():
    empty = random_pairs(["a"], 0)
    scored = score_pairs(empty, DescriptorSet.of({}), TextureStats(mean=np.zeros(13), std=np.ones(13)), WEIGHTS)
    assert list(scored.columns) == PAIR_COLUMNS and scored.empty


def test_the_saved_scorer_has_no_similarity_of_its_own(monkeypatch):
    """Changing a descriptor's kernel in the registry changes the API's similarity too: there is
    no second, per-pair copy of the formulas for it to fall back on."""
    from artsim.describe import registry

    stats = TextureStats(mean=np.zeros(13), std=np.ones(13))
    a, b = descriptors_with_degenerate_cases(2, seed=5).values()
    for name in NAMES:
        marked = dataclasses.replace(registry.DESCRIPTORS[name], paired=lambda x, y, s: np.full(len(x), 0.125))
        monkeypatch.setitem(registry.DESCRIPTORS, name, marked)
    assert DescriptorScorer(DescribeParams(), WEIGHTS, stats).similarities(a, b) == dict.fromkeys(NAMES, 0.125)
